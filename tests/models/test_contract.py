"""One conformance suite run against every registered model (sktime-style): adding a model adds its tests.

Each model runs with a tiny configuration so the whole suite stays fast; real sizes live in benchmarks/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError, ModelFitError, NotFittedError
from common.schema import CUTOFF, DS, FORECAST_COLUMNS, HI_80, HI_95, ID, INTERVAL_COLUMNS, LO_80, LO_95, YHAT, H, Y
from features.calendar import sessions
from models import REGISTRY, make_model, model_class
from models.base import fit_model

HORIZON = 5
HORIZONS = (1, 10, 30)  # a one-step run, the issue-14 `--horizon 10` and a month ahead
N_TRAIN = 260

# Tiny configurations: enough to exercise each code path in seconds. No `horizon` for the recurrent models: they
# declare requires_horizon_in_fit and are fitted for the horizon the test asks for, as the engine does.
TINY: dict[str, dict] = {
    "rnn": {"units": 4, "epochs": 2, "window": 10, "patience": 1},
    "lstm": {"units": 4, "epochs": 2, "window": 10, "patience": 1},
    "gru": {"units": 4, "epochs": 2, "window": 10, "patience": 1},
    "global_lstm": {"units": 4, "epochs": 2, "window": 10, "patience": 1},
    "global_gru": {"units": 4, "epochs": 2, "window": 10, "patience": 1},
    "prophet": {"uncertainty_samples": 50, "yearly": False},
    "ensemble": {"members": ("naive", "drift", "ses")},
}
NEURAL = {n for n, s in REGISTRY.items() if s.family == "neural"}
# Models whose forecast variance grows with the horizon by construction (random-walk-like error models).
WIDENING = {"naive", "drift", "seasonal_naive", "ses", "holt", "ets", "arima"}

ALL = sorted(REGISTRY)
FAST = [n for n in ALL if n not in NEURAL and n != "prophet"]


def _params(name: str) -> dict:
    return dict(TINY.get(name, {}))


def _series(n: int = N_TRAIN + 40, *, seed: int = 7, uid: str = "SYN", constant: bool = False) -> pd.DataFrame:
    """A seeded geometric random walk on real XNYS sessions, with the exogenous columns models may ask for."""
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", "2015-01-02", "2016-12-30")[:n]
    y = np.full(n, 50.0) if constant else 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    frame = pd.DataFrame({ID: uid, DS: ds, Y: y})
    logret = np.log(frame[Y]).diff().fillna(0.0)
    frame["logret_1"] = logret
    frame["vol_20"] = logret.rolling(20, min_periods=1).std().fillna(0.0)
    return frame


def _fit(name: str, train: pd.DataFrame, horizon: int = HORIZON):
    """Fit as the engine and the forecast task do: told the horizon when the model declares it needs it."""
    return fit_model(make_model(name, **_params(name)), train, horizon)


def _assert_forecast_schema(model, frame: pd.DataFrame, last_ds: pd.Timestamp, horizon: int) -> None:
    assert list(frame.columns[:4]) == list(FORECAST_COLUMNS)
    assert len(frame) == horizon
    assert frame[H].tolist() == list(range(1, horizon + 1))
    assert frame[ID].eq("SYN").all()
    assert frame[DS].is_monotonic_increasing and frame[DS].iloc[0] > last_ds
    assert np.isfinite(frame[YHAT]).all()
    has_intervals = set(INTERVAL_COLUMNS) <= set(frame.columns)
    assert has_intervals == model.supports_intervals, f"{model.name}: interval columns vs supports_intervals"


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return _series()


@pytest.fixture(scope="module")
def fitted(series):
    """One fitted instance per model, shared by the read-only checks (fitting neural models costs seconds)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = _fit(name, series.iloc[:N_TRAIN])
        return cache[name]

    return get


@pytest.mark.parametrize("name", ALL)
def test_registry_entry_describes_class(name):
    cls = model_class(name)
    assert REGISTRY[name].summary, f"{name}: give the registry entry a summary (the model's one description)"
    assert not hasattr(cls, "description"), f"{name}: describe the model in its registry entry, not on the class"
    assert make_model(name, **_params(name)).name == name, f"{name}: an instance reports its registry key"
    assert isinstance(cls.supports_exog, bool) and isinstance(cls.supports_intervals, bool)


@pytest.mark.parametrize("name", ALL)
def test_predict_schema_and_length(name, series, fitted):
    model = fitted(name)
    frame = model.predict(HORIZON)
    _assert_forecast_schema(model, frame, series[DS].iloc[N_TRAIN - 1], HORIZON)
    # Future dates are real XNYS sessions, not naive business days.
    expected = sessions("XNYS", series[DS].iloc[N_TRAIN - 1] + pd.Timedelta(days=1), "2017-12-31")[:HORIZON]
    assert list(frame[DS]) == list(expected)


@pytest.mark.parametrize("horizon", HORIZONS)
@pytest.mark.parametrize("name", ALL)
def test_fits_and_predicts_the_run_horizon(name, horizon, series):
    """Every model forecasts h = 1, 10 and 30 real sessions when fitted the way the engine fits it (issue 14.5)."""
    train = series.iloc[:N_TRAIN]
    model = _fit(name, train, horizon)
    frame = model.predict(horizon)
    _assert_forecast_schema(model, frame, train[DS].iloc[-1], horizon)
    expected = sessions("XNYS", train[DS].iloc[-1] + pd.Timedelta(days=1), "2017-12-31")[:horizon]
    assert list(frame[DS]) == list(expected)
    if model.requires_horizon_in_fit:  # fitted for `horizon` steps: one more is refused, never extrapolated
        with pytest.raises(DataError, match=f"{horizon + 1} steps"):
            model.predict(horizon + 1)


@pytest.mark.parametrize("name", sorted(NEURAL))
def test_horizon_in_fit_is_required_or_given(name, series):
    """A direct multi-step model fitted without a horizon says how to give one instead of guessing a default."""
    with pytest.raises(DataError, match="needs the horizon at fit"):
        make_model(name, **_params(name)).fit(series.iloc[:N_TRAIN])
    with pytest.raises(DataError, match="constructed with horizon=3 but fitted for 10"):
        make_model(name, **_params(name), horizon=3).fit(series.iloc[:N_TRAIN], horizon=10)


@pytest.mark.parametrize("name", ALL)
def test_predict_before_fit_raises_clear_error(name):
    with pytest.raises(NotFittedError, match="fit"):
        make_model(name, **_params(name)).predict(HORIZON)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_gives_identical_output(name, series, fitted):
    again = _fit(name, series.iloc[:N_TRAIN]).predict(HORIZON)
    pd.testing.assert_frame_equal(fitted(name).predict(HORIZON), again)


@pytest.mark.parametrize("name", ALL)
def test_no_look_ahead_in_forecast_origins(name, series):
    """Forecasts from origins before the end of `history` never depend on rows after each origin."""
    cutoffs = [series[DS].iloc[N_TRAIN + 9], series[DS].iloc[N_TRAIN + 19]]
    base = _fit(name, series.iloc[:N_TRAIN]).forecast_origins(series, cutoffs, HORIZON)
    tampered = series.copy()
    after = tampered[DS] > cutoffs[-1]
    tampered.loc[after, [Y, "logret_1", "vol_20"]] *= 3.0
    other = _fit(name, series.iloc[:N_TRAIN]).forecast_origins(tampered, cutoffs, HORIZON)
    pd.testing.assert_frame_equal(base, other)
    assert base[CUTOFF].nunique() == 2 and len(base) == 2 * HORIZON


def _looped(model, history: pd.DataFrame, cutoffs, horizon: int) -> pd.DataFrame:
    """What predict_origins must equal: update() up to each cutoff, then predict(), one origin at a time."""
    frames = []
    for cutoff in cutoffs:
        new = history[(history[DS] > model.ds_[-1]) & (history[DS] <= cutoff)]
        if len(new):
            model.update(new)
        frames.append(model.predict(horizon).assign(**{CUTOFF: cutoff}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("name", ALL)
def test_block_forecasts_equal_the_update_predict_loop(name, series):
    """Every origin of a block in one call (vectorised where the model is) gives the loop's numbers and dates.

    The first origin is the fitted window's own end (no new rows), then origins 1, 5 and 13 sessions later.
    """
    cutoffs = list(series[DS].iloc[[N_TRAIN - 1, N_TRAIN, N_TRAIN + 4, N_TRAIN + 17]])
    block = _fit(name, series.iloc[:N_TRAIN]).predict_origins(series, cutoffs, HORIZON)
    looped = _looped(_fit(name, series.iloc[:N_TRAIN]), series, cutoffs, HORIZON)
    frame = block.to_frame()
    assert block.mean.shape == (4, HORIZON) and list(block.cutoffs) == cutoffs
    assert (frame[DS].to_numpy() == looped[DS].to_numpy()).all()
    rtol = 1e-6 if name in NEURAL else 1e-9  # the networks compute in float32: a batch rounds differently
    for col in [YHAT, *INTERVAL_COLUMNS]:
        if col in looped.columns:
            np.testing.assert_allclose(frame[col], looped[col], rtol=rtol, err_msg=f"{name} {col}")
        else:
            assert col not in frame.columns


@pytest.mark.parametrize("name", ALL)
def test_update_conditions_on_new_rows(name, series):
    model = _fit(name, series.iloc[:N_TRAIN])
    model.update(series.iloc[N_TRAIN : N_TRAIN + 3])
    frame = model.predict(HORIZON)
    _assert_forecast_schema(model, frame, series[DS].iloc[N_TRAIN + 2], HORIZON)
    with pytest.raises(DataError, match="after the last seen session"):
        model.update(series.iloc[N_TRAIN : N_TRAIN + 1])


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, series, fitted, tmp_path):
    model = fitted(name)
    loaded = type(model).load(model.save(tmp_path / f"{name}.model"))
    pd.testing.assert_frame_equal(model.predict(HORIZON), loaded.predict(HORIZON))


@pytest.mark.parametrize("name", ALL)
def test_intervals_contain_point_forecast(name, fitted):
    model = fitted(name)
    if not model.supports_intervals:
        pytest.skip(f"{name} gives no intervals")
    f = model.predict(HORIZON)
    tol = 1e-9
    assert (f[LO_95] <= f[LO_80] + tol).all() and (f[LO_80] <= f[YHAT] + tol).all()
    assert (f[YHAT] <= f[HI_80] + tol).all() and (f[HI_80] <= f[HI_95] + tol).all()
    if name in WIDENING:
        width = (f[HI_95] - f[LO_95]).to_numpy()
        assert np.all(np.diff(width) >= -1e-9), f"{name}: 95% interval should widen with h, got {width}"


@pytest.mark.parametrize("name", FAST)
def test_constant_series_is_handled_or_rejected_clearly(name):
    flat = _series(constant=True)
    try:
        frame = _fit(name, flat.iloc[:N_TRAIN]).predict(HORIZON)
    except ModelFitError as exc:
        assert exc.model and exc.unique_id == "SYN" and exc.reason
    else:
        assert np.allclose(frame[YHAT], 50.0, rtol=1e-3), f"{name}: a constant series should forecast flat"


@pytest.mark.parametrize("name", ALL)
def test_series_with_non_session_gaps(name, series):
    """Missing sessions (halted trading, feed gaps) are not an error; forecasts still start after the last row."""
    gappy = series.iloc[:N_TRAIN].drop(index=[30, 31, 77, 150]).reset_index(drop=True)
    model = _fit(name, gappy)
    _assert_forecast_schema(model, model.predict(HORIZON), gappy[DS].iloc[-1], HORIZON)


@pytest.mark.parametrize("name", FAST)
def test_minimum_length(name, series):
    cls = model_class(name)
    n = max(cls.min_train_size, 1)
    short = series.iloc[:n]
    try:
        frame = _fit(name, short).predict(HORIZON)
        assert np.isfinite(frame[YHAT]).all()
    except ModelFitError as exc:
        assert "SYN" in str(exc)
    if n > 1:
        with pytest.raises(ModelFitError, match="training sessions"):
            _fit(name, series.iloc[: n - 1])


@pytest.mark.parametrize("name", ALL)
def test_constructor_arguments_not_mutated(name, series):
    model = make_model(name, **_params(name))
    before = repr(model.get_params())
    fit_model(model, series.iloc[:N_TRAIN], HORIZON)
    assert repr(model.get_params()) == before
