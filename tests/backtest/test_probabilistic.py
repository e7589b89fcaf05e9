"""Probabilistic scores: CRPS from quantiles vs the exact Gaussian CRPS, pinball, coverage LR tests, OOS R²."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import properscoring
import pytest
from bt_helpers import factory, panel
from scipy.stats import chi2, norm

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from backtest.metrics import SUMMARY_METRICS, metrics_table, per_horizon_table, per_series_table
from backtest.probabilistic import (
    christoffersen_test,
    conditional_coverage_test,
    crps_from_quantiles,
    interval_tests,
    kupiec_test,
    oos_r2,
    pinball_loss,
    return_errors,
)
from common.errors import ConfigError, DataError
from common.schema import (
    FOLD,
    HI_80,
    HI_95,
    ID,
    INTERVAL_LEVEL,
    INTERVAL_TEST_COLUMNS,
    LAST_Y,
    LO_80,
    LO_95,
    MASE,
    MODEL,
    OOS_R2,
    PINBALL,
    RET_SE,
    RET_SE0,
    SCALE_MAE,
    SCALE_MSE,
    SCALED_CRPS,
    YHAT,
    H,
    Y,
)

FIVE = np.array([0.025, 0.1, 0.5, 0.9, 0.975])
DENSE = np.arange(1, 100) / 100


@pytest.fixture(autouse=True)
def _no_runtime_warnings():
    """Edge cases (0 violations, empty cells, bad prices) must not warn: 0·log 0 = 0 and masked logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def _gaussian(levels: np.ndarray, n: int, *, seed: int, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(100, 10, n), rng.uniform(0.5, 3.0, n)
    y = mu + spread * sigma * rng.normal(size=n)
    quantiles = mu[:, None] + sigma[:, None] * norm.ppf(levels)[None, :]
    return y, quantiles, properscoring.crps_gaussian(y, mu, sigma)


# ---- CRPS -------------------------------------------------------------------------------------------------
def test_crps_on_a_dense_grid_matches_the_exact_gaussian_crps():
    y, q, exact = _gaussian(DENSE, 5000, seed=1)
    approx = crps_from_quantiles(y, q, DENSE)
    assert abs(np.mean(approx / exact - 1)) < 0.01
    assert abs(approx.mean() / exact.mean() - 1) < 0.001  # measured 0.01%


def test_crps_on_the_five_pipeline_levels_is_within_the_documented_tolerance():
    """Docstring: expected score +0.42% (y ~ forecast), per y between -3.7% and +15.9%."""
    y, q, exact = _gaussian(FIVE, 20000, seed=2)
    approx = crps_from_quantiles(y, q, FIVE)
    assert abs(approx.mean() / exact.mean() - 1) < 0.015
    ratio = approx / exact
    assert ratio.min() > 1 - 0.04 and ratio.max() < 1 + 0.16


def test_crps_is_the_exact_integral_of_the_piecewise_linear_quantile_function():
    rng = np.random.default_rng(3)
    q = np.sort(rng.normal(size=(6, 5)), axis=1)
    y = rng.normal(size=6)
    tau = np.linspace(0, 1, 400_001)
    for i in range(6):
        qt = np.interp(tau, FIVE, q[i])  # np.interp is flat outside the knots, as the rule says
        brute = 2 * np.trapezoid((tau - (y[i] < qt)) * (y[i] - qt), tau)
        assert crps_from_quantiles(y[i : i + 1], q[i : i + 1], FIVE)[0] == pytest.approx(brute, rel=1e-7)


def test_crps_of_a_point_forecast_is_the_absolute_error():
    rng = np.random.default_rng(4)
    y, yhat = rng.normal(size=50) * 5, rng.normal(size=50)
    for levels in (FIVE, DENSE):
        got = crps_from_quantiles(y, np.repeat(yhat[:, None], levels.size, axis=1), levels)
        np.testing.assert_allclose(got, np.abs(y - yhat), rtol=1e-12, atol=1e-15)


def test_crps_sorts_crossing_quantiles_and_propagates_missing_rows():
    q = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 3.0, 5.0, 4.0], [1.0, np.nan, 3.0, 4.0, 5.0]])
    got = crps_from_quantiles(np.array([2.5, 2.5, 2.5]), q, FIVE)
    assert got[0] == got[1] and np.isnan(got[2])


@pytest.mark.parametrize("levels", [(0.1, 0.1, 0.9), (0.0, 0.5), (0.9, 0.1), (10, 90), ()])
def test_crps_refuses_bad_levels(levels):
    with pytest.raises(ConfigError, match="strictly increasing"):
        crps_from_quantiles(np.zeros(1), np.zeros((1, max(len(levels), 1))), levels)


def test_crps_refuses_a_shape_mismatch():
    with pytest.raises(DataError, match=r"\(2, 5\)"):
        crps_from_quantiles(np.zeros(2), np.zeros((2, 4)), FIVE)


# ---- pinball ----------------------------------------------------------------------------------------------
def test_pinball_by_hand():
    y = np.array([10.0, 10.0, 10.0, 10.0])
    q = np.array([8.0, 12.0, 12.0, 10.0])
    tau = np.array([0.9, 0.1, 0.9, 0.3])
    # under-forecast: τ·(y - q); over-forecast: (1 - τ)·(q - y); exact: 0.
    np.testing.assert_allclose(pinball_loss(y, q, tau), [1.8, 0.2 * 9, 0.2, 0.0])
    with pytest.raises(ConfigError, match="90"):
        pinball_loss(y, q, 90)


# ---- tables: scaled CRPS, pinball, oos_r2 through metrics_table and summarise -----------------------------
def _table(*, point: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two series x 3 folds x 2 steps; bounds equal yhat when `point`, else a fixed-width band."""
    rng = np.random.default_rng(7)
    rows = []
    for uid in ("A", "B"):
        for fold in range(3):
            for h in (1, 2):
                y = 100 + rng.normal(0, 2)
                yhat = 100 + rng.normal(0, 1)
                w = 0.0 if point else 1.0
                rows.append(
                    {ID: uid, MODEL: "m", FOLD: fold, H: h, Y: y, YHAT: yhat}
                    | {LO_95: yhat - 2 * w, LO_80: yhat - w, HI_80: yhat + w, HI_95: yhat + 2 * w}
                )
    info = pd.DataFrame(
        [{ID: u, FOLD: f, LAST_Y: 100.0, SCALE_MAE: 1.5 + f, SCALE_MSE: 3.0} for u in "AB" for f in range(3)]
    )
    return pd.DataFrame(rows), info


def test_scaled_crps_of_point_bounds_is_mase_and_pinball_half_of_it():
    forecasts, info = _table(point=True)
    per = per_series_table(forecasts, info)
    np.testing.assert_allclose(per[SCALED_CRPS], per[MASE], rtol=1e-12)
    # Four bounds at ŷ: (0.025 + 0.1 + 0.9 + 0.975)/4 = 1/2 of |e| above, (4 - 2)/4 = 1/2 of |e| below.
    np.testing.assert_allclose(per[PINBALL], per[MASE] / 2, rtol=1e-12)


def test_pinball_and_crps_rows_by_hand():
    forecasts, info = _table(point=False)
    m = metrics_table(forecasts, info).set_index([ID, MODEL, FOLD, H, "metric"])["value"]
    row = forecasts.iloc[0]
    scale = 1.5  # fold 0
    quantiles = [row[LO_95], row[LO_80], row[HI_80], row[HI_95]]
    taus = [0.025, 0.1, 0.9, 0.975]
    hand = np.mean([(t - (row[Y] < q)) * (row[Y] - q) for q, t in zip(quantiles, taus, strict=True)]) / scale
    assert m[("A", "m", 0, 1, PINBALL)] == pytest.approx(hand, rel=1e-12)
    five = np.array([[row[LO_95], row[LO_80], row[YHAT], row[HI_80], row[HI_95]]])
    crps = crps_from_quantiles(np.array([row[Y]]), five, FIVE)[0] / scale
    assert m[("A", "m", 0, 1, SCALED_CRPS)] == pytest.approx(crps, rel=1e-12)


def test_rows_without_bounds_have_no_probabilistic_scores():
    forecasts, info = _table(point=False)
    forecasts.loc[forecasts[FOLD] == 1, [LO_95, HI_95]] = np.nan
    m = metrics_table(forecasts, info)
    fold1 = m.loc[m[FOLD] == 1, "metric"]
    assert SCALED_CRPS not in set(fold1) and PINBALL not in set(fold1) and MASE in set(fold1)
    assert SCALED_CRPS in set(m.loc[m[FOLD] == 0, "metric"])


def test_oos_r2_by_hand_and_through_the_tables():
    forecasts, info = _table(point=False)
    first = forecasts.loc[forecasts[H] == 1]
    m = metrics_table(forecasts, info)
    assert set(m.loc[m["metric"].isin([RET_SE, RET_SE0]), H]) == {1}  # stored at h = 1 only
    per = per_series_table(forecasts, info).set_index(ID)
    for uid, g in first.groupby(ID):
        r = np.log(g[Y].to_numpy() / 100.0)
        r_hat = np.log(g[YHAT].to_numpy() / 100.0)
        hand = 1 - np.sum((r - r_hat) ** 2) / np.sum(r**2)
        assert per.loc[uid, OOS_R2] == pytest.approx(hand, rel=1e-12)
        assert oos_r2(g[Y], g[YHAT], np.full(len(g), 100.0)) == pytest.approx(hand, rel=1e-12)
    assert RET_SE not in per.columns and RET_SE0 not in per.columns
    horizon = per_horizon_table(forecasts, info).set_index(H)
    assert horizon.loc[1, OOS_R2] == pytest.approx(per[OOS_R2].mean()) and np.isnan(horizon.loc[2, OOS_R2])


def test_oos_r2_small_example():
    # last 100; y 101, 99, 102; ŷ 100.5, 99.5, 101 -> r = ln(y/100), r̂ = ln(ŷ/100).
    y, yhat, last = np.array([101.0, 99.0, 102.0]), np.array([100.5, 99.5, 101.0]), np.full(3, 100.0)
    r, r_hat = np.log([1.01, 0.99, 1.02]), np.log([1.005, 0.995, 1.01])
    assert oos_r2(y, yhat, last) == pytest.approx(1 - np.sum((r - r_hat) ** 2) / np.sum(r**2), rel=1e-12)


def test_oos_r2_is_exactly_zero_for_naive():
    rng = np.random.default_rng(8)
    last = 100 * np.exp(rng.normal(0, 0.01, 30))
    y = last * np.exp(rng.normal(0, 0.01, 30))
    assert oos_r2(y, last, last) == 0.0
    data = panel(2, 60, seed=9)
    result = run_backtest(
        data, models=["last", "trend"], plan=FoldPlan(horizon=3, step=2, windows=5), refit_every=1, factory=factory
    )
    per = per_series_table(result.forecasts, result.fold_info)
    assert (per.loc[per[MODEL] == "last", OOS_R2] == 0.0).all()
    assert per.loc[per[MODEL] == "trend", OOS_R2].notna().all()
    assert {SCALED_CRPS, PINBALL, OOS_R2} <= set(per.columns) and set(SUMMARY_METRICS) <= set(per.columns)
    assert per.loc[per[MODEL] == "last", SCALED_CRPS].isna().all()  # no intervals: undefined, not 0


def test_non_positive_prices_are_undefined_not_errors():
    se, se0 = return_errors(np.array([101.0, -1.0, 101.0, 101.0]), np.array([100.0, 100.0, 0.0, 100.0]),
                            np.array([100.0, 100.0, 100.0, np.nan]))  # fmt: skip
    assert np.isfinite(se[0]) and np.isnan(se[1:]).all() and np.isnan(se0[1:]).all()
    assert np.isnan(oos_r2(np.array([-1.0]), np.array([1.0]), np.array([1.0])))
    assert np.isnan(oos_r2(np.array([1.0, 1.0]), np.array([1.1, 0.9]), np.array([1.0, 1.0])))  # Σ r² = 0


# ---- coverage tests ---------------------------------------------------------------------------------------
def _ll(k, n, p):
    """Bernoulli log-likelihood written out, skipping 0·log 0 terms by hand."""
    return (k * np.log(p) if k else 0.0) + ((n - k) * np.log(1 - p) if n - k else 0.0)


def test_kupiec_by_hand():
    v = np.zeros(20, bool)
    v[[2, 9, 15]] = True  # 3 violations in 20 at a 5% nominal rate
    got = kupiec_test(v, level=95)
    hand = -2 * (3 * np.log(0.05) + 17 * np.log(0.95) - 3 * np.log(0.15) - 17 * np.log(0.85))
    assert got.stat == pytest.approx(hand, rel=1e-12)
    assert got.p_value == pytest.approx(chi2.sf(hand, 1), rel=1e-12)
    assert (got.n, got.n_violations, got.observed_rate, got.dof) == (20, 3, 0.15, 1)
    assert got.expected_rate == pytest.approx(0.05)


@pytest.mark.parametrize(("x", "hand"), [(0, -2 * 40 * np.log(0.8)), (40, -2 * 40 * np.log(0.2))])
def test_kupiec_with_no_or_only_violations(x, hand):
    got = kupiec_test(np.arange(40) < x, level=80)
    assert got.stat == pytest.approx(hand, rel=1e-12) and got.p_value == pytest.approx(chi2.sf(hand, 1))


def test_christoffersen_by_hand():
    seq = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0])
    n00, n01, n10, n11 = 4, 3, 3, 3  # counted from the pairs of seq
    t = n00 + n01 + n10 + n11
    restricted = _ll(n01 + n11, t, (n01 + n11) / t)
    unrestricted = _ll(n01, n00 + n01, n01 / (n00 + n01)) + _ll(n11, n10 + n11, n11 / (n10 + n11))
    hand = -2 * (restricted - unrestricted)
    got = christoffersen_test(seq, level=80)
    assert got.stat == pytest.approx(hand, rel=1e-12)
    assert got.p_value == pytest.approx(chi2.sf(hand, 1), rel=1e-12)
    assert (got.n, got.n_violations, got.n_transitions) == (14, 6, 13)
    cc = conditional_coverage_test(seq, level=80)
    assert cc.stat == pytest.approx(kupiec_test(seq, level=80).stat + hand, rel=1e-12)
    assert cc.p_value == pytest.approx(chi2.sf(cc.stat, 2), rel=1e-12) and cc.dof == 2


def test_christoffersen_pools_counts_but_never_across_sequences():
    a, b = [0, 0, 1, 1, 0], [1, 1, 0, 0, 0, 1]
    # within a: 00 01 11 10; within b: 11 10 00 00 01 -> n00 3, n01 2, n10 2, n11 2 (not b's first 1 after a's 0).
    n00, n01, n10, n11 = 3, 2, 2, 2
    t = 9
    hand = -2 * (
        _ll(n01 + n11, t, (n01 + n11) / t)
        - _ll(n01, n00 + n01, n01 / (n00 + n01))
        - _ll(n11, n10 + n11, n11 / (n10 + n11))
    )
    pooled = christoffersen_test([np.array(a), np.array(b)], level=95)
    assert pooled.stat == pytest.approx(hand, rel=1e-12) and pooled.n_transitions == 9
    joined = christoffersen_test(np.array(a + b), level=95)
    assert joined.n_transitions == 10 and joined.stat != pytest.approx(pooled.stat)


def test_christoffersen_edge_cases_are_finite_or_nan_without_warnings():
    none = christoffersen_test([np.zeros(10), np.zeros(5)], level=95)
    assert none.stat == 0.0 and none.p_value == 1.0 and none.n_violations == 0
    every = christoffersen_test(np.ones(10), level=95)
    assert every.stat == 0.0 and every.p_value == 1.0
    # a violation only at the end: the 1 -> . row is empty (n10 = n11 = 0), 0·log 0 = 0.
    tail = christoffersen_test(np.array([0, 0, 0, 1]), level=95)
    assert np.isfinite(tail.stat) and tail.stat >= 0
    single = christoffersen_test([np.array([1]), np.array([0])], level=95)  # no transitions at all
    assert single.n_transitions == 0 and np.isnan(single.stat) and np.isnan(single.p_value)
    assert np.isnan(conditional_coverage_test([np.array([1])], level=95).stat)
    assert np.isnan(kupiec_test(np.array([], bool), level=95).stat)


def test_coverage_tests_refuse_bad_input():
    with pytest.raises(ConfigError, match="got 100"):
        kupiec_test(np.zeros(3), level=100)
    with pytest.raises(DataError, match="position 1"):
        christoffersen_test([np.array([0.0, np.nan])], level=95)


# ---- the interval test table ------------------------------------------------------------------------------
def _interval_frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for uid in ("A", "B"):
        for fold in range(8):
            for h in (1, 2):
                y = rng.normal()
                for model, w in (("iv", 1.0), ("pt", np.nan)):
                    rows.append(
                        {ID: uid, MODEL: model, FOLD: fold, H: h, Y: y, YHAT: 0.0}
                        | {LO_80: -w, HI_80: w, LO_95: -1.6 * w, HI_95: 1.6 * w}
                    )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled: the function must order by fold


def test_interval_tests_table():
    f = _interval_frame()
    table = interval_tests(f)
    assert tuple(table.columns) == INTERVAL_TEST_COLUMNS
    assert table["model"].tolist() == ["iv", "iv"] and table[INTERVAL_LEVEL].tolist() == [80, 95]  # pt has no bounds
    iv = f.loc[f[MODEL] == "iv"].sort_values([ID, H, FOLD])
    for level, width in ((80, 1.0), (95, 1.6)):
        got = table.set_index(INTERVAL_LEVEL).loc[level]
        seqs = [(g[Y].abs() > width).to_numpy() for _, g in iv.groupby([ID, H])]
        uc, ind = kupiec_test(np.concatenate(seqs), level=level), christoffersen_test(seqs, level=level)
        assert got["n_intervals"] == 32 and got["n_violations"] == uc.n_violations
        assert got["n_transitions"] == 4 * 7  # 4 sequences of 8 folds
        assert got["kupiec_stat"] == pytest.approx(uc.stat) and got["kupiec_p"] == pytest.approx(uc.p_value)
        assert got["christoffersen_stat"] == pytest.approx(ind.stat)
        assert got["christoffersen_p"] == pytest.approx(ind.p_value)
        assert got["cc_stat"] == pytest.approx(uc.stat + ind.stat)
        assert got["expected_rate"] == pytest.approx(1 - level / 100)


def test_interval_tests_split_sequences_at_a_missing_fold_and_skip_missing_bounds():
    f = _interval_frame()
    f.loc[(f[MODEL] == "iv") & (f[FOLD] == 3) & (f[ID] == "A"), [LO_80, HI_80]] = np.nan
    got = interval_tests(f).set_index(INTERVAL_LEVEL)
    assert got.loc[80, "n_intervals"] == 30
    assert got.loc[80, "n_transitions"] == 2 * 7 + 2 * (2 + 3)  # A's sequences break at fold 3: 0-2 and 4-7
    assert got.loc[95, "n_transitions"] == 28
    assert interval_tests(f.drop(columns=[LO_95, HI_95]))[INTERVAL_LEVEL].tolist() == [80]
    assert interval_tests(f.loc[f[MODEL] == "pt"]).empty
