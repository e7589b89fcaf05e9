"""Rolling-origin fold plans on each series' OWN sessions (rows), statsforecast's cross-validation convention.

Positions, not calendar dates: a fold's cutoff, training window and test sessions are rows of the series, so
tickers on different exchanges (XNYS, XKRX, 24/7 crypto) each get folds on their own trading days.

Convention (as `StatsForecast.cross_validation`): with `windows=W`, the LAST fold's test window ends at the
last available session and each earlier fold steps back by `step` rows. With `first_cutoff` instead, the
first origin is the first session on or after that date and every `step`-th session after it is an origin,
as long as a full test window still fits. Folds are numbered 0, 1, ... in chronological order.

`gap` skips sessions between the cutoff and the first scored session: training ends at the cutoff
(`train_end == cutoff`), the model forecasts `gap + horizon` steps and the engine scores only the last
`horizon` of them, with `h` counted 1..horizon from the first scored session (`test_ds[0]`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError
from common.schema import DS, ID

WindowType = Literal["expanding", "sliding"]


@dataclass(frozen=True)
class Fold:
    """One rolling origin: train on [train_start, train_end] (train_end == cutoff), score `test_ds`."""

    fold: int
    cutoff: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_ds: tuple[pd.Timestamp, ...]
    gap: int = 0  # sessions between cutoff and test_ds[0] that are forecast but not scored


@dataclass(frozen=True, kw_only=True)
class FoldPlan:
    """How to cut every series into folds; identical for every model, so every model sees the same folds."""

    horizon: int
    step: int = 1
    windows: int | None = None
    first_cutoff: date | None = None
    gap: int = 0
    window_type: WindowType = "expanding"
    train_size: int | None = None  # sliding-window length in sessions; required for "sliding"
    min_train_size: int | None = None  # fewest training sessions the first fold may have

    def __post_init__(self) -> None:
        for name in ("horizon", "step"):
            _require_positive_int(name, getattr(self, name))
        if self.windows is not None:
            _require_positive_int("windows", self.windows)
        if (self.windows is None) == (self.first_cutoff is None):
            raise ConfigError(
                f"pass exactly one of windows or first_cutoff, got windows={self.windows!r}, "
                f"first_cutoff={self.first_cutoff!r}"
            )
        if not isinstance(self.gap, int) or isinstance(self.gap, bool) or self.gap < 0:
            raise ConfigError(f"gap must be an integer >= 0, got {self.gap!r}")
        if self.window_type not in ("expanding", "sliding"):
            raise ConfigError(f"window_type must be 'expanding' or 'sliding', got {self.window_type!r}")
        if self.window_type == "sliding" and self.train_size is None:
            raise ConfigError("window_type='sliding' needs train_size (the training window length in sessions)")
        if self.train_size is not None:
            _require_positive_int("train_size", self.train_size)
        if self.min_train_size is not None:
            _require_positive_int("min_train_size", self.min_train_size)

    def fingerprint(self) -> str:
        """A stable 12-hex-digit hash of the plan, for cache keys and result metadata."""
        payload = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        """JSON-ready fields (first_cutoff as ISO date)."""
        out = asdict(self)
        out["first_cutoff"] = None if self.first_cutoff is None else pd.Timestamp(self.first_cutoff).date().isoformat()
        return out

    @property
    def needed_train_size(self) -> int:
        """Fewest training rows the earliest fold must have."""
        if self.window_type == "sliding":
            return max(int(self.train_size or 1), int(self.min_train_size or 1))
        return int(self.min_train_size or 1)


def make_folds(ds: pd.DatetimeIndex | Sequence, plan: FoldPlan, *, unique_id: str = "series") -> list[Fold]:
    """The folds of one series from its own sessions `ds` (sorted, unique)."""
    ds = pd.DatetimeIndex(ds)
    if not ds.is_monotonic_increasing or ds.has_duplicates:
        raise DataError(f"{unique_id}: ds must be strictly increasing to cut folds; sort and deduplicate first")
    cutoffs = _cutoff_positions(ds, plan, unique_id=unique_id)
    return [_fold_at(ds, plan, number, pos) for number, pos in enumerate(cutoffs)]


def panel_folds(panel: pd.DataFrame, plan: FoldPlan) -> dict[str, list[Fold]]:
    """Folds for every series of a long panel; one DataError lists every series too short for the plan."""
    out: dict[str, list[Fold]] = {}
    short: dict[str, str] = {}
    for uid, group in panel.groupby(ID, sort=True):
        try:
            out[str(uid)] = make_folds(pd.DatetimeIndex(group[DS]).sort_values(), plan, unique_id=str(uid))
        except DataError as exc:
            short[str(uid)] = f"{uid!r} ({len(group)} sessions)" if plan.windows is not None else str(exc)
    if short and plan.windows is not None:
        listed = ", ".join(list(short.values())[:20]) + (" ..." if len(short) > 20 else "")
        raise DataError(
            f"series too short for these cross-validation settings ({len(short)} series): [{listed}]; each needs "
            f"{required_length(plan)} sessions; reduce the horizon or windows, or drop these series"
        )
    if short:
        raise DataError(f"{len(short)} series do not fit this fold plan: " + "; ".join(short.values()))
    return out


def calibration_folds(
    ds: pd.DatetimeIndex | Sequence, plan: FoldPlan, first: Fold, *, windows: int, unique_id: str = "series"
) -> list[Fold]:
    """Up to `windows` origins before `first` (the plan's first fold), `plan.step` sessions apart, for conformal
    calibration (backtest.conformal): forecast like any fold, never scored.

    Numbered -k .. -1 in chronological order (fold -1 is the latest), so they can never be mistaken for a scored
    fold. As many as the series allows: an origin needs the plan's training rows before it (`needed_train_size`),
    so a short series gets fewer (possibly none), and its first scored folds then have smaller calibration sets.
    """
    if not isinstance(windows, int) or isinstance(windows, bool) or windows < 0:
        raise ConfigError(f"calibration windows must be an integer >= 0, got {windows!r}")
    ds = pd.DatetimeIndex(ds)
    start = int(ds.get_indexer([first.cutoff])[0])
    if start < 0:
        raise DataError(f"{unique_id}: first fold cutoff {first.cutoff.date()} is not a session of the series")
    # needed_train_size covers a sliding window's length too, so every kept origin has its full training window.
    positions = [p for k in range(windows, 0, -1) if (p := start - k * plan.step) + 1 >= plan.needed_train_size]
    return [_fold_at(ds, plan, number, pos) for number, pos in zip(range(-len(positions), 0), positions, strict=True)]


def panel_calibration_folds(
    panel: pd.DataFrame, folds: dict[str, list[Fold]], plan: FoldPlan, *, windows: int
) -> dict[str, list[Fold]]:
    """calibration_folds for every series of `folds` (cut from the same panel by panel_folds)."""
    sessions = {str(uid): pd.DatetimeIndex(g[DS]).sort_values() for uid, g in panel.groupby(ID, sort=True)}
    return {
        uid: calibration_folds(sessions[uid], plan, own[0], windows=windows, unique_id=uid) if own else []
        for uid, own in folds.items()
    }


def required_length(plan: FoldPlan) -> int | None:
    """Sessions a series needs for a `windows` plan (None for first_cutoff plans, which depend on dates)."""
    if plan.windows is None:
        return None
    return plan.needed_train_size + plan.gap + plan.horizon + (plan.windows - 1) * plan.step


def _cutoff_positions(ds: pd.DatetimeIndex, plan: FoldPlan, *, unique_id: str) -> list[int]:
    n = len(ds)
    need_train = plan.needed_train_size
    last_cutoff = n - 1 - plan.gap - plan.horizon  # latest origin whose test window still fits
    if plan.windows is not None:
        need = plan.needed_train_size + plan.gap + plan.horizon + (plan.windows - 1) * plan.step
        if n < need:
            raise DataError(
                f"series too short for these cross-validation settings: {unique_id!r} has {n} sessions, "
                f"needs {need} = {need_train} training + {plan.gap} gap + {plan.horizon} horizon + "
                f"({plan.windows} - 1) windows x {plan.step} step; reduce the horizon or windows"
            )
        return [last_cutoff - (plan.windows - 1 - k) * plan.step for k in range(plan.windows)]
    first = int(ds.searchsorted(pd.Timestamp(plan.first_cutoff), side="left"))
    if first > last_cutoff:
        raise DataError(
            f"series too short for these cross-validation settings: {unique_id!r} ends {ds[-1].date()}, "
            f"no origin on/after first_cutoff={plan.first_cutoff} leaves {plan.gap} gap + {plan.horizon} horizon "
            "sessions to score; choose an earlier first_cutoff or reduce the horizon"
        )
    if first + 1 < need_train:
        raise DataError(
            f"series too short for these cross-validation settings: {unique_id!r} has {first + 1} sessions up to "
            f"the first cutoff {ds[first].date()}, needs {need_train} for training; choose a later first_cutoff "
            "or a smaller train_size/min_train_size"
        )
    return list(range(first, last_cutoff + 1, plan.step))


def _fold_at(ds: pd.DatetimeIndex, plan: FoldPlan, number: int, pos: int) -> Fold:
    start = pos - plan.train_size + 1 if plan.window_type == "sliding" and plan.train_size else 0
    first_test = pos + 1 + plan.gap
    test = tuple(pd.Timestamp(t) for t in ds[first_test : first_test + plan.horizon])
    return Fold(
        fold=number,
        cutoff=pd.Timestamp(ds[pos]),
        train_start=pd.Timestamp(ds[start]),
        train_end=pd.Timestamp(ds[pos]),
        test_ds=test,
        gap=plan.gap,
    )


def _require_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
