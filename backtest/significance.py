"""Diebold-Mariano tests of equal predictive accuracy with the Harvey-Leybourne-Newbold correction.

For two forecast error series e1, e2 of the same targets (here: the folds of a backtest, in time order),
d_t = L(e1_t) - L(e2_t) with L(e) = e² ("squared") or |e| ("absolute"). With n pairs, mean d̄ and
autocovariances γ_k = (1/n) Σ_{t>k} (d_t - d̄)(d_{t-k} - d̄), the long-run variance of d̄ uses a
rectangular (truncated) kernel up to lag h-1: V = (γ_0 + 2 Σ_{k=1}^{h-1} γ_k) / n, because h-step-ahead
errors of consecutive origins are MA(h-1). DM = d̄ / sqrt(V), and the HLN small-sample statistic is
DM* = DM · sqrt((n + 1 - 2h + h(h-1)/n) / n), compared with Student-t, n - 1 degrees of freedom.
p_value is two-sided; p_less is one-sided for "model 1 has LOWER expected loss" (d̄ < 0).

Edge cases: if the truncated-kernel variance is negative (possible for h > 1) only γ_0 is used, as R's
forecast::dm.test does; if the differential has zero variance (identical forecasts) the statistic is NaN
and both p-values are 1 (no evidence either way); fewer than 2 pairs -> NaN everywhere.

Origins `step` sessions apart overlap less: errors at step h are MA(ceil(h/step) - 1) over the fold index,
so tables take `step` (the fold plan's) and test with h_eff = ceil(h/step). step=1 is the textbook case.

Tables: `dm_series_table` tests per (series, model vs reference, h) over folds. `dm_table` is the overall
test per (model vs reference, h): the loss differential is averaged across series per fold first, then
tested over folds, which keeps cross-series correlation honest (series are not treated as independent).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from common.errors import ConfigError
from common.schema import (
    BEATS_NAIVE_DM,
    BETTER,
    DM_COLUMNS,
    FOLD,
    ID,
    LOSS,
    MODEL,
    N_OBS,
    NAIVE,
    P_LESS,
    P_VALUE,
    REFERENCE,
    STAT,
    YHAT,
    H,
    Y,
)

Loss = Literal["squared", "absolute"]
LOSSES: tuple[Loss, ...] = ("squared", "absolute")
ALPHA = 0.05


@dataclass(frozen=True)
class DMResult:
    """HLN-corrected DM statistic, two-sided p, one-sided p for 'first forecast better', pairs used."""

    stat: float
    p_value: float
    p_value_less: float
    n: int


def loss_values(errors: np.ndarray, loss: Loss) -> np.ndarray:
    """L(e): e² for 'squared', |e| for 'absolute'."""
    errors = np.asarray(errors, float)
    if loss == "squared":
        return errors**2
    if loss == "absolute":
        return np.abs(errors)
    raise ConfigError(f"loss must be 'squared' or 'absolute', got {loss!r}")


def dm_test(e1: np.ndarray, e2: np.ndarray, *, h: int = 1, loss: Loss = "squared") -> DMResult:
    """Diebold-Mariano-HLN test of forecast errors e1 vs e2 (time-ordered, same targets) at horizon h."""
    e1, e2 = np.asarray(e1, float), np.asarray(e2, float)
    if e1.shape != e2.shape:
        raise ConfigError(f"e1 and e2 must have the same length, got {e1.shape} and {e2.shape}")
    return dm_differential(loss_values(e1, loss) - loss_values(e2, loss), h=h)


def dm_differential(d: np.ndarray, *, h: int = 1) -> DMResult:
    """DM-HLN test on a loss differential series d_t = L(e1_t) - L(e2_t) (NaNs dropped)."""
    if not isinstance(h, int | np.integer) or h < 1:
        raise ConfigError(f"h must be a positive integer, got {h!r}")
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n < 2:
        return DMResult(np.nan, np.nan, np.nan, n)
    dbar = float(d.mean())
    dev = d - dbar
    lags = min(int(h) - 1, n - 1)
    gamma = np.array([dev[k:] @ dev[: n - k] / n for k in range(lags + 1)])
    if gamma[0] <= (1e-12 * float(np.max(np.abs(d)))) ** 2:  # identical forecasts (or a constant differential)
        return DMResult(np.nan, 1.0, 1.0, n)
    var = (gamma[0] + 2.0 * gamma[1:].sum()) / n
    if var <= 0:  # truncated kernel can go negative for h > 1: fall back to lag 0 (as forecast::dm.test)
        var = gamma[0] / n
    factor = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if factor <= 0:  # too few origins for this horizon
        return DMResult(np.nan, np.nan, np.nan, n)
    stat = dbar / math.sqrt(var) * math.sqrt(factor)
    p_two = float(2.0 * stats.t.sf(abs(stat), df=n - 1))
    p_less = float(stats.t.cdf(stat, df=n - 1))
    return DMResult(float(stat), p_two, p_less, n)


def dm_table(
    forecasts: pd.DataFrame,
    reference: str = NAIVE,
    *,
    losses: Sequence[Loss] = LOSSES,
    step: int = 1,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Overall DM test per (model vs reference, h, loss) on the cross-sectional mean differential per fold.

    Columns DM_COLUMNS; `better` = p_less < alpha (model's expected loss lower than the reference's).
    """
    rows = []
    for model, paired in _paired_errors(forecasts, reference):
        for loss in losses:
            paired = paired.assign(_d=loss_values(paired["_e1"], loss) - loss_values(paired["_e2"], loss))
            for h, group in paired.groupby(H, sort=True):
                d = group.groupby(FOLD, sort=True)["_d"].mean().to_numpy()
                rows.append(_dm_row(model, reference, int(h), loss, d, step=step, alpha=alpha))
    return pd.DataFrame(rows, columns=list(DM_COLUMNS))


def dm_series_table(
    forecasts: pd.DataFrame,
    reference: str = NAIVE,
    *,
    losses: Sequence[Loss] = LOSSES,
    step: int = 1,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """DM test per (series, model vs reference, h, loss) over that series' folds; unique_id + DM_COLUMNS."""
    rows = []
    for model, paired in _paired_errors(forecasts, reference):
        for loss in losses:
            paired = paired.assign(_d=loss_values(paired["_e1"], loss) - loss_values(paired["_e2"], loss))
            for (uid, h), group in paired.groupby([ID, H], sort=True):
                d = group.sort_values(FOLD)["_d"].to_numpy()
                rows.append({ID: uid, **_dm_row(model, reference, int(h), loss, d, step=step, alpha=alpha)})
    return pd.DataFrame(rows, columns=[ID, *DM_COLUMNS])


def dm_pairwise(forecasts: pd.DataFrame, *, h: int = 1, loss: Loss = "squared", step: int = 1) -> pd.DataFrame:
    """Two-sided p-values of the overall DM test at step h for every pair of models (symmetric, NaN diagonal)."""
    at_h = forecasts.loc[forecasts[H] == h]
    names = sorted(at_h[MODEL].unique())
    matrix = pd.DataFrame(np.nan, index=pd.Index(names, name=MODEL), columns=pd.Index(names, name=REFERENCE))
    for reference in names:
        table = dm_table(at_h, reference, losses=(loss,), step=step)
        for row in table.itertuples():
            matrix.loc[row.model, reference] = row.p_value
    return matrix


def beats_reference(dm: pd.DataFrame, *, loss: Loss = "squared", alpha: float = ALPHA) -> pd.Series:
    """Leaderboard rule: a model beats the reference iff its overall one-sided DM test on `loss` is
    significant (p_less < alpha) at EVERY horizon step.

    Requiring all steps is an intersection-union test, so the verdict keeps level alpha without a
    multiple-testing correction; it is deliberately conservative. NaN p-values count as not significant.
    """
    rows = dm.loc[dm[LOSS] == loss]
    verdict = rows.assign(_sig=rows[P_LESS].lt(alpha)).groupby(MODEL)["_sig"].all()
    return verdict.rename(BEATS_NAIVE_DM)


def _paired_errors(forecasts: pd.DataFrame, reference: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """(model, frame of unique_id, fold, h, _e1 = model error, _e2 = reference error) for every other model."""
    models = list(pd.unique(forecasts[MODEL]))
    if reference not in models:
        raise ConfigError(
            f"reference model {reference!r} is not in the forecasts (models: {sorted(models)}); "
            f"add it to the backtest or choose another reference"
        )
    errors = forecasts[[ID, MODEL, FOLD, H]].assign(_e=forecasts[Y] - forecasts[YHAT])
    ref = errors.loc[errors[MODEL] == reference, [ID, FOLD, H, "_e"]].rename(columns={"_e": "_e2"})
    for model in sorted(m for m in models if m != reference):
        own = errors.loc[errors[MODEL] == model, [ID, FOLD, H, "_e"]].rename(columns={"_e": "_e1"})
        yield model, own.merge(ref, on=[ID, FOLD, H], how="inner")  # only targets both models forecast


def _dm_row(model: str, reference: str, h: int, loss: str, d: np.ndarray, *, step: int, alpha: float) -> dict:
    result = dm_differential(d, h=math.ceil(h / step))
    better = bool(result.p_value_less < alpha) if np.isfinite(result.p_value_less) else False
    return {
        MODEL: model,
        REFERENCE: reference,
        H: h,
        LOSS: loss,
        STAT: result.stat,
        P_VALUE: result.p_value,
        P_LESS: result.p_value_less,
        N_OBS: result.n,
        BETTER: better,
    }
