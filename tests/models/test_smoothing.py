"""Exponential smoothing: fixed-parameter updates, interval formulas against statsmodels, AutoETS choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import ModelFitError
from common.schema import HI_80, HI_95, LO_80, LO_95, YHAT
from models.smoothing import (
    SES,
    AutoETS,
    ETSSpec,
    Holt,
    HoltWinters,
    _final_state,
    _fit_spec,
    forecast_mean,
    relative_variance,
    simulate_paths,
)
from tests.models.conftest import ar1, series_frame, synthetic_prices

WEEK = np.array([1.2, -0.8, 0.4, 0.0, -0.8])


def _weekly(n: int, seed: int = 0, positive_scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.normal(0, 0.3, n)) + positive_scale * np.resize(WEEK, n)


def _smooth_full(model, y: np.ndarray):
    """statsmodels smoothing of the whole history with the model's fitted parameters."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(y, **model.spec_.kwargs()).smooth(model.results_.params)


@pytest.mark.parametrize(
    "make",
    [
        SES,
        lambda: Holt(damped=True),
        lambda: HoltWinters(season_length=5, trend="add"),
        lambda: HoltWinters(season_length=5, seasonal="mul"),
        AutoETS,
    ],
)
def test_update_equals_smoothing_full_history_with_fixed_params(make):
    y = _weekly(330, seed=2)
    data = series_frame(y)
    model = make().fit(data.iloc[:300])
    for lo, hi in [(300, 302), (302, 303), (303, 330)]:  # include updates shorter than one season
        model.update(data.iloc[lo:hi])
    full = _smooth_full(model, y)
    np.testing.assert_allclose(model.predict(7)[YHAT], full.forecast(7), rtol=1e-10)


def test_linear_intervals_equal_statsmodels_exact_intervals():
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _weekly(400, seed=4)
    model = HoltWinters(season_length=5, trend="add", damped=True).fit(series_frame(y))
    # statsmodels' own exact variance (pandas endog: its numpy path cannot index out-of-sample predictions).
    ref = ETSModel(pd.Series(y), **model.spec_.kwargs()).smooth(model.results_.params)
    got = model.predict(12)
    for level, lo_col, hi_col in [(80, LO_80, HI_80), (95, LO_95, HI_95)]:
        frame = ref.get_prediction(start=400, end=411).summary_frame(alpha=1 - level / 100)
        np.testing.assert_allclose(got[lo_col], frame["pi_lower"], rtol=1e-9)
        np.testing.assert_allclose(got[hi_col], frame["pi_upper"], rtol=1e-9)


def test_relative_variance_matches_statsmodels_closed_forms():
    y = _weekly(300, seed=5)
    for spec in [ETSSpec(), ETSSpec(trend="add"), ETSSpec(trend="add", damped=True), ETSSpec(seasonal="add", period=5)]:
        res = _fit_spec(y, spec)
        params = dict(zip(res.model.param_names, res.params, strict=True))
        np.testing.assert_allclose(
            relative_variance(spec, params, 11), res._relative_forecast_variance(np.arange(1, 12)), rtol=1e-10
        )


@pytest.mark.parametrize("spec", [ETSSpec(trend="add", seasonal="mul", period=5), ETSSpec(seasonal="mul", period=5)])
def test_simulation_and_point_forecast_match_statsmodels(spec):
    y = _weekly(300, seed=6, positive_scale=3.0)
    res = _fit_spec(y, spec)
    params = {k: v for k, v in zip(res.model.param_names, res.params, strict=True) if not k.startswith("initial")}
    state = _final_state(res, spec)
    eps = np.random.default_rng(0).standard_normal((12, 3))
    np.testing.assert_allclose(simulate_paths(spec, params, state, eps), res.simulate(12, "end", 3, eps))
    np.testing.assert_allclose(forecast_mean(spec, params, state, 12), res.forecast(12), rtol=1e-12)


def test_ses_agrees_with_statsforecast_given_the_same_alpha():
    sf_models = pytest.importorskip("statsforecast.models")
    y = ar1(400, phi=0.8, seed=3)  # mean-reverting: alpha well inside (0, 1)
    model = SES().fit(series_frame(y))
    alpha = model.params_["smoothing_level"]
    assert 0.2 < alpha < 0.99
    # statsforecast starts the level at y[0], statsmodels estimates it; the start is forgotten as (1-alpha)^n.
    assert (1 - alpha) ** len(y) < 1e-12
    ref = sf_models.SimpleExponentialSmoothing(alpha=alpha).forecast(y=y, h=5)["mean"]
    np.testing.assert_allclose(model.predict(5)[YHAT], ref, rtol=0, atol=1e-8)


def test_auto_ets_picks_no_trend_on_a_random_walk():
    model = AutoETS().fit(synthetic_prices(1, 1000, seed=1, drift=0.0))
    assert model.spec_.trend is None, model.ic_scores_
    assert set(model.ic_scores_) == {"ANN", "AAN", "AAdN", "MNN", "MAN", "MAdN"}


def test_auto_ets_picks_a_trend_on_a_trending_series():
    rng = np.random.default_rng(0)
    n = 600
    slope = np.cumsum(rng.normal(0, 0.02, n)) + 0.5  # local linear trend with a persistent slope
    y = 100 + np.cumsum(slope) + rng.normal(0, 0.5, n)
    model = AutoETS(multiplicative=False).fit(series_frame(y))
    assert model.spec_.trend == "add", model.ic_scores_


def test_auto_ets_prefers_damped_when_the_trend_dies_out():
    rng = np.random.default_rng(3)
    n, phi = 800, 0.85
    level, trend, ys = 100.0, 2.0, []
    for _ in range(n):  # ETS(A,Ad,N) with a large beta so the damping is identifiable
        e = rng.normal(0, 1.0)
        ys.append(level + phi * trend + e)
        level, trend = level + phi * trend + 0.5 * e, phi * trend + 0.4 * e
    model = AutoETS(multiplicative=False).fit(series_frame(np.array(ys)))
    assert model.spec_.short_name == "AAdN", model.ic_scores_


def test_auto_ets_adds_a_season_only_when_the_series_has_one():
    seasonal = AutoETS(multiplicative=False).fit(series_frame(_weekly(500, seed=1, positive_scale=4.0)))
    assert seasonal.spec_.seasonal == "add" and seasonal.seasonal_strength_ > 0.64
    plain = AutoETS(multiplicative=False).fit(synthetic_prices(1, 500, seed=1))
    assert plain.spec_.seasonal is None


def test_auto_ets_skips_multiplicative_for_non_positive_data():
    y = ar1(300, phi=0.5, mean=0.0, seed=2)
    model = AutoETS().fit(series_frame(y))
    assert all(name.startswith("A") for name in model.ic_scores_)


def test_multiplicative_holt_winters_rejects_non_positive_data():
    with pytest.raises(ModelFitError, match="strictly positive"):
        HoltWinters(seasonal="mul").fit(series_frame(ar1(200, phi=0.5, mean=0.0, seed=1)))


@pytest.mark.parametrize("make", [SES, Holt, HoltWinters, AutoETS])
def test_constant_series_is_a_clear_error(make):
    with pytest.raises(ModelFitError, match="constant series"):
        make().fit(series_frame(np.full(100, 7.0)))


def test_intervals_are_deterministic_and_ordered_for_simulated_models():
    model = HoltWinters(seasonal="mul").fit(series_frame(_weekly(300, seed=8, positive_scale=3.0)))
    a, b = model.predict(10), model.predict(10)
    pd.testing.assert_frame_equal(a, b)
    assert (a[LO_95] <= a[LO_80]).all() and (a[HI_80] <= a[HI_95]).all()


def test_holt_winters_minimum_length_follows_its_arguments():
    assert HoltWinters(season_length=10).min_train_size > HoltWinters.min_train_size
    with pytest.raises(ModelFitError, match="training sessions"):
        HoltWinters(season_length=10).fit(series_frame(_weekly(14)))
