"""Probabilistic forecast scores (pinball, CRPS from quantiles), interval coverage backtests and out-of-sample R².

Pure numpy/pandas/scipy over the tidy backtest table; backtest.metrics turns the row scores into metrics and
backtest.evaluate can add `interval_tests` to a run's tables.

Quantile score (pinball loss) of the τ-quantile q for outcome y: QS_τ(q, y) = (τ - 1{y < q})·(y - q) >= 0.

CRPS from quantiles. CRPS(F, y) = 2∫₀¹ QS_τ(F⁻¹(τ), y) dτ, but a forecast here is known only at K levels
τ_1 < ... < τ_K. `crps_from_quantiles` takes F⁻¹ to be the piecewise-linear interpolant of the K quantiles in τ,
flat beyond the outermost levels (point masses τ_1 at q_1 and 1 - τ_K at q_K), and integrates QS exactly over
[0, 1]: QS_τ = τ(y - q(τ)) + (q(τ) - y)₊, the first term is quadratic in τ on each segment (Simpson is exact),
the second the positive part of a linear function (closed form). This is the exact CRPS of a proper
distribution, the linear-spline quantile function of Gasthaus et al. (2019, "Probabilistic forecasting with
spline quantile function RNNs"), so:
- a degenerate forecast (all quantiles equal ŷ) scores exactly |y - ŷ| (up to float rounding, ~1e-16
  relative), and a scaled CRPS of a point forecast is its MASE;
- on 99 levels 0.01..0.99 of a Gaussian it is within 0.01% of the exact Gaussian CRPS (properscoring) on
  average over y ~ the forecast (ratio of expected scores), and within 0.23% at every y in ±4σ;
- on the pipeline's 5 levels (0.025, 0.1, 0.5, 0.9, 0.975: the 95%/80% bounds and the median ŷ) of a Gaussian,
  measured by quadrature over y: the expected score is +0.42% above the exact CRPS for y ~ the forecast
  (-0.87% for y with twice its spread, +6.4% with half), the mean per-y relative difference +3.7%, and per y it
  ranges from -3.7% to +15.9% (the maximum at y = the median, where the straight segment from q(0.1) to q(0.5)
  overstates the density's spread; flat tails lose a little spread far out). Rankings of models are what it is
  for; read its level as the CRPS of the 5-quantile distribution, not of the model's full one.
The common alternatives are much coarser on 5 levels: the equal-weight mean 2/K·Σ_k QS_τk used by AutoGluon's
(weighted/scaled) quantile loss, GluonTS' mean_wQuantileLoss and scoringrules' `crps_quantile` is -39% there
(it needs many evenly spaced levels; +1.0% on 99), and the trapezoid rule on the K scores with the same flat tails
is -12%. Crossing quantiles are sorted first (the rearrangement of Chernozhukov et al., 2010), so the score is
always that of a valid distribution.

Interval backtests on violations v_t = 1{y_t outside [lo_t, hi_t]} with nominal rate p = 1 - level/100, using the
0·log 0 = 0 convention so no violations, all violations or an empty transition cell give finite statistics:
- Kupiec (1995) unconditional coverage: x violations in n, π̂ = x/n,
  LR_uc = -2[x·ln p + (n - x)·ln(1 - p) - x·ln π̂ - (n - x)·ln(1 - π̂)] ~ χ²(1).
- Christoffersen (1998) independence: n_ij counts transitions v_{t-1} = i -> v_t = j within each sequence (one
  per (series, horizon step), in fold order; a transition never spans two sequences or a missing fold),
  π_01 = n_01/(n_00 + n_01), π_11 = n_11/(n_10 + n_11), π = (n_01 + n_11)/T over the T transitions,
  LR_ind = -2[ln L(π) - ln L(π_01, π_11)] ~ χ²(1), with L the Bernoulli likelihood of the transitions.
- conditional coverage LR_cc = LR_uc + LR_ind ~ χ²(2) (LR_uc over all n rows; Christoffersen conditions on each
  sequence's first row, a difference of one row per sequence).
Overlapping horizons (h > step) make consecutive folds' h-step outcomes share days, so clustered violations
at large h are partly mechanical; read the independence test per horizon there.

Out-of-sample R² (Campbell and Thompson, 2008) of the next-session log return against the zero-return (random
walk) forecast: at each origin's h = 1 row r = ln(y / last_y), r̂ = ln(ŷ / last_y), and
R²_OS = 1 - Σ(r - r̂)² / Σ r². The naive forecast (ŷ = last_y) scores exactly 0; a row with a non-positive price
has no log return and is left out (NaN), never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import xlogy
from scipy.stats import chi2

from common.errors import ConfigError, DataError
from common.schema import (
    CC_P,
    CC_STAT,
    CHRISTOFFERSEN_P,
    CHRISTOFFERSEN_STAT,
    EXPECTED_RATE,
    FOLD,
    ID,
    INTERVAL_LEVEL,
    INTERVAL_TEST_COLUMNS,
    KUPIEC_P,
    KUPIEC_STAT,
    LEVELS,
    MODEL,
    N_INTERVALS,
    N_TRANSITIONS,
    N_VIOLATIONS,
    VIOLATION_RATE,
    H,
    Y,
    interval_columns,
)


# ---- quantile scores --------------------------------------------------------------------------------------
def pinball_loss(y: np.ndarray, q: np.ndarray, tau: float | np.ndarray) -> np.ndarray:
    """Elementwise quantile score (τ - 1{y < q})·(y - q): the τ-quantile's loss, >= 0, NaN where y or q is."""
    y, q, tau = np.asarray(y, float), np.asarray(q, float), np.asarray(tau, float)
    if np.any((tau < 0) | (tau > 1)):
        raise ConfigError(f"quantile levels must lie in [0, 1], got {tau.tolist()}; pass 0.9, not 90")
    e = y - q
    return np.maximum(tau * e, (tau - 1.0) * e)


def crps_from_quantiles(y: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] | np.ndarray) -> np.ndarray:
    """CRPS of each row's forecast known by its quantiles at `levels` (linear in τ between them, flat outside).

    Args:
        y: outcomes, shape (n,).
        quantiles: shape (n, K), column k the forecast's quantile at levels[k]; a row with a NaN scores NaN.
        levels: K strictly increasing levels in (0, 1).

    Returns:
        shape (n,), in y's units; see the module docstring for the rule and its accuracy.
    """
    tau = _check_levels(levels)
    y = np.asarray(y, float)
    q = np.asarray(quantiles, float)
    if q.ndim != 2 or q.shape != (y.shape[0], tau.size):
        raise DataError(
            f"quantiles must have shape (len(y), len(levels)) = ({y.shape[0]}, {tau.size}), got {q.shape}; "
            "pass one column per level"
        )
    missing = np.isnan(q).any(axis=1) | np.isnan(y)
    q = np.sort(np.where(missing[:, None], 0.0, q), axis=1)  # rearranged: crossing quantiles -> a valid F⁻¹
    y0 = np.where(missing, 0.0, y)
    lin = y0[:, None] - q  # y - q(τ) at the knots; linear in τ between them
    t_lo, t_hi = tau[:-1], tau[1:]
    d = np.diff(tau)
    # ∫ τ·(y - q(τ)) dτ: flat tails in closed form, Simpson (exact for a quadratic) on each segment.
    moment = lin[:, 0] * tau[0] ** 2 / 2 + lin[:, -1] * (1 - tau[-1] ** 2) / 2
    moment += np.sum(
        d / 6 * (t_lo * lin[:, :-1] + 2 * (t_lo + t_hi) * (lin[:, :-1] + lin[:, 1:]) / 2 + t_hi * lin[:, 1:]),
        axis=1,
    )
    # ∫ (q(τ) - y)₊ dτ: the positive part of a linear function, averaged over each segment in closed form.
    g = -lin
    ga, gb = g[:, :-1], g[:, 1:]
    same_side = np.sign(ga) * np.sign(gb) >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.maximum(ga, gb) ** 2 / (2 * np.abs(gb - ga))
    positive = np.where(same_side, (np.maximum(ga, 0) + np.maximum(gb, 0)) / 2, crossing)
    excess = tau[0] * np.maximum(g[:, 0], 0) + (1 - tau[-1]) * np.maximum(g[:, -1], 0)
    excess += np.sum(d * positive, axis=1)
    return np.where(missing, np.nan, 2.0 * (moment + excess))


def _check_levels(levels: Sequence[float] | np.ndarray) -> np.ndarray:
    tau = np.asarray(levels, float).ravel()
    if tau.size == 0 or np.any(~np.isfinite(tau)) or np.any((tau <= 0) | (tau >= 1)) or np.any(np.diff(tau) <= 0):
        raise ConfigError(
            f"quantile levels must be strictly increasing in (0, 1), got {tau.tolist()}; "
            "e.g. (0.025, 0.1, 0.5, 0.9, 0.975)"
        )
    return tau


# ---- interval coverage backtests --------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageTest:
    """One coverage likelihood-ratio test: statistic, χ² p-value and the counts behind them.

    `n` and `n_violations` count every row tested; `n_transitions` the consecutive pairs the independence test
    used (0 for Kupiec, which uses none). stat and p_value are NaN when there is nothing to test.
    """

    stat: float
    p_value: float
    dof: int
    n: int
    n_violations: int
    expected_rate: float
    observed_rate: float
    n_transitions: int = 0


def kupiec_test(violations: Sequence[bool] | np.ndarray, *, level: float) -> CoverageTest:
    """Kupiec's unconditional coverage LR: is the violation rate the nominal 1 - level/100? χ²(1).

    Args:
        violations: 1/True where y fell outside the interval, 0/False inside.
        level: the interval's nominal coverage in percent (80, 95).
    """
    v = _as_violations([violations])[0]
    return _kupiec(v, _expected_rate(level))


def christoffersen_test(sequences: Sequence[Sequence[bool] | np.ndarray] | np.ndarray, *, level: float) -> CoverageTest:
    """Christoffersen's independence LR: does a violation make the next one likelier? χ²(1).

    Args:
        sequences: one time-ordered violation sequence (1-D) or several (e.g. one per (series, horizon step) in
            fold order); their transition counts are pooled, never counting a transition across two sequences.
        level: the interval's nominal coverage in percent (sets `expected_rate`; the test itself does not use it).
    """
    v, starts = _pooled(sequences)
    return _christoffersen(v, starts, _expected_rate(level))


def conditional_coverage_test(
    sequences: Sequence[Sequence[bool] | np.ndarray] | np.ndarray, *, level: float
) -> CoverageTest:
    """Christoffersen's conditional coverage LR_cc = LR_uc + LR_ind: right rate and no clustering, χ²(2)."""
    v, starts = _pooled(sequences)
    p = _expected_rate(level)
    return _conditional(_kupiec(v, p), _christoffersen(v, starts, p))


def interval_tests(forecasts: pd.DataFrame) -> pd.DataFrame:
    """INTERVAL_TEST_COLUMNS: Kupiec, Christoffersen and conditional coverage per (model, level in 80, 95).

    Violations are y < lo or y > hi (coverage counts lo <= y <= hi as inside). Sequences are per
    (unique_id, model, h) in fold order, split where a fold is missing. Rows without both bounds are left out; a
    model with no interval at a level gets no row.
    """
    rows: list[dict[str, object]] = []
    for level in LEVELS:
        lo, hi = interval_columns(level)
        if lo not in forecasts.columns or hi not in forecasts.columns:
            continue
        f = forecasts.loc[forecasts[[Y, lo, hi]].notna().all(axis=1), [MODEL, ID, H, FOLD, Y, lo, hi]]
        if f.empty:
            continue
        f = f.sort_values([MODEL, ID, H, FOLD], kind="stable").reset_index(drop=True)
        violated = ((f[Y] < f[lo]) | (f[Y] > f[hi])).to_numpy()
        keys = f[[MODEL, ID, H]].astype(object)
        continues = (keys == keys.shift()).all(axis=1) & (f[FOLD] == f[FOLD].shift() + 1)
        starts = ~continues.to_numpy()
        p = _expected_rate(level)
        for model, idx in f.groupby(MODEL, sort=True, observed=True).indices.items():
            v, s = violated[idx], starts[idx].copy()
            s[0] = True
            uc, ind = _kupiec(v, p), _christoffersen(v, s, p)
            cc = _conditional(uc, ind)
            rows.append(
                {
                    MODEL: model,
                    INTERVAL_LEVEL: level,
                    N_INTERVALS: uc.n,
                    N_VIOLATIONS: uc.n_violations,
                    VIOLATION_RATE: uc.observed_rate,
                    EXPECTED_RATE: p,
                    KUPIEC_STAT: uc.stat,
                    KUPIEC_P: uc.p_value,
                    N_TRANSITIONS: ind.n_transitions,
                    CHRISTOFFERSEN_STAT: ind.stat,
                    CHRISTOFFERSEN_P: ind.p_value,
                    CC_STAT: cc.stat,
                    CC_P: cc.p_value,
                }
            )
    out = pd.DataFrame(rows, columns=list(INTERVAL_TEST_COLUMNS))
    return out.sort_values([MODEL, INTERVAL_LEVEL], kind="stable").reset_index(drop=True)


def _expected_rate(level: float) -> float:
    if not 0 < level < 100:
        raise ConfigError(f"interval level must be a coverage in percent in (0, 100), got {level!r}; pass 95")
    return 1.0 - level / 100.0


def _as_violations(sequences: Sequence[Sequence[bool] | np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(sequences, np.ndarray) and sequences.ndim <= 1:
        sequences = [sequences]
    elif not isinstance(sequences, np.ndarray) and all(np.ndim(s) == 0 for s in sequences):
        sequences = [np.asarray(sequences)]  # one plain list of 0/1
    out = []
    for k, seq in enumerate(sequences):
        v = np.asarray(seq, dtype=float).ravel()
        bad = np.flatnonzero((v != 0) & (v != 1))
        if bad.size:
            raise DataError(
                f"violations must be 0/1 or booleans; sequence {k} has {v[bad[0]]!r} at position {int(bad[0])}; "
                "drop rows without interval bounds before testing"
            )
        out.append(v.astype(bool))
    return out


def _pooled(sequences: Sequence[Sequence[bool] | np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All sequences concatenated, and a mask of each sequence's first element (no transition into it)."""
    seqs = [s for s in _as_violations(sequences) if s.size]
    if not seqs:
        return np.zeros(0, bool), np.zeros(0, bool)
    starts = np.zeros(sum(s.size for s in seqs), bool)
    starts[np.cumsum([0, *(s.size for s in seqs[:-1])])] = True
    return np.concatenate(seqs), starts


def _loglik(k: float, n: float, p: float) -> float:
    """Bernoulli log-likelihood of k successes in n at rate p, with 0·log 0 = 0."""
    return float(xlogy(k, p) + xlogy(n - k, 1.0 - p))


def _lr(stat: float, dof: int) -> tuple[float, float]:
    stat = max(stat, 0.0)  # a likelihood ratio is >= 0; rounding can leave -1e-16
    return stat, float(chi2.sf(stat, dof))


def _kupiec(v: np.ndarray, p: float) -> CoverageTest:
    n, x = int(v.size), int(v.sum())
    if n == 0:
        return CoverageTest(np.nan, np.nan, 1, 0, 0, p, np.nan)
    rate = x / n
    stat, p_value = _lr(-2.0 * (_loglik(x, n, p) - _loglik(x, n, rate)), 1)
    return CoverageTest(stat, p_value, 1, n, x, p, rate)


def _christoffersen(v: np.ndarray, starts: np.ndarray, p: float) -> CoverageTest:
    n, x = int(v.size), int(v.sum())
    rate = x / n if n else np.nan
    prev, cur = v[:-1][~starts[1:]], v[1:][~starts[1:]]  # transitions inside a sequence only
    n00, n01 = int(np.sum(~prev & ~cur)), int(np.sum(~prev & cur))
    n10, n11 = int(np.sum(prev & ~cur)), int(np.sum(prev & cur))
    t = n00 + n01 + n10 + n11
    if t == 0:
        return CoverageTest(np.nan, np.nan, 1, n, x, p, rate, 0)
    # An empty row of the transition matrix has no likelihood term; any rate gives 0 there.
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / t
    restricted = _loglik(n01 + n11, t, pi)
    unrestricted = _loglik(n01, n00 + n01, pi01) + _loglik(n11, n10 + n11, pi11)
    stat, p_value = _lr(-2.0 * (restricted - unrestricted), 1)
    return CoverageTest(stat, p_value, 1, n, x, p, rate, t)


def _conditional(uc: CoverageTest, ind: CoverageTest) -> CoverageTest:
    stat = uc.stat + ind.stat
    stat, p_value = (np.nan, np.nan) if np.isnan(stat) else _lr(stat, 2)
    return CoverageTest(stat, p_value, 2, uc.n, uc.n_violations, uc.expected_rate, uc.observed_rate, ind.n_transitions)


# ---- out-of-sample R² of next-session returns ---------------------------------------------------------------
def return_errors(y: np.ndarray, yhat: np.ndarray, last_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((r - r̂)², r²) per row for the log returns r = ln(y/last_y), r̂ = ln(ŷ/last_y); NaN where a price is <= 0."""
    y, yhat, last_y = (np.asarray(a, float) for a in (y, yhat, last_y))
    valid = (y > 0) & (yhat > 0) & (last_y > 0)  # NaN compares False: missing prices are undefined too
    safe_last = np.where(valid, last_y, 1.0)
    r = np.log(np.where(valid, y, 1.0) / safe_last)
    r_hat = np.log(np.where(valid, yhat, 1.0) / safe_last)
    return np.where(valid, (r - r_hat) ** 2, np.nan), np.where(valid, r**2, np.nan)


def oos_r2(y: np.ndarray, yhat: np.ndarray, last_y: np.ndarray) -> float:
    """Campbell-Thompson R²_OS = 1 - Σ(r - r̂)² / Σ r² over the rows with positive prices (pass h = 1 rows).

    0 for the naive forecast, > 0 when the forecast beats a zero return; NaN with no valid row or Σ r² = 0.
    """
    se, se0 = return_errors(y, yhat, last_y)
    keep = ~np.isnan(se)
    denom = float(np.sum(se0[keep]))
    return 1.0 - float(np.sum(se[keep])) / denom if denom > 0 else np.nan
