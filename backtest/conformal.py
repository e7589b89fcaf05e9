"""Split-conformal prediction intervals for backtest forecasts, calibrated only on outcomes known at each cutoff.

For one (series, model) and each horizon step h, the interval of the fold with cutoff c is built from the
conformity scores of EARLIER origins' step-h forecasts whose target session is on or before c (their outcome
was known when the fold's forecast was made). No row of the fold's own test window, or any later session, is
read: tests/backtest/test_conformal.py perturbs every value after a cutoff and checks the fold's intervals.

Scores. s = |log y - log ŷ| (a relative error: a price's error grows with its level, so residuals from a year
ago at half the price stay comparable) when every y and ŷ of the fold's calibration scores, and its own ŷ, are
positive, else |y - ŷ|; the band is ŷ·exp(±q) or ŷ ± q. The choice reads only what the fold may read.

Quantile. With the n most recent known scores (at most `window`), q at level L is the ceil((n + 1)·L/100)-th
smallest: the finite-sample split-conformal quantile (Vovk et al.; statsforecast's ConformalIntervals), which
covers with probability >= L% when scores are exchangeable. When that rank exceeds n the interval would be
infinite: the band is left empty (NaN) and counted, not faked. So L = 95 needs n >= 19 and L = 80 needs n >= 4.
A fixed-size, most-recent window adapts to volatility regimes, which exchangeability across a whole history
would not: calm years would set the width of a crisis.

Warm-up. The first scored folds have few earlier scored folds to learn from, so the backtest forecasts extra
calibration origins before fold 0 (backtest.folds.calibration_folds: numbered -k..-1, `plan.step` apart, forecast
exactly like scored folds with the unit's refit policy, never scored). With the default 20 of them every scored
fold, from fold 0 on, has 20 known scores at every step h, enough for both levels; a series too short for all
of them gets fewer, and its first folds' 95% bands may be empty (counted in the run's meta).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError
from common.schema import CUTOFF, DS, ID, INTERVAL_COLUMNS, LEVELS, MODEL, YHAT, H, Y, interval_columns

IntervalSource = Literal["native", "conformal"]  # each model's own bands (conformal where it has none), or conformal
INTERVAL_SOURCES: tuple[IntervalSource, ...] = ("native", "conformal")
DEFAULT_WINDOW = 20  # calibration scores per (series, model, h): enough for a finite 95% quantile (needs 19)


def window_for(calibration_windows: int) -> int:
    """The scores a band is computed from for a run with `calibration_windows` calibration origins: as many, and
    at least DEFAULT_WINDOW (the 20 a finite 95% band needs), so later folds never use fewer than the first."""
    return max(int(calibration_windows), DEFAULT_WINDOW)


def min_scores(level: int) -> int:
    """Fewest calibration scores for a finite split-conformal quantile at `level` percent (95 -> 19, 80 -> 4)."""
    return math.ceil(100 / (100 - level)) - 1


def conformal_intervals(
    forecasts: pd.DataFrame,
    calibration: pd.DataFrame,
    *,
    window: int = DEFAULT_WINDOW,
    levels: Sequence[int] = LEVELS,
) -> pd.DataFrame:
    """`forecasts` with every interval column replaced by split-conformal bands (see the module docstring).

    `calibration` holds the same columns for origins that are forecast but never scored (may be empty); both
    tables may hold several series and models. Rows keep their order.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ConfigError(f"conformal window must be a positive integer, got {window!r}")
    out = forecasts.copy()
    for col in INTERVAL_COLUMNS:
        out[col] = np.nan
    if out.empty:
        return out
    pool = pd.concat([calibration[[ID, MODEL, CUTOFF, DS, H, Y, YHAT]], forecasts[[ID, MODEL, CUTOFF, DS, H, Y, YHAT]]])
    pools = dict(tuple(pool.groupby([ID, MODEL], sort=False)))
    for (uid, model), rows in out.groupby([ID, MODEL], sort=False):
        by_h = dict(tuple(pools[(uid, model)].groupby(H, sort=False)))
        for h, target in rows.groupby(H, sort=False):
            known = by_h[h].sort_values(DS, kind="stable")
            y, yhat = known[Y].to_numpy(float), known[YHAT].to_numpy(float)
            positive = (y > 0) & (yhat > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                relative_scores, absolute_scores = np.abs(np.log(y) - np.log(yhat)), np.abs(y - yhat)
            # Scores whose target session is on or before each cutoff: a prefix of `known` (sorted by ds).
            ends = np.searchsorted(
                known[DS].to_numpy("datetime64[ns]"), target[CUTOFF].to_numpy("datetime64[ns]"), "right"
            )
            point = target[YHAT].to_numpy(float)
            for level in levels:
                lo_col, hi_col = interval_columns(level)
                bands = np.full((len(target), 2), np.nan)
                for i, end in enumerate(ends):
                    window_rows = slice(max(0, end - window), end)
                    # The score is chosen from what is known at the cutoff (and the fold's own forecast), never
                    # from later rows: one later non-positive value must not change an earlier fold's band.
                    relative = bool(positive[window_rows].all() and point[i] > 0)
                    scores = (relative_scores if relative else absolute_scores)[window_rows]
                    q = _quantile(scores, level)
                    bands[i] = (
                        (point[i] * np.exp(-q), point[i] * np.exp(q)) if relative else (point[i] - q, point[i] + q)
                    )
                out.loc[target.index, lo_col] = bands[:, 0]
                out.loc[target.index, hi_col] = bands[:, 1]
    return out


def missing_bands(forecasts: pd.DataFrame, *, level: int = max(LEVELS)) -> int:
    """Rows of `forecasts` without a band at `level` (too few calibration scores for a finite quantile)."""
    lo, _ = interval_columns(level)
    return int(forecasts[lo].isna().sum()) if lo in forecasts.columns else len(forecasts)


def _quantile(scores: np.ndarray, level: int) -> float:
    """The ceil((n+1)·level/100)-th smallest finite score, NaN when that rank exceeds n (an infinite interval)."""
    scores = scores[np.isfinite(scores)]
    rank = -(-(scores.size + 1) * level // 100)  # integer ceil: no float rounding at n = 19, level = 95
    if rank > scores.size or rank < 1:
        return float("nan")
    return float(np.partition(scores, rank - 1)[rank - 1])
