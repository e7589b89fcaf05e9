"""Leakage audit of a backtest run: every fold trains strictly before it tests, and no feature reads past a cutoff.

Two checks, on every (series, fold) of the run:
- folds: the last training session is the cutoff (or before it, with a gap), and it comes before the first test
  session; the training window starts no later than it ends.
- features: the series is cut at the fold's cutoff and its indicators are recomputed from the cut data alone.
  Every value up to the cutoff must equal the run's value (NaN where the run has NaN). A feature that read a
  later row (a centred moving average, a back-filled gap, a full-sample scaler) differs here and fails the audit.
  Calendar columns depend on the session dates only (the exchange calendar is published in advance); they are
  recomputed once per series from the dates and must equal the run's.
- covariates (a run with --covariates): at each cutoff the covariate columns are recomputed from only the covariate
  closes known at the target's close of that cutoff (features.covariates) and must equal the run's up to it.
The engine also refuses a training frame with rows after the cutoff (LeakageError); the audit states for the
report what was checked, so a reader does not have to take "no look-ahead" on trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.folds import Fold
from common.schema import DS, ID
from features.build import FeatureConfig, series_features
from features.calendar import calendar_features
from features.covariates import CovariateConfig, CovariateSeries, covariate_problems

_MAX_LISTED = 5


@dataclass(frozen=True)
class AuditResult:
    """What the audit checked and every problem it found (empty when it passed)."""

    series: int
    folds: int
    feature_columns: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One sentence for the report and the Prefect summary."""
        if self.passed:
            return (
                f"passed: in all {self.folds} folds of {self.series} series training ends before the first test "
                f"session, and {self.feature_columns} feature columns recomputed from data cut at each cutoff "
                "equal the values the models saw."
            )
        listed = "; ".join(self.problems[:_MAX_LISTED])
        more = f" (and {len(self.problems) - _MAX_LISTED} more)" if len(self.problems) > _MAX_LISTED else ""
        return f"FAILED: {len(self.problems)} problem(s): {listed}{more}."

    @classmethod
    def merge(cls, parts: Sequence[Mapping[str, Any]]) -> AuditResult:
        """One result from per-ticker results (as `to_dict` gives them)."""
        return cls(
            series=sum(int(p["series"]) for p in parts),
            folds=sum(int(p["folds"]) for p in parts),
            feature_columns=max((int(p["feature_columns"]) for p in parts), default=0),
            problems=[problem for p in parts for problem in p["problems"]],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "series": self.series,
            "folds": self.folds,
            "feature_columns": self.feature_columns,
            "problems": self.problems,
            "summary": self.summary(),
        }


def audit_leakage(
    panel: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
    folds: Mapping[str, Sequence[Fold]],
    config: FeatureConfig,
    *,
    covariates: Sequence[CovariateSeries] = (),
    covariate_config: CovariateConfig | None = None,
    calendars: Mapping[str, str | None] | None = None,
    rtol: float = 1e-9,
) -> AuditResult:
    """Check every fold of every series (see the module docstring); never raises on a finding, it reports it.

    With `covariates` (and their config and the targets' `calendars`), the covariate columns of `features` are
    audited too: recomputed at each cutoff from only the covariate closes known at the target's close then.
    """
    problems: list[str] = []
    columns = config.feature_columns()
    audited = len(columns) + (len(covariate_config.columns()) if covariate_config and covariates else 0)
    for uid, series_folds in folds.items():
        problems += fold_problems(uid, series_folds)
        raw = panel.loc[panel[ID].astype(str) == str(uid)].sort_values(DS).reset_index(drop=True)
        seen = features[uid].sort_values(DS).reset_index(drop=True)
        problems += _feature_problems(uid, raw, seen, series_folds, config, columns, rtol=rtol)
        if covariate_config and covariates:
            calendar = (calendars or {}).get(uid)
            if not calendar:
                problems.append(f"{uid}: no trading calendar given, so its covariate columns cannot be audited")
                continue
            cutoffs = [(f.fold, pd.Timestamp(f.cutoff)) for f in series_folds]
            problems += covariate_problems(uid, seen, cutoffs, covariates, covariate_config, calendar, rtol=rtol)
    return AuditResult(
        series=len(folds),
        folds=sum(len(f) for f in folds.values()),
        feature_columns=audited,
        problems=problems,
    )


def fold_problems(uid: str, folds: Sequence[Fold]) -> list[str]:
    """Folds whose training window does not end before their test window."""
    out = []
    for f in folds:
        first_test = pd.Timestamp(f.test_ds[0])
        if not pd.Timestamp(f.train_start) <= pd.Timestamp(f.train_end) <= pd.Timestamp(f.cutoff) < first_test:
            out.append(
                f"{uid} fold {f.fold}: train {f.train_start:%Y-%m-%d}..{f.train_end:%Y-%m-%d}, "
                f"cutoff {f.cutoff:%Y-%m-%d}, first test session {first_test:%Y-%m-%d}"
            )
    return out


def _feature_problems(
    uid: str,
    raw: pd.DataFrame,
    seen: pd.DataFrame,
    folds: Sequence[Fold],
    config: FeatureConfig,
    columns: Sequence[str],
    *,
    rtol: float,
) -> list[str]:
    missing = sorted(set(columns) - set(seen.columns))
    if missing:
        return [f"{uid}: the run's features lack {missing}; cannot audit them"]
    out = []
    ds = pd.DatetimeIndex(raw[DS])
    indicators = config.indicator_columns()
    seen_values = seen[indicators].to_numpy(dtype=float)
    price = raw[config.price_col]
    volume = raw[config.volume_col] if config.volume_window is not None else None
    for f in folds:
        n = int(np.searchsorted(ds.asi8, pd.Timestamp(f.cutoff).value, side="right"))
        cut_volume = None if volume is None else volume.iloc[:n].reset_index(drop=True)
        recomputed = series_features(price.iloc[:n].reset_index(drop=True), volume=cut_volume, config=config)
        bad = _differing(recomputed[indicators].to_numpy(dtype=float), seen_values[:n], indicators, rtol=rtol)
        if bad:
            names, row = bad
            out.append(
                f"{uid} fold {f.fold}: {names} change when data after the cutoff {f.cutoff:%Y-%m-%d} is removed "
                f"(first at {ds[row]:%Y-%m-%d})"
            )
    calendar = [c for c in columns if c not in indicators]
    if calendar:
        again = calendar_features(raw[DS]).reset_index(drop=True)[calendar].to_numpy(dtype=float)
        bad = _differing(again, seen[calendar].to_numpy(dtype=float), calendar, rtol=rtol)
        if bad:
            out.append(
                f"{uid}: calendar columns {bad[0]} differ from the session dates' own (first at {ds[bad[1]]:%Y-%m-%d})"
            )
    return out


def _differing(a: np.ndarray, b: np.ndarray, names: Sequence[str], *, rtol: float) -> tuple[list[str], int] | None:
    """Column names and first row where a and b differ (NaN equals NaN), or None when they agree."""
    same = np.isclose(a, b, rtol=rtol, atol=0.0) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return None
    rows, cols = np.nonzero(~same)
    return sorted({names[int(c)] for c in cols}), int(rows.min())
