"""Target (label) builders. These are FORWARD-LOOKING on purpose: use them only as y, never as features.

A target at row t reads rows t..t+h, so the last h rows of every series are NaN; they are never filled, and
callers drop them from training (they are exactly the rows whose outcome is not yet known).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError
from common.schema import DS, ID, Y

TargetKind = Literal["level", "log_level", "return", "log_return", "event"]
TARGET_KINDS: tuple[str, ...] = ("level", "log_level", "return", "log_return", "event")
TARGET_PREFIX = "target_"

# Relative tolerance of the event comparison, so a rise of exactly x% (105 vs 100 * 1.05) counts.
_EVENT_RTOL = 1e-12


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ConfigError(f"horizon must be an integer >= 1 session, got {horizon!r}")
    return int(horizon)


def _as_float(series: pd.Series) -> pd.Series:
    return pd.Series(np.asarray(series, dtype=float), index=series.index, name=series.name)


def level(price: pd.Series) -> pd.Series:
    """Level target: y_t = p_t (a float copy)."""
    return _as_float(price)


def log_level(price: pd.Series) -> pd.Series:
    """Log-level target: y_t = ln(p_t); prices must be positive."""
    p = _as_float(price)
    bad = int((p <= 0).sum())
    if bad:
        raise DataError(
            f"log_level needs positive prices, {bad} value(s) <= 0 (first at {p.index[p <= 0][0]!r}); "
            "use the level target or fix the source"
        )
    return np.log(p)


def forward_return(price: pd.Series, *, horizon: int, log: bool = False) -> pd.Series:
    """h-step-ahead return: y_t = p_{t+h} / p_t - 1, or ln(p_{t+h} / p_t) with log=True; last h rows NaN."""
    h = _check_horizon(horizon)
    p = _as_float(price)
    ratio = p.shift(-h) / p
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(ratio)
    return ratio - 1.0


def event_target(close: pd.Series, *, threshold: float, horizon: int) -> pd.Series:
    """Binary event "close rises >= threshold within h sessions": 1.0 if max(c_{t+1..t+h}) >= c_t * (1 + x) else 0.0.

    Float with NaN where fewer than h future sessions exist (the last h rows) or the window holds a NaN.
    Example: [100, 104, 106, 101], x = 0.05, h = 1 -> [0, 0, 0, NaN]; h = 2 -> [1, 0, NaN, NaN].
    """
    h = _check_horizon(horizon)
    if not np.isfinite(threshold) or threshold <= -1.0:
        raise ConfigError(f"threshold is a fractional rise (0.05 = 5%) and must be > -1, got {threshold!r}")
    c = _as_float(close)
    # Rolling max at t+h covers t+1..t+h; shifting it back by h aligns it with the origin t.
    future_max = c.rolling(h, min_periods=h).max().shift(-h)
    bar = c * (1.0 + threshold)
    hit = (future_max >= bar) | np.isclose(future_max, bar, rtol=_EVENT_RTOL, atol=0.0)
    return hit.astype(float).where(future_max.notna() & c.notna())


def target_name(kind: TargetKind, *, horizon: int = 1, threshold: float | None = None) -> str:
    """Column name of a target: target_level, target_return_h5, target_event_500bp_h1 (threshold in basis points)."""
    if kind in ("level", "log_level"):
        return f"{TARGET_PREFIX}{kind}"
    if kind in ("return", "log_return"):
        return f"{TARGET_PREFIX}{kind}_h{_check_horizon(horizon)}"
    if kind == "event":
        if threshold is None:
            raise ConfigError("the event target needs a threshold, e.g. threshold=0.05 for a 5% rise")
        return f"{TARGET_PREFIX}event_{round(threshold * 1e4)}bp_h{_check_horizon(horizon)}"
    raise ConfigError(f"unknown target kind {kind!r}; choose one of {list(TARGET_KINDS)}")


def series_target(price: pd.Series, *, kind: TargetKind, horizon: int = 1, threshold: float | None = None) -> pd.Series:
    """One target of one series, dispatched on `kind` (see the single-purpose builders above)."""
    if kind == "level":
        return level(price)
    if kind == "log_level":
        return log_level(price)
    if kind in ("return", "log_return"):
        return forward_return(price, horizon=horizon, log=kind == "log_return")
    if kind == "event":
        if threshold is None:
            raise ConfigError("the event target needs a threshold, e.g. threshold=0.05 for a 5% rise")
        return event_target(price, threshold=threshold, horizon=horizon)
    raise ConfigError(f"unknown target kind {kind!r}; choose one of {list(TARGET_KINDS)}")


def panel_target(
    panel: pd.DataFrame,
    *,
    kind: TargetKind,
    horizon: int = 1,
    threshold: float | None = None,
    price_col: str = Y,
) -> pd.Series:
    """A target computed per unique_id in ds order (no cross-series reads), aligned to the panel's rows and index.

    `price_col` defaults to y (the adjusted close); pass CLOSE for the raw close, which jumps at splits.
    """
    missing = [c for c in (ID, DS, price_col) if c not in panel.columns]
    if missing:
        raise DataError(f"panel lacks column(s) {missing} needed for the {kind} target")
    name = target_name(kind, horizon=horizon, threshold=threshold)
    order = np.lexsort((panel[DS].to_numpy(), panel[ID].astype(str).to_numpy()))
    ordered = panel.iloc[order]
    out = np.full(len(panel), np.nan)
    for rows in ordered.groupby(ID, sort=False).indices.values():
        price = ordered[price_col].iloc[rows].reset_index(drop=True)
        out[order[rows]] = series_target(price, kind=kind, horizon=horizon, threshold=threshold).to_numpy()
    return pd.Series(out, index=panel.index, name=name)


def event_target_panel(panel: pd.DataFrame, *, threshold: float, horizon: int, price_col: str = Y) -> pd.Series:
    """The event target of every series of a long panel (see event_target), aligned to the panel's rows."""
    return panel_target(panel, kind="event", horizon=horizon, threshold=threshold, price_col=price_col)
