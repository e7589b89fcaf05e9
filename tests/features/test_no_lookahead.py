"""No look-ahead, proven by property: appending future rows never changes any feature on earlier rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.schema import ADJ_CLOSE, CLOSE, DS, HIGH, ID, LOW, OPEN, PANEL_COLUMNS, VOLUME, Y
from features.build import FeatureConfig, build_features, build_features_for

prices = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
volumes = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e9, allow_nan=False))


def _bars(uid: str, ds: pd.DatetimeIndex, price: list[float], volume: list[float]) -> pd.DataFrame:
    p = np.asarray(price, dtype=float)
    cols = {ID: uid, DS: ds, OPEN: p, HIGH: p, LOW: p, CLOSE: p, ADJ_CLOSE: p, VOLUME: volume, Y: p}
    return pd.DataFrame(cols)[list(PANEL_COLUMNS)]


@st.composite
def prefix_and_future(draw):
    """A series (optionally plus a second ticker) and arbitrary future rows for both, after the prefix's end."""
    n = draw(st.integers(1, 160))
    m = draw(st.integers(1, 60))
    price = draw(st.lists(prices, min_size=n + m, max_size=n + m))
    volume = draw(st.lists(volumes, min_size=n + m, max_size=n + m))
    ds = pd.bdate_range("2020-01-01", periods=n + m)
    full = [_bars("A", ds, price, volume)]
    if draw(st.booleans()):  # another ticker whose rows interleave with A's and arrive in the future as well
        k = draw(st.integers(1, n + m))
        other = draw(st.lists(prices, min_size=k, max_size=k))
        full.append(_bars("B", ds[:k], other, [1.0] * k))
    frame = pd.concat(full, ignore_index=True)
    cutoff = ds[n - 1]
    if draw(st.booleans()):
        frame = frame.sort_values([DS, ID], kind="stable", ignore_index=True)
    return frame, cutoff


def _assert_prefix_identical(frame: pd.DataFrame, cutoff: pd.Timestamp, config: FeatureConfig) -> None:
    prefix = frame[frame[DS] <= cutoff]
    short = build_features_for(prefix, config)
    long = build_features_for(frame, config).loc[prefix.index]
    cols = config.feature_columns()
    np.testing.assert_allclose(
        short[cols].to_numpy(dtype=float), long[cols].to_numpy(dtype=float), rtol=1e-9, atol=0.0, equal_nan=True
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=prefix_and_future())
def test_features_on_prefix_rows_ignore_future_rows(data):
    frame, cutoff = data
    _assert_prefix_identical(frame, cutoff, FeatureConfig())


@settings(max_examples=20, deadline=None)
@given(data=prefix_and_future(), sma=st.integers(2, 30), span=st.integers(2, 30), rsi=st.integers(2, 30))
def test_no_lookahead_for_other_windows(data, sma, span, rsi):
    frame, cutoff = data
    config = FeatureConfig(sma_windows=(sma,), ema_spans=(span,), rsi_window=rsi, macd=(3, 7, 4), bollinger=(5, 1.5))
    _assert_prefix_identical(frame, cutoff, config)


def test_changing_only_the_future_changes_nothing_before_it():
    """Deterministic companion: a crash or a rally after the cutoff leaves every earlier feature untouched."""
    rng = np.random.default_rng(0)
    n = 300
    base = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    ds = pd.bdate_range("2022-01-03", periods=n)
    vol = rng.integers(1, 100, n).astype(float)
    a = build_features(_bars("A", ds, list(base), list(vol)))
    shocked = base.copy()
    shocked[200:] *= 0.5
    b = build_features(_bars("A", ds, list(shocked), list(vol * 10)))
    cols = FeatureConfig().feature_columns()
    pd.testing.assert_frame_equal(a[cols].iloc[:200], b[cols].iloc[:200])
    assert not np.allclose(a["sma_5"].iloc[200:], b["sma_5"].iloc[200:])
