"""Targets are labels: hand-computed values, NaN tails never filled, and each row reads only rows t..t+h."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ConfigError, DataError
from common.schema import CLOSE, DS, ID, Y
from features import targets as tg


def test_event_target_course_example():
    close = pd.Series([100.0, 104.0, 106.0, 101.0])
    np.testing.assert_array_equal(tg.event_target(close, threshold=0.05, horizon=1), [0.0, 0.0, 0.0, np.nan])
    np.testing.assert_array_equal(tg.event_target(close, threshold=0.05, horizon=2), [1.0, 0.0, np.nan, np.nan])


def test_event_target_exact_threshold_counts_and_dtype():
    out = tg.event_target(pd.Series([100.0, 105.0, 99.0]), threshold=0.05, horizon=1)
    assert out.dtype == float
    np.testing.assert_array_equal(out, [1.0, 0.0, np.nan])  # 105 vs 100 * 1.05 = 105.00000000000001


def test_event_target_nan_inside_window_gives_nan():
    out = tg.event_target(pd.Series([100.0, np.nan, 120.0, 90.0]), threshold=0.05, horizon=2)
    assert np.isnan(out.iloc[0]) and np.isnan(out.iloc[1]) and out.iloc[-2:].isna().all()


@pytest.mark.parametrize(("threshold", "horizon"), [(0.05, 0), (0.05, 1.5), (-1.0, 1), (float("nan"), 1)])
def test_event_target_rejects_bad_config(threshold, horizon):
    with pytest.raises(ConfigError):
        tg.event_target(pd.Series([1.0, 2.0]), threshold=threshold, horizon=horizon)


def test_forward_returns_and_levels():
    p = pd.Series([100.0, 110.0, 121.0, 100.0])
    np.testing.assert_allclose(tg.forward_return(p, horizon=1), [0.1, 0.1, 100 / 121 - 1, np.nan], equal_nan=True)
    np.testing.assert_allclose(tg.forward_return(p, horizon=2), [0.21, 100 / 110 - 1, np.nan, np.nan], equal_nan=True)
    np.testing.assert_allclose(
        tg.forward_return(p, horizon=2, log=True), [np.log(1.21), np.log(100 / 110), np.nan, np.nan], equal_nan=True
    )
    np.testing.assert_allclose(tg.level(p), p)
    np.testing.assert_allclose(tg.log_level(p), np.log(p))
    with pytest.raises(DataError, match="positive"):
        tg.log_level(pd.Series([1.0, 0.0]))


def test_target_names():
    assert tg.target_name("level") == "target_level"
    assert tg.target_name("log_return", horizon=5) == "target_log_return_h5"
    assert tg.target_name("event", horizon=1, threshold=0.05) == "target_event_500bp_h1"
    with pytest.raises(ConfigError):
        tg.target_name("event", horizon=1)
    with pytest.raises(ConfigError, match="unknown target kind"):
        tg.target_name("sharpe")  # type: ignore[arg-type]


def test_panel_target_per_series_aligned_to_rows():
    a = [100.0, 104.0, 106.0, 101.0]
    b = [10.0, 9.0, 8.0]
    panel = pd.DataFrame(
        {
            ID: ["A"] * 4 + ["B"] * 3,
            DS: list(pd.bdate_range("2024-01-01", periods=4)) + list(pd.bdate_range("2024-01-01", periods=3)),
            Y: a + b,
        }
    )
    shuffled = panel.sample(frac=1.0, random_state=3)
    out = tg.event_target_panel(shuffled, threshold=0.05, horizon=2)
    assert out.name == "target_event_500bp_h2" and out.index.equals(shuffled.index)
    expected = pd.Series([1.0, 0.0, np.nan, np.nan, 0.0, np.nan, np.nan], index=panel.index)
    np.testing.assert_array_equal(out.sort_index(), expected)  # B's first row never sees A's prices
    ret = tg.panel_target(shuffled, kind="return", horizon=1).sort_index()
    np.testing.assert_allclose(
        ret, [0.04, 106 / 104 - 1, 101 / 106 - 1, np.nan, -0.1, 8 / 9 - 1, np.nan], equal_nan=True
    )
    with pytest.raises(DataError, match="lacks"):
        tg.panel_target(panel, kind="event", horizon=1, threshold=0.05, price_col=CLOSE)


KINDS = [("level", None), ("log_level", None), ("return", None), ("log_return", None), ("event", 0.03)]


@settings(max_examples=60, deadline=None)
@given(
    prices=st.lists(st.floats(0.5, 1000.0), min_size=2, max_size=60),
    other=st.lists(st.floats(0.5, 1000.0), min_size=60, max_size=60),
    horizon=st.integers(1, 6),
    data=st.data(),
)
def test_target_at_t_reads_only_rows_t_to_t_plus_h(prices, other, horizon, data):
    """Replacing every row outside t..t+h with arbitrary values leaves the target at t unchanged."""
    n = len(prices)
    t = data.draw(st.integers(0, n - 1), label="t")
    p = pd.Series(prices)
    keep = (np.arange(n) >= t) & (np.arange(n) <= t + horizon)
    q = p.where(keep, pd.Series(other[:n]))
    for kind, threshold in KINDS:
        a = tg.series_target(p, kind=kind, horizon=horizon, threshold=threshold).iloc[t]
        b = tg.series_target(q, kind=kind, horizon=horizon, threshold=threshold).iloc[t]
        assert (np.isnan(a) and np.isnan(b)) or a == b, (kind, t)
        if kind != "level" and kind != "log_level":
            assert np.isnan(a) == (t + horizon >= n)  # NaN exactly where fewer than h future rows exist
