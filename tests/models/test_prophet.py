"""ProphetForecaster: equals plain Prophet / cross_validation, market holidays, intervals, warm starts, persistence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from common.schema import CUTOFF, DS, FORECAST_COLUMNS, HI_80, HI_95, ID, INTERVAL_COLUMNS, LO_80, LO_95, YHAT, Y
from features.calendar import sessions
from models.prophet_model import ProphetForecaster, market_holidays

N_TRAIN = 400
H = 5


def _series(n: int = N_TRAIN + 40, *, seed: int = 3, uid: str = "SYN") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", "2014-01-02", "2016-12-30")[:n]
    y = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.012, n)))
    frame = pd.DataFrame({ID: uid, DS: ds, Y: y})
    frame["logret_1"] = np.log(frame[Y]).diff().fillna(0.0)
    return frame


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return _series()


@pytest.fixture(scope="module")
def fitted(series) -> ProphetForecaster:
    return ProphetForecaster(uncertainty_samples=100).fit(series.iloc[:N_TRAIN])


def test_import_does_not_load_prophet():
    code = "import sys, models.prophet_model; sys.exit(int('prophet' in sys.modules or 'cmdstanpy' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_schema_dates_and_ordered_intervals(series, fitted):
    f = fitted.predict(H)
    assert list(f.columns) == [*FORECAST_COLUMNS, *INTERVAL_COLUMNS]
    expected = sessions("XNYS", series[DS].iloc[N_TRAIN - 1] + pd.Timedelta(days=1), "2017-12-31")[:H]
    assert list(f[DS]) == list(expected)
    assert (f[LO_95] <= f[LO_80]).all() and (f[LO_80] <= f[YHAT]).all()
    assert (f[YHAT] <= f[HI_80]).all() and (f[HI_80] <= f[HI_95]).all()
    assert (f[HI_95] - f[LO_95]).gt(0).all()


def test_zero_uncertainty_samples_gives_point_forecast_only(series, fitted):
    fast = ProphetForecaster(uncertainty_samples=0).fit(series.iloc[:N_TRAIN]).predict(H)
    assert not set(INTERVAL_COLUMNS) & set(fast.columns)
    np.testing.assert_allclose(fast[YHAT], fitted.predict(H)[YHAT], rtol=1e-12)


def test_same_seed_identical_output(series, fitted):
    again = ProphetForecaster(uncertainty_samples=100).fit(series.iloc[:N_TRAIN]).predict(H)
    pd.testing.assert_frame_equal(fitted.predict(H), again)


def test_equals_plain_prophet_across_market_holidays(fitted):
    """Same data and settings as a plain Prophet with the full-calendar holiday frame -> the same yhat."""
    from prophet import Prophet

    long = _series(520)
    train = long[long[DS] <= "2015-12-18"]
    ours = ProphetForecaster(uncertainty_samples=0).fit(train).predict(10)
    assert {"2015-12-24", "2015-12-28"} <= set(ours[DS].dt.strftime("%Y-%m-%d"))  # before/after Christmas
    plain = Prophet(**fitted.prophet_kwargs("XNYS")).fit(train[[DS, Y]])
    want = plain.predict(pd.DataFrame({DS: ours[DS]}))
    assert want.filter(like="Christmas").abs().to_numpy().max() > 0  # the holiday terms are active
    np.testing.assert_allclose(ours[YHAT], want["yhat"], rtol=1e-12)


def test_refits_reuse_feature_rows_and_equal_fresh_models():
    """Refitting one instance reuses Prophet's feature rows (one feature build per fold instead of three),
    and every fold's forecast and intervals equal a fresh instance's, around Thanksgiving and Christmas."""
    from prophet import Prophet

    long = _series(520)
    cutoffs = long[DS][(long[DS] >= "2015-11-20") & (long[DS] <= "2015-12-31")].iloc[::5]
    reused = ProphetForecaster(uncertainty_samples=50, warm_start=False)
    builds = []
    original = Prophet.make_all_seasonality_features

    def counting(self, df):
        builds.append(len(df))
        return original(self, df)

    for fold, cutoff in enumerate(cutoffs):
        train = long[long[DS] <= cutoff]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Prophet, "make_all_seasonality_features", counting)
            builds.clear()
            got = reused.fit(train).predict(H)
        assert builds == ([len(train), H] if fold == 0 else [H])  # later: only the new forecast dates
        want = ProphetForecaster(uncertainty_samples=50, warm_start=False).fit(train).predict(H)
        pd.testing.assert_frame_equal(got, want, rtol=1e-12)
        plain = Prophet(**reused.prophet_kwargs("XNYS")).fit(train[[DS, Y]]).predict(pd.DataFrame({DS: got[DS]}))
        np.testing.assert_allclose(got[YHAT], plain["yhat"], rtol=1e-12)


@pytest.mark.slow
def test_reproduces_prophet_cross_validation(series):
    """Refit at each cutoff with the same settings -> the same yhat as prophet.diagnostics.cross_validation."""
    from prophet import Prophet
    from prophet.diagnostics import cross_validation

    ours = ProphetForecaster(uncertainty_samples=0, warm_start=False)
    data = series[[DS, Y]]
    plain = Prophet(**ours.prophet_kwargs("XNYS")).fit(data)
    cutoffs = [series[DS].iloc[N_TRAIN - 1], series[DS].iloc[N_TRAIN + 14]]
    cv = cross_validation(plain, horizon="10 days", cutoffs=cutoffs, disable_tqdm=True)
    for cutoff in cutoffs:
        want = cv[cv["cutoff"] == cutoff]
        train = series[series[DS] <= cutoff]
        got = ours.clone().fit(train).predict(len(want))
        assert list(got[DS]) == list(want[DS])  # the data are XNYS sessions, like our future dates
        np.testing.assert_allclose(got[YHAT].to_numpy(), want["yhat"].to_numpy(), rtol=1e-10)


def test_warm_start_refit_uses_previous_parameters(series):
    model = ProphetForecaster(uncertainty_samples=0).fit(series.iloc[: N_TRAIN - 20])
    assert model.warm_started_ is False and "init" not in model.model_.fit_kwargs
    warm = model.fit(series.iloc[:N_TRAIN]).predict(H)
    assert model.warm_started_ is True and set(model.model_.fit_kwargs["init"]) == {
        "k",
        "m",
        "sigma_obs",
        "delta",
        "beta",
    }
    assert model.model_.fit_kwargs["tol_rel_grad"] == 1e9  # warm refits stop at a looser tolerance
    cold = ProphetForecaster(uncertainty_samples=0, warm_start=False).fit(series.iloc[:N_TRAIN])
    assert "tol_rel_grad" not in cold.model_.fit_kwargs  # cold fits keep Stan's defaults
    np.testing.assert_allclose(warm[YHAT], cold.predict(H)[YHAT], rtol=5e-3)  # same optimum up to tolerance


def test_optimize_args_reach_stan_and_cannot_override_prophet(series):
    model = ProphetForecaster(uncertainty_samples=0, optimize_args={"history_size": 7}, warm_tol_rel_grad=None)
    model.fit(series.iloc[: N_TRAIN - 20]).fit(series.iloc[:N_TRAIN])
    assert model.model_.fit_kwargs["history_size"] == 7 and "tol_rel_grad" not in model.model_.fit_kwargs
    with pytest.raises(ConfigError, match="algorithm"):
        ProphetForecaster(optimize_args={"algorithm": "Newton"})
    with pytest.raises(ConfigError, match="warm_tol_rel_grad"):
        ProphetForecaster(warm_tol_rel_grad=0)


def test_warm_start_from_another_model(series, fitted):
    model = ProphetForecaster(uncertainty_samples=0, warm_start_from=fitted).fit(series.iloc[: N_TRAIN + 10])
    assert model.warm_started_ and "init" in model.model_.fit_kwargs


def test_update_records_history_and_dates_from_last_session(series, fitted, tmp_path):
    model = ProphetForecaster.load(fitted.save(tmp_path / "p.model"))
    before = model.predict(H + 3)
    model.update(series.iloc[N_TRAIN : N_TRAIN + 3])
    after = model.predict(H)
    assert after[DS].iloc[0] > series[DS].iloc[N_TRAIN + 2]
    # No filter state: the same fitted curve, read from the newest origin.
    np.testing.assert_allclose(after[YHAT].to_numpy(), before[YHAT].to_numpy()[3:], rtol=1e-12)


def test_save_load_round_trip(fitted, tmp_path):
    loaded = ProphetForecaster.load(fitted.save(tmp_path / "prophet.model"))
    pd.testing.assert_frame_equal(fitted.predict(H), loaded.predict(H))


def test_no_look_ahead_in_forecast_origins(series):
    cutoffs = [series[DS].iloc[N_TRAIN + 4], series[DS].iloc[N_TRAIN + 9]]
    tampered = series.copy()
    tampered.loc[tampered[DS] > cutoffs[-1], Y] *= 3.0
    a = ProphetForecaster(uncertainty_samples=20).fit(series.iloc[:N_TRAIN]).forecast_origins(series, cutoffs, H)
    b = ProphetForecaster(uncertainty_samples=20).fit(series.iloc[:N_TRAIN]).forecast_origins(tampered, cutoffs, H)
    pd.testing.assert_frame_equal(a, b)
    assert a[CUTOFF].nunique() == 2


def test_regressors_known_ahead_rule(series):
    model = ProphetForecaster(uncertainty_samples=0, regressors=("cal_dow", "logret_1"), exog_lag=H)
    f = model.fit(series.iloc[:N_TRAIN]).predict(H)
    assert np.isfinite(f[YHAT]).all()
    assert {"cal_dow", "logret_1"} <= set(model.model_.extra_regressors)
    with pytest.raises(DataError, match="exog_lag"):
        model.predict(H + 1)


def test_market_holidays_frames():
    us = market_holidays("XNYS")
    assert set(us.columns) == {"holiday", DS, "lower_window", "upper_window"}
    xmas = us[us[DS].between("2015-12-20", "2015-12-30")]
    assert dict(zip(xmas["holiday"], xmas[DS].dt.strftime("%Y-%m-%d"), strict=True)) == {
        "before Christmas Day": "2015-12-24",
        "after Christmas Day": "2015-12-28",
    }
    # Events sit on trading days (closures themselves have no data to fit or forecast).
    assert us[DS].isin(sessions("XNYS", us[DS].min(), us[DS].max())).all()
    kr = market_holidays("XKRX")
    assert kr["holiday"].str.contains("Chuseok").any()
    assert market_holidays("24/7") is None


def test_intervals_are_the_same_when_prophet_models_forecast_in_parallel_threads():
    """Units run in threads: two Prophet models sampling at once must not interleave numpy's global draws."""
    from concurrent.futures import ThreadPoolExecutor

    data = [_series(seed=s, uid=f"S{s}") for s in (4, 5, 6, 7)]
    models = [ProphetForecaster(uncertainty_samples=300).fit(d.iloc[:N_TRAIN]) for d in data]
    alone = [m.predict(H) for m in models]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=4) as pool:
            together = list(pool.map(lambda m: m.predict(H), models))
        for a, b in zip(alone, together, strict=True):
            pd.testing.assert_frame_equal(a, b)
