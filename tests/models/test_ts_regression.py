"""ts_regression: regression on trend + calendar + covariates with ARMA errors (the contract suite runs it too)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError, ModelFitError
from common.schema import CUTOFF, DS, ID, YHAT, Y
from models import make_model
from models.base import fit_model
from models.ts_regression import TSRegression, calendar_dummies, holiday_flags
from tests.models.conftest import series_frame, session_dates, synthetic_prices

DOW_EFFECT = {0: -0.8, 4: 0.8}  # percent of the price on Mondays and Fridays


def _dow_ar1(n: int = 500, *, phi: float = 0.6, sd: float = 0.4, seed: int = 3) -> pd.DataFrame:
    """A trend-stationary price: 100 * log price = level + trend + day-of-week effect + AR(1) noise (percent)."""
    rng = np.random.default_rng(seed)
    ds = session_dates(n)
    e = rng.normal(0.0, sd, n)
    noise = np.empty(n)
    noise[0] = e[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        noise[t] = phi * noise[t - 1] + e[t]
    dow = np.asarray(ds.day_of_week)
    effect = np.select([dow == k for k in DOW_EFFECT], list(DOW_EFFECT.values()), 0.0)
    z = 100 * np.log(50.0) + 0.01 * np.arange(n) + effect + noise
    return series_frame(np.exp(z / 100.0))


def _with_covariate(frame: pd.DataFrame, *, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.assign(cov_idx_level=1000 * np.exp(np.cumsum(rng.normal(0, 0.01, len(frame)))))


def test_recovers_day_of_week_effect_and_beats_naive():
    frame = _dow_ar1()
    train, n = frame.iloc[:400], 400
    model = TSRegression().fit(train)
    assert model.d_ == 0, "KPSS on the regression residuals: the errors are stationary"
    assert model.order_[0] >= 1, f"AR(1) errors, chose {model.order_}"
    # Friday is the baseline: Monday's effect relative to it is -1.6, Tue-Thu's -0.8.
    assert model.coef_["dow_0"] == pytest.approx(-1.6, abs=0.25)
    assert model.coef_["dow_2"] == pytest.approx(-0.8, abs=0.25)
    cutoffs = list(frame[DS].iloc[n - 1 : len(frame) - 5 : 3])
    fc = model.forecast_origins(frame, cutoffs, 5).merge(frame[[DS, Y]], on=DS)
    last = frame.set_index(DS)[Y].reindex(fc[CUTOFF]).to_numpy()
    mae_model = np.mean(np.abs(fc[Y] - fc[YHAT]))
    mae_naive = np.mean(np.abs(fc[Y].to_numpy() - last))
    assert mae_model < 0.75 * mae_naive, f"ts_regression MAE {mae_model:.4f} vs naive {mae_naive:.4f}"


def test_random_walk_log_price_gets_d1_and_drift():
    frame = synthetic_prices(1, 400, seed=11, drift=0.002)
    model = TSRegression().fit(frame)
    assert model.d_ == 1 and model.order_[1] == 1
    assert "drift" in model.coef_ and "trend" not in model.coef_
    # The drift is the Friday-baseline mean log return in percent: the 0.2% simulated plus noise.
    assert model.coef_["drift"] == pytest.approx(0.2, abs=0.35)


def test_chosen_order_is_a_fitted_attribute_within_the_grid():
    model = TSRegression(max_p=1, max_q=2).fit(_dow_ar1(300))
    p, d, q = model.order_
    assert 0 <= p <= 1 and 0 <= q <= 2 and d in (0, 1)
    assert len(model.search_) == 2 * 3, "the full (p, q) grid is scored"
    assert model.get_params()["max_p"] == 1  # constructor arguments untouched


def test_update_matches_refit_direction_and_is_much_faster():
    frame = synthetic_prices(1, 700, seed=5)
    n, k = 600, 10
    t0 = time.perf_counter()
    model = TSRegression().fit(frame.iloc[:n])
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    updated = model.update(frame.iloc[n : n + k]).predict(5)
    update_seconds = time.perf_counter() - t0
    refit = TSRegression().fit(frame.iloc[: n + k]).predict(5)
    last = frame[Y].iloc[n + k - 1]
    assert list(updated[DS]) == list(refit[DS])
    assert (np.sign(updated[YHAT] - last) == np.sign(refit[YHAT] - last)).all()
    np.testing.assert_allclose(updated[YHAT], refit[YHAT], rtol=5e-3)
    assert update_seconds < fit_seconds / 5, f"update {update_seconds:.3f}s vs fit {fit_seconds:.3f}s"


def test_too_short_series_names_the_series():
    frame = synthetic_prices(1, 59, seed=2).assign(**{ID: "TINY"})
    with pytest.raises(ModelFitError, match="TINY.*59 training sessions, needs at least 60"):
        TSRegression().fit(frame)
    # Long enough, but not after dropping the rows whose lagged covariate is unknown yet.
    frame = _with_covariate(synthetic_prices(1, 62, seed=2).assign(**{ID: "TINY"}))
    frame.loc[:5, "cov_idx_level"] = np.nan
    with pytest.raises(ModelFitError, match="TINY.*training sessions after dropping 11 rows"):
        TSRegression(exog=("cov_idx_level",)).fit(frame, horizon=5)


def test_non_positive_prices_are_refused_for_the_log_model():
    frame = synthetic_prices(1, 120, seed=2)
    frame.loc[50, Y] = -1.0
    with pytest.raises(ModelFitError, match="non-positive.*log=False"):
        TSRegression().fit(frame)
    assert np.isfinite(TSRegression(log=False).fit(frame).predict(3)[YHAT]).all()


def test_covariates_lagged_by_the_horizon_without_look_ahead():
    """As ARIMAX: a covariate enters lagged by the fit horizon; tampering after a cutoff changes nothing before."""
    frame = _with_covariate(synthetic_prices(1, 360, seed=4))
    model = make_model("ts_regression", exog=("cov_idx_level",))
    assert model.needs_horizon() and not make_model("ts_regression").needs_horizon()
    cutoffs = list(frame[DS].iloc[[300, 310, 320]])
    base = fit_model(model, frame.iloc[:300], 5).forecast_origins(frame, cutoffs, 5)
    assert "cov_idx_level" in model.coef_
    tampered = frame.copy()
    tampered.loc[tampered[DS] > cutoffs[-1], [Y, "cov_idx_level"]] *= 3.0
    other = fit_model(model.clone(), frame.iloc[:300], 5).forecast_origins(tampered, cutoffs, 5)
    pd.testing.assert_frame_equal(base, other)
    with pytest.raises(DataError, match="unknown 6 steps ahead"):
        model.predict(6)


def test_holiday_flags_from_the_exchange_calendar():
    # XNYS closed Friday 2015-07-03 (Independence Day observed).
    ds = pd.DatetimeIndex(["2015-07-01", "2015-07-02", "2015-07-06", "2015-07-07", "2015-07-10", "2015-07-13"])
    pre, post = holiday_flags("XNYS", ds)
    assert pre.tolist() == [False, True, False, False, False, False]
    assert post.tolist() == [False, False, True, False, False, False]
    pre, post = holiday_flags("24/7", ds)
    assert not pre.any() and not post.any()
    dummies = calendar_dummies("XNYS", ds, month=True)
    assert dummies["dow_0"].tolist() == [0, 0, 1, 0, 0, 1] and dummies["month_7"].eq(1).all()


def test_future_regressors_come_from_the_calendar():
    """A forecast over a holiday week uses the calendar's known pre/post-holiday sessions, not the dates' gaps."""
    frame = series_frame(np.exp(np.random.default_rng(0).normal(0, 0.01, 400).cumsum()) * 100, start="2014-01-02")
    model = TSRegression().fit(frame[frame[DS] <= "2015-06-30"])
    future = model.future_ds(5)
    assert pd.Timestamp("2015-07-03") not in future
    assert calendar_dummies("XNYS", future)["pre_holiday"].tolist() == [0, 1, 0, 0, 0]
    assert np.isfinite(model.predict(5)[YHAT]).all()


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigError, match="d must be"):
        TSRegression(d=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_p"):
        TSRegression(max_p=-1)
