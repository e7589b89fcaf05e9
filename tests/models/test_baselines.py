"""Baselines: hand-checked values and interval formulas, O(new rows) updates equal to refits, statsforecast parity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from common.errors import ConfigError, ModelFitError
from common.schema import HI_80, HI_95, LO_80, LO_95, YHAT
from models.baselines import Drift, MovingAverage, Naive, SeasonalNaive
from tests.models.conftest import series_frame, synthetic_prices

Z80, Z95 = norm.ppf(0.9), norm.ppf(0.975)


def _check_band(frame, mean, sd):
    np.testing.assert_allclose(frame[YHAT], mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame[LO_80], np.asarray(mean) - Z80 * np.asarray(sd), atol=1e-12)
    np.testing.assert_allclose(frame[HI_95], np.asarray(mean) + Z95 * np.asarray(sd), atol=1e-12)


def test_naive_hand_checked():
    frame = Naive().fit(series_frame([1.0, 2.0, 4.0, 7.0])).predict(3)
    sigma = np.sqrt((1 + 4 + 9) / 3)  # one-step residuals are the differences 1, 2, 3
    _check_band(frame, [7.0] * 3, sigma * np.sqrt([1, 2, 3]))


def test_seasonal_naive_hand_checked():
    frame = SeasonalNaive(season_length=2).fit(series_frame([1.0, 2.0, 3.0, 5.0, 4.0, 8.0])).predict(5)
    sigma = np.sqrt((4 + 9 + 1 + 9) / 4)  # residuals y_t - y_{t-2}: 2, 3, 1, 3
    k = np.floor((np.arange(1, 6) - 1) / 2)  # fpp3 5.5: sqrt(floor((h-1)/m) + 1)
    _check_band(frame, [4.0, 8.0, 4.0, 8.0, 4.0], sigma * np.sqrt(k + 1))


def test_drift_hand_checked():
    frame = Drift().fit(series_frame([1.0, 3.0, 4.0, 8.0])).predict(3)
    slope = 7 / 3
    sse = (2 - slope) ** 2 + (1 - slope) ** 2 + (4 - slope) ** 2
    sigma = np.sqrt(sse / (3 - 1))  # 3 residuals, 1 estimated parameter
    h = np.arange(1, 4)
    _check_band(frame, 8.0 + slope * h, sigma * np.sqrt(h * (1 + h / 3)))


def test_moving_average_hand_checked():
    frame = MovingAverage(window=2).fit(series_frame([1.0, 2.0, 3.0, 5.0])).predict(4)
    sigma = np.sqrt((1.5**2 + 2.5**2) / 2)  # 3 - mean(1, 2), 5 - mean(2, 3); flat band by design
    _check_band(frame, [4.0] * 4, [sigma] * 4)


MODELS = [Naive, lambda: SeasonalNaive(season_length=5), Drift, lambda: MovingAverage(window=20)]


@pytest.mark.parametrize("make", MODELS)
def test_update_equals_refit_on_extended_history(make):
    data = synthetic_prices(1, 400, seed=3)
    updated = make().fit(data.iloc[:300])
    for lo, hi in [(300, 301), (301, 333), (333, 400)]:
        updated.update(data.iloc[lo:hi])
    refit = make().fit(data)
    a, b = updated.predict(10), refit.predict(10)
    np.testing.assert_array_equal(a[YHAT], b[YHAT])  # point forecasts: exactly
    for col in (LO_80, HI_80, LO_95, HI_95):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-12)


def test_naive_update_is_cheap():
    """Naive.update touches only the new rows (running sum of squares), not the history."""
    model = Naive().fit(synthetic_prices(1, 300, seed=1))
    before = model.sse_
    model.update(series_frame([1.0, 1.0], start="2013-06-03").assign(unique_id="S00"))
    assert model.n_resid_ == 301 and model.sse_ > before


def _statsforecast(model, y, h):
    return model.forecast(y=y, h=h, level=[80, 95])


def test_agrees_with_statsforecast():
    sf_models = pytest.importorskip("statsforecast.models")
    data = synthetic_prices(1, 500, seed=11)
    y = data["y"].to_numpy()
    pairs = [
        (Naive(), sf_models.Naive(), True),
        (SeasonalNaive(season_length=5), sf_models.SeasonalNaive(season_length=5), True),
        # Same point forecast; statsforecast's sigma divides by n-1 instead of fpp3's n-2 for drift.
        (Drift(), sf_models.RandomWalkWithDrift(), False),
    ]
    for ours, theirs, same_intervals in pairs:
        got = ours.fit(data).predict(12)
        ref = _statsforecast(theirs, y, 12)
        np.testing.assert_allclose(got[YHAT], ref["mean"], rtol=0, atol=1e-8)
        if same_intervals:
            np.testing.assert_allclose(got[LO_80], ref["lo-80"], atol=1e-8)
            np.testing.assert_allclose(got[HI_95], ref["hi-95"], atol=1e-8)


def test_drift_interval_matches_statsforecast_after_dof_correction():
    sf_models = pytest.importorskip("statsforecast.models")
    data = synthetic_prices(1, 200, seed=5)
    got = Drift().fit(data).predict(5)
    ref = _statsforecast(sf_models.RandomWalkWithDrift(), data["y"].to_numpy(), 5)
    n_diff = len(data) - 1
    ratio = (got[HI_95] - got[YHAT]) / (ref["hi-95"] - ref["mean"])
    np.testing.assert_allclose(ratio, np.sqrt(n_diff / (n_diff - 1)), rtol=1e-10)


@pytest.mark.parametrize(
    ("model", "n"),
    [(Naive(), 1), (SeasonalNaive(season_length=5), 5), (Drift(), 2), (MovingAverage(window=20), 20)],
)
def test_too_short_is_a_clear_model_fit_error(model, n):
    with pytest.raises(ModelFitError, match="training sessions"):
        model.fit(synthetic_prices(1, n, seed=0))


def test_constant_series_gives_flat_forecast_with_zero_width():
    frame = Drift().fit(series_frame(np.full(50, 3.0))).predict(4)
    assert np.allclose(frame[YHAT], 3.0) and np.allclose(frame[HI_95], frame[LO_95])


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_window_is_config_error(bad):
    with pytest.raises(ConfigError, match="positive integer"):
        MovingAverage(window=bad)
    with pytest.raises(ConfigError, match="positive integer"):
        SeasonalNaive(season_length=bad)
