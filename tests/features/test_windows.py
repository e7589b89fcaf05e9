"""sliding_windows / windows_ending_at: the alignment that keeps targets out of their own inputs."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import DataError
from features.windows import sliding_windows, supervised_windows, windows_ending_at


def test_alignment_inputs_then_targets():
    values = np.arange(10.0)
    X, Y = sliding_windows(values, window=3, horizon=2)
    assert X.shape == (6, 3, 1) and Y.shape == (6, 2)
    for i in range(6):
        np.testing.assert_array_equal(X[i, :, 0], values[i : i + 3])
        np.testing.assert_array_equal(Y[i], values[i + 3 : i + 5])
        assert X[i, -1, 0] < Y[i, 0]  # every target row strictly after the origin


def test_horizon_zero_covers_every_origin():
    values = np.arange(12.0).reshape(6, 2)
    X, Y = sliding_windows(values, window=4)
    assert Y is None and X.shape == (3, 4, 2)
    np.testing.assert_array_equal(X[-1], values[2:6])


def test_separate_target_and_multifeature():
    values = np.column_stack([np.arange(8.0), -np.arange(8.0)])
    target = np.arange(8.0) * 10
    X, Y = sliding_windows(values, window=2, horizon=3, target=target)
    assert X.shape == (4, 2, 2)
    np.testing.assert_array_equal(X[1], values[1:3])
    np.testing.assert_array_equal(Y[1], target[3:6])


def test_supervised_windows_equal_sliding_windows_with_targets():
    values = np.column_stack([np.arange(9.0), np.arange(9.0) ** 2])
    X, Y = supervised_windows(values, window=3, horizon=2)
    X_ref, Y_ref = sliding_windows(values, window=3, horizon=2)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(Y, Y_ref)
    np.testing.assert_array_equal(Y[0], values[3:5, 0])  # targets: column 0 after the origin
    with pytest.raises(DataError, match="horizon >= 1"):
        supervised_windows(values, window=3, horizon=0)
    with pytest.raises(DataError, match="horizon >= 0"):
        sliding_windows(values, window=3, horizon=-1)  # the shared message, as before


def test_windows_are_copies():
    values = np.arange(6.0)
    X, _ = sliding_windows(values, window=2)
    X[0, 0, 0] = 99.0
    assert values[0] == 0.0


def test_windows_ending_at_matches_sliding():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, 3))
    X_all, _ = sliding_windows(values, window=5)
    ends = np.array([4, 10, 19])
    X = windows_ending_at(values, ends, window=5)
    np.testing.assert_array_equal(X, X_all[ends - 4])
    np.testing.assert_array_equal(X[1, -1], values[10])  # inclusive end


def test_errors():
    with pytest.raises(DataError, match="too few"):
        sliding_windows(np.arange(4.0), window=3, horizon=2)
    with pytest.raises(DataError, match="origins"):
        windows_ending_at(np.arange(10.0), np.array([1]), window=3)
    with pytest.raises(DataError, match="origins"):
        windows_ending_at(np.arange(10.0), np.array([10]), window=3)
