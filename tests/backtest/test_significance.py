"""Diebold-Mariano-HLN: hand computation, degenerate inputs, power on simulated data, tables, leaderboard rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtest.significance import beats_reference, dm_differential, dm_pairwise, dm_table, dm_test
from common.schema import DM_COLUMNS, FOLD, ID, MODEL, YHAT, H, Y


def _hand_dm(d: list[float], h: int) -> tuple[float, float, float]:
    """Textbook DM-HLN with plain loops: an independent implementation of the same formulas."""
    n = len(d)
    mean = sum(d) / n
    gammas = []
    for k in range(h):
        gammas.append(sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, n)) / n)
    var = (gammas[0] + 2 * sum(gammas[1:])) / n
    dm = mean / math.sqrt(var)
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return hln, 2 * (1 - stats.t.cdf(abs(hln), n - 1)), stats.t.cdf(hln, n - 1)


@pytest.mark.parametrize("h", [1, 2, 3])
def test_matches_hand_computation(h):
    # Positively autocorrelated differential, so the truncated-kernel variance stays positive up to lag 2.
    e1 = np.array([0.13, -0.13, 0.64, 0.1, -0.54, 0.36, 1.3, 0.95, -0.7, -1.27, -0.62, 0.04])
    e2 = np.array([-1.76, -1.23, -0.62, -0.7, -0.76, 0.93, 1.96, 2.09, -0.41, -0.74, -0.33, 0.71])
    d = (e1**2 - e2**2).tolist()
    stat, p, p_less = _hand_dm(d, h)
    result = dm_test(e1, e2, h=h, loss="squared")
    assert result.n == 12
    assert result.stat == pytest.approx(stat, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-10)
    assert result.p_value_less == pytest.approx(p_less, rel=1e-10)


def test_known_value_h1():
    # d = [1, 2, 3, 4]: mean 2.5, γ0 = 1.25, V = 1.25/4, DM = 2.5/sqrt(0.3125) = 4.4721; HLN factor sqrt(3/4).
    result = dm_differential(np.array([1.0, 2.0, 3.0, 4.0]), h=1)
    assert result.stat == pytest.approx(2.5 / math.sqrt(0.3125) * math.sqrt(0.75), rel=1e-12)
    assert result.stat == pytest.approx(3.872983346207417, rel=1e-12)


def test_absolute_loss():
    e1, e2 = np.array([1.0, -2.0, 0.5, 0.1]), np.array([-1.5, 2.5, 1.0, 0.3])
    d = (np.abs(e1) - np.abs(e2)).tolist()
    assert dm_test(e1, e2, h=1, loss="absolute").stat == pytest.approx(_hand_dm(d, 1)[0], rel=1e-12)


def test_identical_forecasts_do_not_crash():
    e = np.random.default_rng(0).normal(size=30)
    result = dm_test(e, e.copy(), h=2)
    assert math.isnan(result.stat) and result.p_value == 1.0 and result.p_value_less == 1.0
    too_few = dm_test(np.array([1.0]), np.array([2.0]), h=1)
    assert too_few.n == 1 and math.isnan(too_few.p_value)


def test_clearly_better_model_is_significant_and_sign_convention_holds():
    rng = np.random.default_rng(42)
    truth_noise = rng.normal(size=200)
    good = truth_noise * 0.5
    bad = truth_noise + rng.normal(size=200)
    better = dm_test(good, bad, h=1)
    assert better.stat < 0 and better.p_value_less < 0.05 and better.p_value < 0.05
    worse = dm_test(bad, good, h=1)
    assert worse.p_value_less > 0.95
    assert worse.stat == pytest.approx(-better.stat)


def test_negative_truncated_variance_falls_back_to_lag_zero():
    d = np.array([1.0, -1.0] * 10) + 0.1  # strong negative lag-1 autocovariance
    result = dm_differential(d, h=2)
    n = d.size
    gamma0 = np.var(d)
    expected = d.mean() / math.sqrt(gamma0 / n) * math.sqrt((n + 1 - 4 + 2 / n) / n)
    assert result.stat == pytest.approx(expected, rel=1e-12)


def _forecasts(n_series: int = 4, n_folds: int = 40, horizon: int = 2, *, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        for fold in range(n_folds):
            for h in range(1, horizon + 1):
                y = rng.normal()
                noise = rng.normal()
                for model, yhat in (("naive", y + 2.0 * noise), ("good", y + 0.5 * noise), ("same", y + 2.0 * noise)):
                    rows.append({ID: f"S{s}", MODEL: model, FOLD: fold, H: h, Y: y, YHAT: yhat})
    return pd.DataFrame(rows)


def test_dm_table_pools_across_series_per_fold():
    f = _forecasts()
    table = dm_table(f, reference="naive")
    assert tuple(table.columns) == DM_COLUMNS
    assert set(table["model"]) == {"good", "same"} and (table["n"] == 40).all()
    good = table.loc[(table["model"] == "good") & (table["loss"] == "squared")]
    assert good["better"].all()
    same = table.loc[table["model"] == "same"]
    assert same["stat"].isna().all() and (same["p_value"] == 1.0).all()
    # The pooled test is the test of the cross-sectional mean differential per fold.
    at = f.loc[f[H] == 2]
    e = at.assign(e=at[Y] - at[YHAT]).pivot_table(index=[ID, FOLD], columns=MODEL, values="e")
    d = (e["good"] ** 2 - e["naive"] ** 2).groupby(FOLD).mean().to_numpy()
    expected = dm_differential(d, h=2)
    row = good.loc[good[H] == 2].iloc[0]
    assert row["stat"] == pytest.approx(expected.stat, rel=1e-12)


def test_beats_reference_needs_every_horizon_step():
    dm = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b", "c", "c"],
            "loss": ["squared"] * 6,
            "h": [1, 2, 1, 2, 1, 2],
            "p_less": [0.01, 0.02, 0.01, 0.20, 0.01, np.nan],
        }
    )
    assert beats_reference(dm).to_dict() == {"a": True, "b": False, "c": False}


def test_pairwise_matrix_is_symmetric():
    m = dm_pairwise(_forecasts(n_folds=20), h=1)
    assert list(m.index) == ["good", "naive", "same"]
    assert np.isnan(np.diag(m.to_numpy())).all()
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T, equal_nan=True)
