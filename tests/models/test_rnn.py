"""RecurrentForecaster: seeded determinism, no look-ahead, batched origins == loop, conformal bands, persistence."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from common.schema import CUTOFF, DS, FORECAST_COLUMNS, HI_80, HI_95, ID, INTERVAL_COLUMNS, LO_80, LO_95, YHAT, Y
from features.calendar import sessions
from models.rnn import RecurrentForecaster, conformal_quantile

N_TRAIN = 300
H = 5
TINY = {"units": 4, "epochs": 2, "window": 10, "horizon": H, "patience": 1, "batch_size": 32}


def _series(n: int = N_TRAIN + 40, *, seed: int = 11, uid: str = "SYN") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", "2015-01-02", "2016-12-30")[:n]
    y = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    frame = pd.DataFrame({ID: uid, DS: ds, Y: y})
    frame["logret_1"] = np.log(frame[Y]).diff().fillna(0.0)
    return frame


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return _series()


@pytest.fixture(scope="module")
def fitted(series) -> RecurrentForecaster:
    return RecurrentForecaster(cell="lstm", **TINY).fit(series.iloc[:N_TRAIN])


def test_import_does_not_load_tensorflow():
    code = "import sys, models.rnn; sys.exit(int('tensorflow' in sys.modules or 'keras' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_conformal_quantile_finite_sample_rank():
    res = np.arange(1.0, 20.0)[:, None]  # n = 19 residuals 1..19
    assert conformal_quantile(res, 80)[0] == 16.0  # ceil(20 * 0.8) = 16th smallest
    assert conformal_quantile(res, 95)[0] == 19.0  # ceil(20 * 0.95) = 19th smallest
    assert conformal_quantile(-res[:5], 95)[0] == 5.0  # too few residuals: the largest (below nominal)


def test_config_errors():
    with pytest.raises(ConfigError, match="cell"):
        RecurrentForecaster(cell="transformer")
    with pytest.raises(ConfigError, match="target_transform"):
        RecurrentForecaster(target_transform="diff")


@pytest.mark.slow
def test_schema_and_ordered_conformal_intervals(series, fitted):
    f = fitted.predict(H)
    assert list(f.columns) == [*FORECAST_COLUMNS, *INTERVAL_COLUMNS]
    expected = sessions("XNYS", series[DS].iloc[N_TRAIN - 1] + pd.Timedelta(days=1), "2017-12-31")[:H]
    assert list(f[DS]) == list(expected)
    assert (f[LO_95] <= f[LO_80]).all() and (f[LO_80] <= f[YHAT]).all()
    assert (f[YHAT] <= f[HI_80]).all() and (f[HI_80] <= f[HI_95]).all()
    assert fitted.residuals_.shape[1] == H and fitted.epochs_run_ <= TINY["epochs"]
    assert len(fitted.predict(2)) == 2


@pytest.mark.slow
def test_horizon_beyond_network_output_is_a_clear_error(fitted):
    with pytest.raises(DataError, match="horizon=5"):
        fitted.predict(H + 1)


@pytest.mark.slow
def test_same_seed_identical_forecasts(series, fitted):
    again = RecurrentForecaster(cell="lstm", **TINY).fit(series.iloc[:N_TRAIN])
    pd.testing.assert_frame_equal(fitted.predict(H), again.predict(H))
    # Clearing the Keras session for the later fit did not disturb the earlier live model.
    assert fitted.model_ is not None and again.model_ is not fitted.model_


@pytest.mark.slow
def test_batched_forecast_origins_equals_update_predict_loop(series, fitted, tmp_path):
    cutoffs = [series[DS].iloc[N_TRAIN - 1], series[DS].iloc[N_TRAIN + 4], series[DS].iloc[N_TRAIN + 17]]
    a = RecurrentForecaster.load(fitted.save(tmp_path / "a.model"))
    b = RecurrentForecaster.load(fitted.save(tmp_path / "b.model"))
    batched = a.forecast_origins(series, cutoffs, H)
    looped = super(RecurrentForecaster, b).forecast_origins(series, cutoffs, H)  # the base update+predict loop
    assert list(batched.columns) == list(looped.columns) and len(batched) == 3 * H
    pd.testing.assert_frame_equal(batched[[ID, CUTOFF, DS, "h"]], looped[[ID, CUTOFF, DS, "h"]])
    for col in [YHAT, *INTERVAL_COLUMNS]:
        np.testing.assert_allclose(batched[col], looped[col], rtol=1e-6, atol=0)
    assert a.ds_[-1] == b.ds_[-1] == cutoffs[-1]  # both end conditioned on the last cutoff
    pd.testing.assert_frame_equal(a.predict(H), b.predict(H))


@pytest.mark.slow
def test_no_look_ahead(series, fitted):
    cutoffs = [series[DS].iloc[N_TRAIN + 4], series[DS].iloc[N_TRAIN + 9]]
    tampered = series.copy()
    tampered.loc[tampered[DS] > cutoffs[-1], [Y, "logret_1"]] *= 3.0
    a = pickle.loads(pickle.dumps(fitted)).forecast_origins(series, cutoffs, H)
    b = pickle.loads(pickle.dumps(fitted)).forecast_origins(tampered, cutoffs, H)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_save_load_round_trip(series, fitted, tmp_path):
    loaded = RecurrentForecaster.load(fitted.save(tmp_path / "lstm.model"))
    assert loaded.model_ is None  # the live Keras model is never pickled; rebuilt from weights on use
    pd.testing.assert_frame_equal(fitted.predict(H), loaded.predict(H))
    loaded.update(series.iloc[N_TRAIN : N_TRAIN + 2])
    assert loaded.predict(H)[DS].iloc[0] > series[DS].iloc[N_TRAIN + 1]


@pytest.mark.slow
def test_features_level_transform_stacked_cells_and_warm_refit(series):
    model = RecurrentForecaster(
        cell="gru",
        features=("cal_dow", "logret_1"),
        target_transform="level",
        layers=2,
        dropout=0.1,
        warm_epochs=1,
        **TINY,
    ).fit(series.iloc[: N_TRAIN - 20])
    assert [type(layer).__name__ for layer in model.model_.layers].count("GRU") == 2
    assert model.warm_started_ is False
    f = model.predict(H)
    assert np.isfinite(f[YHAT]).all() and (f[LO_95] <= f[YHAT]).all() and (f[YHAT] <= f[HI_95]).all()
    first_net = model.model_
    model.fit(series.iloc[:N_TRAIN])  # same architecture: continue from the previous weights
    assert model.warm_started_ is True and model.epochs_run_ == 1 and model.model_ is first_net
    assert np.isfinite(model.predict(H)[YHAT]).all()


@pytest.mark.parametrize(("cell", "layer"), [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_cell_parameter_picks_the_keras_layer(cell, layer):
    model = RecurrentForecaster(cell=cell, **TINY)._build()
    assert [type(x).__name__ for x in model.layers][1] == layer
    assert model.output_shape == (None, H)


def test_short_series_and_non_positive_prices_are_clear_errors(series):
    with pytest.raises(DataError, match="windows"):
        RecurrentForecaster(**TINY).fit(series.iloc[:22])
    neg = series.iloc[:N_TRAIN].copy()
    neg.loc[5, Y] = -1.0
    with pytest.raises(DataError, match="level"):
        RecurrentForecaster(**TINY).fit(neg)
