"""`<model>+tuned` (models.tuning.Tuned): searches inside the training window only, deterministically, and helps.

Also the two model changes tuning with covariates needs: Prophet's regressor lag follows the fit horizon, and the
recurrent networks skip the leading rows where a feature is not yet known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError, ModelFitError
from common.schema import DS, ID, YHAT, Y
from models import REGISTRY, make_model
from models.base import fit_model
from models.search_space import Choice, Float, Int
from models.tuning import Tuned, suggest, tunable_models

from .conftest import series_frame, synthetic_prices

H = 5
NEURAL = {n for n, s in REGISTRY.items() if s.family == "neural"}
# Tiny settings for the slow families: tuning still searches their declared space on top of these.
TINY = {
    **{n: {"epochs": 2, "units": 8, "patience": 1} for n in NEURAL},
    "prophet": {"uncertainty_samples": 0, "yearly": False},
}
TUNABLE = tunable_models()


def _walk(n: int, *, seed: int) -> pd.DataFrame:
    frame = synthetic_prices(1, n, seed=seed)
    frame[ID] = "SYN"
    return frame


def _mae(model, history: pd.DataFrame, start: int, stop: int) -> float:
    """MAE of `model` forecasting H steps from origins every H rows in [start, stop) of `history`."""
    origins = np.arange(start, stop - H, H)
    fc = model.predict_origins(history, list(history[DS].iloc[origins]), H)
    actual = history[Y].to_numpy()[origins[:, None] + np.arange(1, H + 1)]
    return float(np.mean(np.abs(fc.mean - actual)))


def test_tuning_moving_average_finds_a_short_window_on_a_random_walk_and_beats_the_plain_model():
    data = _walk(600, seed=3)
    train = data.iloc[:500]
    tuned = Tuned(model="moving_average", params={"window": 60}, trials=20).fit(train, horizon=H)
    plain = fit_model(make_model("moving_average", window=60), train, H)
    assert tuned.best_params_["window"] <= 5
    assert tuned.trials_ == 20 and tuned.failed_trials_ == 0
    assert _mae(tuned, data, 499, 600) < _mae(plain, data, 499, 600)


def test_the_search_never_reads_past_the_training_window():
    data = _walk(400, seed=5)
    cut = 300
    shocked = data.copy()
    shocked.loc[cut:, Y] *= 10.0  # everything after the training window
    fits = [Tuned(model="arima", trials=6).fit(d.iloc[:cut], horizon=H) for d in (data, shocked)]
    assert fits[0].best_params_ == fits[1].best_params_
    pd.testing.assert_frame_equal(fits[0].predict(H), fits[1].predict(H))


def test_later_origins_only_use_rows_up_to_each_origin():
    data = _walk(360, seed=11)
    train = data.iloc[:300]
    cutoffs = list(data[DS].iloc[[299, 309, 319]])
    later = data.copy()
    later.loc[data[DS] > cutoffs[1], Y] *= 10.0  # after the second origin
    got = [
        Tuned(model="ets", trials=3).fit(train, horizon=H).predict_origins(d, cutoffs, H).mean for d in (data, later)
    ]
    np.testing.assert_array_equal(got[0][:2], got[1][:2])
    assert not np.allclose(got[0][2], got[1][2])


def test_same_seed_same_choice_and_forecasts():
    train = _walk(300, seed=2)
    first, second = (Tuned(model="moving_average", trials=8, seed=4).fit(train, horizon=H) for _ in range(2))
    assert first.best_params_ == second.best_params_
    assert first.validation_mae_ == second.validation_mae_
    pd.testing.assert_frame_equal(first.predict(H), second.predict(H))
    other = Tuned(model="moving_average", trials=8, seed=5).fit(train, horizon=H)  # may choose differently
    assert other.trials_ == 8 and set(other.best_params_) == {"window"}


def test_tuning_never_picks_worse_than_the_plain_values_on_validation():
    train = _walk(300, seed=9)
    one = Tuned(model="moving_average", params={"window": 3}, trials=1).fit(train, horizon=H)
    many = Tuned(model="moving_average", params={"window": 3}, trials=10).fit(train, horizon=H)
    assert one.best_params_ == {"window": 3}  # trial 0 is the plain model's own value
    assert many.validation_mae_ <= one.validation_mae_


def test_a_model_without_a_search_space_is_refused_with_the_tunable_list():
    with pytest.raises(ConfigError, match=r"`naive` has no search space; tunable models: moving_average, .*arima"):
        Tuned(model="naive")
    assert "naive" not in tunable_models() and {"ets", "arima", "prophet", "lstm"} <= set(tunable_models())


@pytest.mark.parametrize("trials", [0, -3, 2.5])
def test_fewer_than_one_trial_is_refused(trials):
    with pytest.raises(ConfigError, match="trials >= 1"):
        Tuned(model="ets", trials=trials)


def test_bad_params_of_the_wrapped_model_fail_at_construction():
    with pytest.raises(ConfigError, match="window must be a positive integer"):
        Tuned(model="moving_average", params={"window": 0})


def test_a_window_too_short_for_the_tail_names_the_sessions_needed_and_available():
    with pytest.raises(
        ModelFitError, match=r"moving_average\+tuned on SYN: 25 training sessions, tuning needs at least 26"
    ):
        Tuned(model="moving_average", trials=2).fit(_walk(25, seed=0), horizon=H)


def test_every_trial_failing_names_the_model_the_series_and_the_first_reason():
    flat = series_frame(np.full(120, 50.0), uid="FLAT")
    with pytest.raises(
        ModelFitError, match=r"arima\+tuned on FLAT: all 3 tuning trials of arima failed; first: .*constant"
    ):
        Tuned(model="arima", trials=3).fit(flat, horizon=H)


def test_save_and_load_give_identical_forecasts(tmp_path):
    train = _walk(300, seed=4)
    model = Tuned(model="ets", trials=3).fit(train, horizon=H).named("ets+tuned")
    loaded = Tuned.load(model.save(tmp_path / "ets.pkl"))
    assert isinstance(loaded, Tuned) and loaded.name == "ets+tuned"
    assert loaded.best_params_ == model.best_params_
    pd.testing.assert_frame_equal(loaded.predict(H), model.predict(H))


def test_intervals_and_exog_are_the_wrapped_models():
    assert Tuned(model="ets").supports_intervals and not Tuned(model="ets").supports_exog
    assert Tuned(model="arimax").supports_exog
    assert Tuned(model="lstm", params={"features": ("logret_1",)}).exog_columns == ("logret_1",)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in NEURAL else n for n in TUNABLE])
def test_two_trials_complete_for_every_tunable_model(name):
    train = _walk(160, seed=1)
    model = Tuned(model=name, params=TINY.get(name, {}), trials=2).fit(train, horizon=H)
    assert model.trials_ == 2 and set(model.best_params_) == set(make_model(name).search_space)
    forecast = model.predict(H)
    assert len(forecast) == H and np.isfinite(forecast[YHAT]).all()


@pytest.mark.parametrize("name", TUNABLE)
def test_every_value_of_a_search_space_is_accepted_by_the_constructor(name):
    import optuna

    space = make_model(name).search_space
    corners = [
        {k: (d.values[i % len(d.values)] if isinstance(d, Choice) else (d.low, d.high)[i]) for k, d in space.items()}
        for i in (0, 1)
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = [suggest(study.ask(), space) for _ in range(30)]
    for values in corners + sampled:
        assert all(space[k].contains(v) for k, v in values.items()), values
        model = make_model(name, **values)
        assert all(getattr(model, k) == v for k, v in values.items())
    defaults = make_model(name)
    assert all(space[k].contains(getattr(defaults, k)) for k in space), "the defaults lie inside the space"


def test_search_space_types_check_their_ranges():
    assert Int(2, 60, log=True).contains(5) and not Int(2, 60).contains(61) and not Int(0, 1).contains(True)
    assert Float(0.0, 0.3).contains(0.3) and not Float(0.0, 0.3).contains(float("nan"))
    assert Choice(False, True).contains(True) and not Choice(1, 2).contains(True)
    with pytest.raises(ConfigError, match="log scale"):
        Float(0.0, 1.0, log=True)


# ---- the model changes covariates need -------------------------------------------------------------------------
def test_prophet_with_a_lagged_regressor_forecasts_the_fit_horizon():
    train = _walk(200, seed=6)
    model = make_model("prophet", regressors=("logret_1",), uncertainty_samples=0, yearly=False)
    assert model.needs_horizon()  # so the engine passes the run's horizon
    fitted = fit_model(model, train, H)
    assert len(fitted.predict(H)) == H
    fixed = fit_model(make_model("prophet", regressors=("logret_1",), exog_lag=1, uncertainty_samples=0), train, H)
    with pytest.raises(DataError, match="exog_lag >= 5"):  # an explicit lag still rules
        fixed.predict(H)


def _tiny_lstm():
    return make_model("lstm", features=("cov",), window=10, epochs=2, units=4, patience=1)


def _with_feature(n: int, values: np.ndarray) -> pd.DataFrame:
    frame = _walk(n, seed=8)
    frame["cov"] = values
    return frame


@pytest.mark.slow
def test_rnn_skips_leading_rows_where_a_feature_is_not_yet_known():
    values = np.random.default_rng(0).normal(size=120)
    values[:15] = np.nan  # a covariate that starts later than the target
    frame = _with_feature(120, values)
    model = fit_model(_tiny_lstm(), frame.iloc[:110], H)
    assert len(model.predict(H)) == H
    later = model.predict_origins(frame, list(frame[DS].iloc[[110, 115]]), H)
    assert later.mean.shape == (2, H) and np.isfinite(later.mean).all()


@pytest.mark.slow
def test_rnn_refuses_a_missing_feature_value_after_the_warm_up():
    values = np.random.default_rng(0).normal(size=120)
    values[:5] = np.nan
    values[70] = np.nan
    frame = _with_feature(120, values)
    date = frame[DS].iloc[70].date()
    with pytest.raises(DataError, match=rf"feature 'cov' is missing/non-finite at {date}"):
        fit_model(_tiny_lstm(), frame, H)
