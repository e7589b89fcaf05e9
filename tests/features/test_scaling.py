"""TrainScaler: per-column, fitted on the training slice only, safe on constant columns."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError, DataError, NotFittedError
from features.scaling import TrainScaler


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_round_trip_and_train_only_statistics(method):
    rng = np.random.default_rng(1)
    data = rng.normal(5.0, 3.0, size=(100, 3))
    train, test = data[:60], data[60:] + 100.0
    scaler = TrainScaler(method).fit(train)
    z = scaler.transform(train)
    if method == "standard":
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-12)
    else:
        np.testing.assert_allclose(z.min(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(z.max(axis=0), 1.0, atol=1e-12)
    # The test slice does not move the statistics.
    before = (scaler.center_.copy(), scaler.scale_.copy())
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(test)), test)
    np.testing.assert_array_equal(before[0], scaler.center_)
    np.testing.assert_array_equal(before[1], scaler.scale_)


def test_zero_std_column_is_finite():
    data = np.column_stack([np.full(10, 7.0), np.arange(10.0)])
    for method in ("standard", "minmax"):
        scaler = TrainScaler(method).fit(data)
        z = scaler.transform(data)
        assert np.all(np.isfinite(z))
        np.testing.assert_array_equal(z[:, 0], 0.0)
        np.testing.assert_allclose(scaler.inverse_transform(z), data)


def test_one_dimensional_and_windowed_shapes():
    y = np.arange(10.0)
    scaler = TrainScaler().fit(y)
    assert scaler.transform(y).shape == (10,)
    cube = np.random.default_rng(2).normal(size=(4, 5, 2))
    s2 = TrainScaler().fit(cube.reshape(-1, 2))
    np.testing.assert_allclose(s2.inverse_transform(s2.transform(cube)), cube)


def test_errors():
    with pytest.raises(ConfigError):
        TrainScaler("robust")
    with pytest.raises(NotFittedError):
        TrainScaler().transform(np.ones(3))
    with pytest.raises(DataError, match="non-finite"):
        TrainScaler().fit(np.array([1.0, np.nan]))
    with pytest.raises(DataError, match="column"):
        TrainScaler().fit(np.ones((3, 2))).transform(np.ones((3, 3)))
