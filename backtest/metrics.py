"""Forecast accuracy metrics: per row of the tidy backtest table, then honest group-by aggregates.

Notation per forecast row (series i, fold f, step h): e = y - ŷ; last_y = last observed training value of
fold f; s_mae(f) = mean |y_t - y_{t-1}| and s_mse(f) = mean (y_t - y_{t-1})² over fold f's OWN training
window (the in-sample one-step naive errors, stored in fold_info).

- MAE    = mean |e|
- RMSE   = sqrt(mean e²)                  squared errors are averaged first, the root is taken last
- MAPE   = mean 100·|e| / |y|             percent; rows with y = 0 are undefined and dropped
- sMAPE  = mean 200·|e| / (|y| + |ŷ|)     M4 definition, 0-200 scale; 0 when y = ŷ = 0
- MASE   = mean |e| / s_mae(f)            each row scaled by its own fold's training window
- RMSSE  = sqrt(mean e² / s_mse(f))
  A scale must be finite and > 0. A fold whose scale is 0 (a flat training window), NaN or infinite (values so
  large that the differences or their sum overflow float64) has NaN MASE/RMSSE - never 0 from |e| / inf and never
  inf from |e| / 0 - and the leaderboard counts such (series, fold) pairs per model in `n_scale_undefined`, with a
  warning naming them (ingest refuses overflowing values; this guards tables built any other way).
- directional accuracy = mean of hit, hit = 1 if sign(ŷ - last_y) == sign(y - last_y) and both are non-zero,
  0 if the signs are opposite, 0.5 if either change is exactly zero (a no-change forecast or a no-change
  session is a coin flip): the naive forecast scores exactly 0.5, the no-skill level.
- coverage_L = share of rows with lo_L <= y <= hi_L (L = 80, 95); NaN for models without intervals
- Winkler_L (interval score, α = 1 - L/100) = (hi - lo) + (2/α)(lo - y)·[y < lo] + (2/α)(y - hi)·[y > hi]
- scaled CRPS = mean CRPS_5(row) / s_mae(f), CRPS_5 the CRPS of the distribution whose quantile function is
  linear between the five quantiles (lo_95, lo_80, ŷ, hi_80, hi_95) at levels (0.025, 0.1, 0.5, 0.9, 0.975)
  and flat beyond them (backtest.probabilistic.crps_from_quantiles: its docstring gives the rule and its
  accuracy). A point forecast (all five equal ŷ) has CRPS_5 = |e|, so its scaled CRPS is its MASE; NaN for
  rows without all four bounds.
- pinball = mean over rows of (1/4)·Σ_τ QS_τ(q_τ, y) / s_mae(f) over the four interval quantiles
  τ ∈ {0.025, 0.1, 0.9, 0.975} (QS_τ(q, y) = (τ - 1{y < q})(y - q)), i.e. the mean pinball loss scaled like
  MASE; the median is left out (its QS is |e|/2, already in MASE). NaN for rows without all four bounds.
- out-of-sample R² (Campbell-Thompson) = 1 - Σ(r - r̂)² / Σ r² over h = 1 rows, r = ln(y/last_y),
  r̂ = ln(ŷ/last_y): the next-session log-return forecast against the zero return (0 for naive, > 0 when
  better); rows with a non-positive price are left out. Stored per h = 1 row as the two squared errors `ret_se`
  = (r - r̂)² and `ret_se0` = r² (absent at h > 1).

Aggregation: `metrics_table` is long (unique_id, model, fold, h, metric, value), one value per row and metric;
it stores the squared metrics `mse` and `msse` (never per-row roots, whose average would be the MAE) and the
return errors `ret_se`, `ret_se0`. `summarise` averages any grouping and turns mse -> rmse = sqrt(mean mse),
msse -> rmsse = sqrt(mean msse), and (ret_se, ret_se0) -> oos_r2 = 1 - mean ret_se / mean ret_se0 (the two
are defined on the same rows, so this is the ratio of sums; NaN when mean ret_se0 = 0), dropping the helpers.
A series' metric is the mean over all its folds and horizon steps (RMSE/RMSSE: root of that mean; oos_r2: over
its h = 1 rows, the ratio of sums); a leaderboard value is the mean over series of the series' metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from backtest.probabilistic import crps_from_quantiles, pinball_loss, return_errors
from backtest.significance import beats_reference
from common.schema import (
    BEATS_NAIVE_DM,
    COVERAGE_80,
    COVERAGE_95,
    DIRECTIONAL_ACCURACY,
    FOLD,
    HI_80,
    HI_95,
    ID,
    IN_MCS,
    LAST_Y,
    LEADERBOARD_COLUMNS,
    LO_80,
    LO_95,
    MAE,
    MAPE,
    MASE,
    MEAN_RANK,
    METRIC,
    METRICS_COLUMNS,
    MODEL,
    MSE,
    MSSE,
    N_FAILURES,
    N_FOLDS,
    N_SCALE_UNDEFINED,
    N_SERIES,
    OOS_R2,
    PINBALL,
    RET_SE,
    RET_SE0,
    RMSE,
    RMSSE,
    SCALE_MAE,
    SCALE_MSE,
    SCALED_CRPS,
    SMAPE,
    VALUE,
    WINKLER_80,
    WINKLER_95,
    YHAT,
    H,
    Y,
)

log = logging.getLogger(__name__)

ROW_METRICS = (
    MAE,
    MSE,
    MAPE,
    SMAPE,
    MASE,
    MSSE,
    DIRECTIONAL_ACCURACY,
    COVERAGE_80,
    COVERAGE_95,
    WINKLER_80,
    WINKLER_95,
    SCALED_CRPS,
    PINBALL,
    RET_SE,
    RET_SE0,
)
# Squared row metrics and the name of their honest aggregate.
ROOTED = {MSE: RMSE, MSSE: RMSSE}
# Skill ratios 1 - mean(model's squared error) / mean(reference's), from two row metrics on the same rows.
SKILL = {OOS_R2: (RET_SE, RET_SE0)}
_SKILL_PARTS = {part for parts in SKILL.values() for part in parts}
SUMMARY_METRICS = (*(ROOTED.get(m, m) for m in ROW_METRICS if m not in _SKILL_PARTS), *SKILL)
# The five quantiles of an interval forecast, lowest first: (column, level); the median is the point forecast.
INTERVAL_QUANTILES = ((LO_95, 0.025), (LO_80, 0.1), (YHAT, 0.5), (HI_80, 0.9), (HI_95, 0.975))


# ---- row-level definitions ----------------------------------------------------------------------------------
def absolute_error(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """|y - ŷ|."""
    return np.abs(np.asarray(y, float) - np.asarray(yhat, float))


def squared_error(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """(y - ŷ)²."""
    return (np.asarray(y, float) - np.asarray(yhat, float)) ** 2


def percentage_error(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """100·|y - ŷ| / |y|; NaN where y = 0 (undefined)."""
    y = np.asarray(y, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y == 0, np.nan, 100.0 * absolute_error(y, yhat) / np.abs(y))


def symmetric_percentage_error(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """M4 sMAPE term 200·|y - ŷ| / (|y| + |ŷ|), 0-200 scale; 0 when both are 0."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    denom = np.abs(y) + np.abs(yhat)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom == 0, 0.0, 200.0 * absolute_error(y, yhat) / denom)


def direction_hit(y: np.ndarray, yhat: np.ndarray, last_y: np.ndarray) -> np.ndarray:
    """1 if forecast and realised moves from last_y share a sign, 0 if opposite, 0.5 if either is no change."""
    true_move = np.sign(np.asarray(y, float) - np.asarray(last_y, float))
    pred_move = np.sign(np.asarray(yhat, float) - np.asarray(last_y, float))
    return np.where((true_move == 0) | (pred_move == 0), 0.5, (true_move == pred_move).astype(float))


def interval_covered(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """1.0 if lo <= y <= hi else 0.0; NaN where the model gave no interval."""
    y, lo, hi = (np.asarray(a, float) for a in (y, lo, hi))
    inside = ((lo <= y) & (y <= hi)).astype(float)
    return np.where(np.isnan(lo) | np.isnan(hi), np.nan, inside)


def winkler_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, level: int) -> np.ndarray:
    """Interval score: width plus (2/α)·distance outside the interval, α = 1 - level/100 (lower is better)."""
    y, lo, hi = (np.asarray(a, float) for a in (y, lo, hi))
    alpha = 1.0 - level / 100.0
    below = np.clip(lo - y, 0.0, None)
    above = np.clip(y - hi, 0.0, None)
    return (hi - lo) + (2.0 / alpha) * (below + above)


def row_metrics(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """The backtest rows with one column per ROW_METRICS entry (wide; fold_info supplies scale and last_y)."""
    info = fold_info[[ID, FOLD, LAST_Y, SCALE_MAE, SCALE_MSE]]
    rows = forecasts.merge(info, on=[ID, FOLD], how="left", validate="many_to_one")
    for col in (LO_80, HI_80, LO_95, HI_95):  # tables without interval columns: coverage/winkler undefined
        if col not in rows.columns:
            rows[col] = np.nan
    y, yhat = rows[Y].to_numpy(float), rows[YHAT].to_numpy(float)
    scale_mae = valid_scale(rows[SCALE_MAE])
    ret_se, ret_se0 = return_errors(y, yhat, rows[LAST_Y].to_numpy(float))
    first_step = rows[H].to_numpy() == 1  # oos_r2 scores the next-session return only
    quantiles = rows[[col for col, _ in INTERVAL_QUANTILES]].to_numpy(float)
    levels = np.array([tau for _, tau in INTERVAL_QUANTILES])
    bounds = levels != 0.5  # the median's pinball loss is |e|/2: MASE already holds it
    bound_losses = pinball_loss(y[:, None], quantiles[:, bounds], levels[bounds])  # NaN rows stay NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        metrics = {
            MAE: absolute_error(y, yhat),
            MSE: squared_error(y, yhat),
            MAPE: percentage_error(y, yhat),
            SMAPE: symmetric_percentage_error(y, yhat),
            MASE: absolute_error(y, yhat) / scale_mae,
            MSSE: squared_error(y, yhat) / valid_scale(rows[SCALE_MSE]),
            DIRECTIONAL_ACCURACY: direction_hit(y, yhat, rows[LAST_Y].to_numpy(float)),
            COVERAGE_80: interval_covered(y, rows[LO_80], rows[HI_80]),
            COVERAGE_95: interval_covered(y, rows[LO_95], rows[HI_95]),
            WINKLER_80: winkler_score(y, rows[LO_80], rows[HI_80], level=80),
            WINKLER_95: winkler_score(y, rows[LO_95], rows[HI_95], level=95),
            SCALED_CRPS: crps_from_quantiles(y, quantiles, levels) / scale_mae,
            PINBALL: np.mean(bound_losses, axis=1) / scale_mae,
            RET_SE: np.where(first_step, ret_se, np.nan),
            RET_SE0: np.where(first_step, ret_se0, np.nan),
        }
    out = rows[[ID, MODEL, FOLD, H]].copy()
    for name, values in metrics.items():
        values = np.asarray(values, float)
        out[name] = np.where(np.isfinite(values), values, np.nan)  # 0 scale or y = 0: undefined, not infinite
    return out


def valid_scale(scale: pd.Series | np.ndarray) -> np.ndarray:
    """The scale where it is finite and > 0, NaN elsewhere: a scaled error is undefined, not 0 or inf, without one."""
    s = np.asarray(scale, dtype=float)
    return np.where(np.isfinite(s) & (s > 0), s, np.nan)


def undefined_scales(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """(unique_id, model, fold) of every forecast fold whose MASE or RMSSE scale is zero, NaN or infinite."""
    info = fold_info[[ID, FOLD, SCALE_MAE, SCALE_MSE]]
    bad = info[np.isnan(valid_scale(info[SCALE_MAE])) | np.isnan(valid_scale(info[SCALE_MSE]))]
    pairs = forecasts[[ID, MODEL, FOLD]].drop_duplicates()
    return pairs.merge(bad[[ID, FOLD]], on=[ID, FOLD], how="inner").reset_index(drop=True)


# ---- tables ------------------------------------------------------------------------------------------------
def metrics_table(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """Long table METRICS_COLUMNS: one value per (unique_id, model, fold, h, metric); undefined values dropped."""
    wide = row_metrics(forecasts, fold_info)
    long = wide.melt(id_vars=[ID, MODEL, FOLD, H], value_vars=list(ROW_METRICS), var_name=METRIC, value_name=VALUE)
    long = long.dropna(subset=[VALUE])
    order = {m: k for k, m in enumerate(ROW_METRICS)}
    long = long.assign(_o=long[METRIC].map(order)).sort_values([ID, MODEL, FOLD, H, "_o"], kind="stable")
    return long.drop(columns="_o").reset_index(drop=True)[list(METRICS_COLUMNS)]


def summarise(metrics: pd.DataFrame, *, by: Sequence[str]) -> pd.DataFrame:
    """Mean of each metric within `by` groups of a metrics_table, wide; mse/msse become rmse/rmsse (root last).

    ret_se/ret_se0 become oos_r2 = 1 - mean ret_se / mean ret_se0 (NaN for groups without h = 1 rows or with a
    zero denominator) and are dropped.
    """
    by = list(by)
    wide = metrics.pivot_table(index=by, columns=METRIC, values=VALUE, aggfunc="mean", observed=True)
    for squared, rooted in ROOTED.items():
        if squared in wide.columns:
            wide[rooted] = np.sqrt(wide.pop(squared))
    for skill, (model_se, reference_se) in SKILL.items():
        if model_se in wide.columns and reference_se in wide.columns:
            num, den = wide.pop(model_se).to_numpy(float), wide.pop(reference_se).to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                wide[skill] = np.where(den > 0, 1.0 - num / den, np.nan)
    out = wide.reindex(columns=list(SUMMARY_METRICS))  # absent metrics (no intervals anywhere) stay as NaN
    out.columns.name = None
    return out.reset_index()


def per_series_table(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """One row per (unique_id, model): every metric over all folds and horizon steps, plus n_folds."""
    table = summarise(metrics_table(forecasts, fold_info), by=[ID, MODEL])
    n_folds = forecasts.groupby([ID, MODEL], observed=True)[FOLD].nunique().rename(N_FOLDS).reset_index()
    return table.merge(n_folds, on=[ID, MODEL], how="left")


def per_horizon_table(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, h): series metric at step h (mean over folds), averaged over series."""
    per = summarise(metrics_table(forecasts, fold_info), by=[ID, MODEL, H])
    return per.drop(columns=ID).groupby([MODEL, H], observed=True).mean().reset_index()


def mean_rank(per_series: pd.DataFrame, *, by: str = MASE) -> pd.Series:
    """Mean over series of each model's rank by `by` within the series (1 = best, ties averaged).

    Only series where every model has a value count, so a model that fails on hard series gains nothing.
    """
    wide = per_series.pivot_table(index=ID, columns=MODEL, values=by, aggfunc="mean")
    common = wide.dropna(how="any")
    return common.rank(axis=1, method="average").mean(axis=0).rename(MEAN_RANK)


def leaderboard(
    forecasts: pd.DataFrame,
    fold_info: pd.DataFrame,
    dm_table: pd.DataFrame | None = None,
    *,
    failures: pd.DataFrame | None = None,
    mcs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per model, ordered by MASE (the headline metric; ties by mean rank): mean over series of each
    series' metric, mean MASE rank, Model Confidence Set membership, DM verdict vs naive.

    `in_mcs` comes from `mcs` (backtest.multiple_testing.model_confidence_set's table); NA without one.
    `beats_naive_dm` comes from `significance.beats_reference(dm_table)` (see that docstring for the rule);
    NaN when no DM table is given, for the reference model itself, and for models without DM rows.
    """
    per_series = per_series_table(forecasts, fold_info)
    board = per_series.drop(columns=[ID, N_FOLDS]).groupby(MODEL, observed=True).mean()
    board[MEAN_RANK] = mean_rank(per_series)
    board[IN_MCS] = _mcs_members(mcs, board.index)
    board[BEATS_NAIVE_DM] = _dm_verdicts(dm_table, board.index)
    board[N_SERIES] = per_series.groupby(MODEL, observed=True)[ID].nunique()
    if failures is not None:
        board[N_FAILURES] = failures.groupby(MODEL).size().reindex(board.index, fill_value=0).astype(int)
    undefined = undefined_scales(forecasts, fold_info)
    board[N_SCALE_UNDEFINED] = undefined.groupby(MODEL).size().reindex(board.index, fill_value=0).astype(int)
    _warn_undefined_scales(undefined)
    board = board.reset_index()
    extra = [c for c in (N_SERIES, N_FAILURES, N_SCALE_UNDEFINED) if c in board.columns]
    board = board[[*LEADERBOARD_COLUMNS, *extra]]
    return board.sort_values([MASE, MEAN_RANK], kind="stable", na_position="last").reset_index(drop=True)


def _mcs_members(mcs: pd.DataFrame | None, models: pd.Index) -> pd.Series:
    if mcs is None or mcs.empty:
        return pd.Series(pd.NA, index=models, dtype="boolean")
    return mcs.set_index(MODEL)[IN_MCS].reindex(models).astype("boolean")


def _warn_undefined_scales(undefined: pd.DataFrame) -> None:
    """One warning naming the series and folds whose MASE/RMSSE are NaN because their scale is 0 or not finite."""
    if undefined.empty:
        return
    folds = undefined.drop_duplicates([ID, FOLD]).groupby(ID)[FOLD].apply(lambda f: sorted(int(x) for x in f))
    shown = ", ".join(f"{uid} folds {list(f)}" for uid, f in list(folds.items())[:3])
    more = f" and {len(folds) - 3} more series" if len(folds) > 3 else ""
    log.warning(
        "MASE and RMSSE are undefined (NaN, counted in %s) for %d (series, fold) pairs whose in-sample naive "
        "scale is 0 or not finite: %s%s; check those series for a flat training window or overflowing values",
        N_SCALE_UNDEFINED,
        sum(len(f) for f in folds),
        shown,
        more,
    )


def _dm_verdicts(dm_table: pd.DataFrame | None, models: pd.Index) -> pd.Series:
    if dm_table is None or dm_table.empty:
        return pd.Series(pd.NA, index=models, dtype="boolean")
    return beats_reference(dm_table).reindex(models).astype("boolean")
