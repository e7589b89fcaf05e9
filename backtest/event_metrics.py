"""Scores of event forecasts (probabilities of a binary event) from the tidy predictions table.

Definitions (y in {0, 1} the outcome, p the predicted probability, d the decision "event" = p >= threshold):
- ROC AUC (sklearn roc_auc_score) and PR AUC (average precision, sklearn average_precision_score) rank the
  origins by p. Both are UNDEFINED when the scored set holds one class only (no event, or only events): they
  are NaN then, never 0.5 or 1, and the leaderboard counts such series in `n_auc_undefined`.
- Brier score = mean (p - y)^2 (sklearn brier_score_loss); log loss = -mean(y ln p + (1-y) ln(1-p)) (sklearn
  log_loss, p clipped to float eps by sklearn). Both are proper scores: defined for any class mix.
- Precision, recall and F1 of the decisions (sklearn, zero_division=NaN: precision with no predicted event
  and recall with no actual event are undefined, NaN). Each origin's decision uses its fold's threshold,
  chosen on the TRAINING tail (choose_threshold): no test outcome ever picks a threshold.
- positive_rate = share of origins the model flags (mean d); event_rate = share of origins with the event
  (mean y, the same for every model scored on the same origins).
- brier_skill = 1 - Brier / Brier(base_rate) on the same series: > 0 means better than climatology.

Metric tables: per (series, model, fold) with the cheap proper scores (n, n_pos, event rate, Brier, log loss,
positive rate, vectorised), and per (series, model) over all its folds (fold = ALL_FOLDS = -1) with every
metric. The leaderboard is the mean over series of the per-series values (NaN skipped), like the
forecasting leaderboard; mean_rank ranks models by Brier score within each series.

Significance: the Diebold-Mariano test with the Harvey-Leybourne-Newbold correction
(backtest.significance.dm_differential) on the per-origin Brier loss differential d_i = (p_model - y)^2 -
(p_base - y)^2 over the origins both models scored. As in the forecasting backtest, d is averaged per fold
(over its origins and over series: series are not treated as independent) and tested over the folds in time
order. Outcome windows of folds j apart overlap while j * step <= origins_per_fold + h - 1, so the long-run
variance uses lags up to floor((origins_per_fold + h - 1) / step) (dm_differential's h_eff = that + 1).
Why folds, not single origins: inside a fold every origin shares one fitted model and threshold, and the
base rate is constant, so the origin-level differential has a saw-tooth autocorrelation that a truncated
kernel turns into a far too small variance (bench_event --quick, lstm_event: one-sided p = 1.5e-6 on origins
vs 0.004 on folds, same predictions). `beats_base_rate` = one-sided p (model's loss lower) < alpha.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backtest.significance import ALPHA, dm_differential
from common.errors import DataError
from common.schema import (
    BASE_RATE,
    BEATS_BASE_RATE,
    BIN,
    BIN_LOWER,
    BIN_UPPER,
    BRIER,
    BRIER_SKILL,
    CALIBRATION_COLUMNS,
    COUNT,
    CURVE_COLUMNS,
    DS,
    EVENT_LEADERBOARD_COLUMNS,
    EVENT_METRICS,
    EVENT_PREDICTION_COLUMNS,
    EVENT_RATE,
    EVENT_SIGNIFICANCE_COLUMNS,
    F1,
    FOLD,
    ID,
    LOG_LOSS,
    LOSS,
    MEAN_PREDICTED,
    MEAN_RANK,
    METRIC,
    METRICS_COLUMNS,
    MODEL,
    MODEL_LOSS,
    N_AUC_UNDEFINED,
    N_FAILURES,
    N_OBS,
    N_POS,
    N_SERIES,
    OBSERVED_FREQUENCY,
    P_LESS,
    P_VALUE,
    POSITIVE_RATE,
    PR_AUC,
    PRECISION,
    RECALL,
    REFERENCE,
    REFERENCE_LOSS,
    ROC_AUC,
    STAT,
    THRESHOLD,
    VALUE,
    H,
    P,
    Y,
)

ALL_FOLDS = -1  # FOLD value of metric rows pooled over every fold of a series
FOLD_METRICS = (N_OBS, N_POS, EVENT_RATE, BRIER, LOG_LOSS, POSITIVE_RATE)
LOWER_IS_BETTER = (BRIER, LOG_LOSS)

# Decision threshold when the training tail holds no event: F1 is 0 at every threshold there.
FALLBACK_THRESHOLD = 0.5


def _arrays(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).reshape(-1)
    p = np.asarray(p, dtype=float).reshape(-1)
    if y.shape != p.shape:
        raise DataError(f"event metrics: {y.size} outcomes but {p.size} probabilities")
    if not (np.all(np.isin(y, (0.0, 1.0))) and np.all((p >= 0) & (p <= 1))):
        raise DataError("event metrics need outcomes in {0, 1} and probabilities in [0, 1] (no NaN)")
    return y, p


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold t maximising F1 of "event iff p >= t" on (y, p): candidates are the distinct p values.

    Ties go to the highest threshold (the fewest alarms). With no event in y every F1 is 0 and
    FALLBACK_THRESHOLD (0.5) is returned. A constant p (the base rate) gives t = p: always "event".
    """
    y, p = _arrays(y, p)
    positives = float(y.sum())
    if y.size == 0 or positives == 0:
        return FALLBACK_THRESHOLD
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    flagged = np.arange(1, ps.size + 1)
    last = np.r_[ps[1:] != ps[:-1], True]  # end of each run of equal p: flag the whole run together
    f1 = 2.0 * tp[last] / (flagged[last] + positives)
    candidates = ps[last]
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(candidates[best].max())


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: np.ndarray | float) -> dict[str, float]:
    """Every event metric of one scored set (see the module docstring); NaN where undefined."""
    from sklearn import metrics as skm

    y, p = _arrays(y, p)
    n = y.size
    out: dict[str, float] = {N_OBS: float(n), N_POS: float(y.sum())}
    if n == 0:
        return {**out, **{m: np.nan for m in EVENT_METRICS if m != BRIER_SKILL}}
    decision = (p >= np.asarray(threshold, dtype=float)).astype(int)
    two_classes = 0 < y.sum() < n
    labels = y.astype(int)
    out[ROC_AUC] = float(skm.roc_auc_score(labels, p)) if two_classes else np.nan
    out[PR_AUC] = float(skm.average_precision_score(labels, p)) if two_classes else np.nan
    out[BRIER] = float(skm.brier_score_loss(labels, p, pos_label=1))
    out[LOG_LOSS] = float(skm.log_loss(labels, p, labels=[0, 1]))
    out[PRECISION] = float(skm.precision_score(labels, decision, zero_division=np.nan))
    out[RECALL] = float(skm.recall_score(labels, decision, zero_division=np.nan))
    out[F1] = float(skm.f1_score(labels, decision, zero_division=np.nan))
    out[POSITIVE_RATE] = float(decision.mean())
    out[EVENT_RATE] = float(y.mean())
    return out


def check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in EVENT_PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DataError(f"event predictions lack column(s) {missing}; expected {list(EVENT_PREDICTION_COLUMNS)}")
    return predictions


def metrics_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Long metrics (unique_id, model, fold, h, metric, value): per fold (proper scores) and per series (all)."""
    check_predictions(predictions)
    if predictions.empty:
        return pd.DataFrame({c: [] for c in METRICS_COLUMNS})
    frame = predictions.assign(
        _se=(predictions[P] - predictions[Y]) ** 2,
        _ll=_log_losses(predictions[Y].to_numpy(float), predictions[P].to_numpy(float)),
        _d=(predictions[P] >= predictions[THRESHOLD]).astype(float),
    )
    keys = [ID, MODEL, FOLD, H]
    per_fold = frame.groupby(keys, sort=True).agg(
        **{
            N_OBS: (Y, "size"),
            N_POS: (Y, "sum"),
            EVENT_RATE: (Y, "mean"),
            BRIER: ("_se", "mean"),
            LOG_LOSS: ("_ll", "mean"),
            POSITIVE_RATE: ("_d", "mean"),
        }
    )
    fold_rows = per_fold.reset_index().melt(id_vars=keys, var_name=METRIC, value_name=VALUE)
    series_rows = []
    for (uid, model, h), group in predictions.groupby([ID, MODEL, H], sort=True):
        scores = classification_metrics(group[Y], group[P], group[THRESHOLD].to_numpy(float))
        series_rows += [(uid, model, ALL_FOLDS, h, m, v) for m, v in scores.items()]
    series = pd.DataFrame(series_rows, columns=list(METRICS_COLUMNS))
    out = pd.concat([series, fold_rows[list(METRICS_COLUMNS)]], ignore_index=True)
    out[FOLD] = out[FOLD].astype("int64")
    out[VALUE] = out[VALUE].astype(float)
    return out.sort_values([ID, MODEL, FOLD], kind="stable").reset_index(drop=True)


def _log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-origin log loss with sklearn's clipping (float64 eps), so per-fold means match sklearn.log_loss."""
    eps = np.finfo(np.float64).eps
    q = np.clip(p, eps, 1 - eps)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


def per_series_table(metrics: pd.DataFrame, *, reference: str = BASE_RATE) -> pd.DataFrame:
    """One row per (series, model): the pooled-over-folds metrics, plus brier_skill against `reference`."""
    rows = metrics[metrics[FOLD] == ALL_FOLDS]
    if rows.empty:
        return pd.DataFrame(columns=[ID, MODEL, *EVENT_METRICS, N_OBS, N_POS])
    wide = rows.set_index([ID, MODEL, METRIC])[VALUE].unstack(METRIC).reset_index()
    wide.columns.name = None
    base = wide.loc[wide[MODEL] == reference, [ID, BRIER]].rename(columns={BRIER: "_base"})
    wide = wide.merge(base, on=ID, how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        wide[BRIER_SKILL] = np.where(wide["_base"] > 0, 1.0 - wide[BRIER] / wide["_base"], np.nan)
    cols = [ID, MODEL, *EVENT_METRICS, N_OBS, N_POS]
    return wide.reindex(columns=cols).sort_values([ID, MODEL], kind="stable").reset_index(drop=True)


def leaderboard(
    per_series: pd.DataFrame, significance: pd.DataFrame | None = None, failures: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per model: mean over series of each metric, mean Brier rank, counts and the test vs base rate."""
    if per_series.empty:
        return pd.DataFrame(columns=list(EVENT_LEADERBOARD_COLUMNS))
    ps = per_series.assign(_rank=per_series.groupby(ID)[BRIER].rank(method="average"))
    board = ps.groupby(MODEL, sort=False)[list(EVENT_METRICS)].mean()
    board[MEAN_RANK] = ps.groupby(MODEL, sort=False)["_rank"].mean()
    board[N_SERIES] = ps.groupby(MODEL, sort=False)[ID].nunique()
    board[N_AUC_UNDEFINED] = ps[ROC_AUC].isna().groupby(ps[MODEL]).sum()
    fails = failures.groupby(MODEL).size() if failures is not None and len(failures) else pd.Series(dtype=int)
    board[N_FAILURES] = fails.reindex(board.index).fillna(0).astype(int)
    sig = significance.set_index(MODEL) if significance is not None and len(significance) else None
    for col in (P_VALUE, P_LESS):
        board[col] = sig[col].reindex(board.index) if sig is not None else np.nan
    beats = sig[BEATS_BASE_RATE].reindex(board.index) if sig is not None else pd.Series(np.nan, index=board.index)
    board[BEATS_BASE_RATE] = beats.eq(True)  # a model without a test (NaN) does not beat the base rate
    board = board.reset_index().sort_values([MEAN_RANK, BRIER], kind="stable").reset_index(drop=True)
    return board[list(EVENT_LEADERBOARD_COLUMNS)]


def calibration_table(predictions: pd.DataFrame, *, bins: int = 10) -> pd.DataFrame:
    """Reliability bins per model (pooled over series): equal-width bins of p; empty bins are left out."""
    check_predictions(predictions)
    if bins < 1:
        raise DataError(f"calibration needs bins >= 1, got {bins}")
    if predictions.empty:
        return pd.DataFrame(columns=list(CALIBRATION_COLUMNS))
    p = predictions[P].to_numpy(float)
    index = np.minimum((p * bins).astype(int), bins - 1)  # p == 1 falls in the last bin
    frame = predictions[[MODEL, Y, P]].assign(**{BIN: index})
    out = (
        frame.groupby([MODEL, BIN], sort=True)
        .agg(**{MEAN_PREDICTED: (P, "mean"), OBSERVED_FREQUENCY: (Y, "mean"), COUNT: (Y, "size")})
        .reset_index()
    )
    out[BIN_LOWER] = out[BIN] / bins
    out[BIN_UPPER] = (out[BIN] + 1) / bins
    return out[list(CALIBRATION_COLUMNS)]


def curve_table(predictions: pd.DataFrame, *, max_points: int = 200) -> pd.DataFrame:
    """ROC (x = false positive rate, y = true positive rate) and PR (x = recall, y = precision) curves per model,
    pooled over series, thinned to about `max_points` points; `area` is the pooled ROC AUC / average precision.

    A model whose pooled origins hold one class gets no curve (both are undefined).
    """
    from sklearn import metrics as skm

    check_predictions(predictions)
    rows = []
    for model, group in predictions.groupby(MODEL, sort=False):
        y, p = group[Y].to_numpy(int), group[P].to_numpy(float)
        if not 0 < y.sum() < y.size:
            continue
        fpr, tpr, _ = skm.roc_curve(y, p)
        precision, recall, _ = skm.precision_recall_curve(y, p)
        auc, ap = skm.roc_auc_score(y, p), skm.average_precision_score(y, p)
        for name, xs, ys, area in (("roc", fpr, tpr, auc), ("pr", recall[::-1], precision[::-1], ap)):
            keep = _thin(xs.size, max_points)
            rows += [
                (str(model), name, float(a), float(b), float(area)) for a, b in zip(xs[keep], ys[keep], strict=True)
            ]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _thin(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(int), n - 1])


def overlap_lags(*, horizon: int, origins_per_fold: int = 1, step: int = 1) -> int:
    """dm_differential's h for fold-level differentials: 1 + the folds a fold's outcome windows overlap."""
    return (int(origins_per_fold) + int(horizon) - 1) // max(1, int(step)) + 1


def significance_table(
    predictions: pd.DataFrame,
    *,
    horizon: int,
    origins_per_fold: int = 1,
    step: int = 1,
    reference: str = BASE_RATE,
    alpha: float = ALPHA,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """DM-HLN test of every model's Brier loss against `reference`'s over folds (see the module docstring)."""
    check_predictions(predictions)
    present = list(pd.unique(predictions[MODEL]))
    if reference not in present:
        return pd.DataFrame(columns=list(EVENT_SIGNIFICANCE_COLUMNS))
    keys = [ID, FOLD, DS]
    lags = overlap_lags(horizon=horizon, origins_per_fold=origins_per_fold, step=step)
    loss = predictions[[*keys, MODEL]].assign(_l=(predictions[P] - predictions[Y]) ** 2)
    ref = loss.loc[loss[MODEL] == reference, [*keys, "_l"]].rename(columns={"_l": "_ref"})
    rows = []
    for model in models or [m for m in present if m != reference]:
        own = loss.loc[loss[MODEL] == model, [*keys, "_l"]]
        paired = own.merge(ref, on=keys, how="inner")
        d = paired.assign(_d=paired["_l"] - paired["_ref"]).groupby(FOLD, sort=True)["_d"].mean()
        result = dm_differential(d.to_numpy(), h=lags)
        p_less = result.p_value_less
        rows.append(
            {
                MODEL: str(model),
                REFERENCE: reference,
                LOSS: BRIER,
                N_OBS: int(len(paired)),
                MODEL_LOSS: float(paired["_l"].mean()) if len(paired) else np.nan,
                REFERENCE_LOSS: float(paired["_ref"].mean()) if len(paired) else np.nan,
                STAT: result.stat,
                P_VALUE: result.p_value,
                P_LESS: p_less,
                BEATS_BASE_RATE: bool(np.isfinite(p_less) and p_less < alpha),
            }
        )
    return pd.DataFrame(rows, columns=list(EVENT_SIGNIFICANCE_COLUMNS))
