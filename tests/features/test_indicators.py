"""Indicators on one series: hand-computed values, independent cross-checks, guards and names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError
from features import indicators as ind


def _random_walk(n: int = 300, *, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))))


def test_simple_and_log_returns():
    p = pd.Series([100.0, 110.0, 99.0])
    np.testing.assert_allclose(ind.simple_return(p), [np.nan, 0.1, -0.1], equal_nan=True)
    np.testing.assert_allclose(ind.log_return(p), [np.nan, np.log(1.1), np.log(0.9)], equal_nan=True)
    assert ind.simple_return(p).name == ind.RET_1 and ind.log_return(p).name == ind.LOGRET_1


def test_sma_on_a_ramp():
    p = pd.Series(np.arange(1.0, 11.0))  # 1..10
    out = ind.sma(p, window=3)
    np.testing.assert_allclose(out, [np.nan, np.nan, 2, 3, 4, 5, 6, 7, 8, 9], equal_nan=True)
    # For a ramp t + c, the w-window mean lags the price by (w - 1) / 2.
    ramp = pd.Series(np.arange(200.0))
    for w in ind.SMA_WINDOWS:
        s = ind.sma(ramp, window=w)
        assert s.iloc[: w - 1].isna().all() and s.name == f"sma_{w}"
        np.testing.assert_allclose(s.iloc[w - 1 :], ramp.iloc[w - 1 :] - (w - 1) / 2)


def test_ema_matches_recursion_and_masks_warmup():
    p = _random_walk(80)
    span = 10
    a = 2.0 / (span + 1)
    expected = np.empty(len(p))
    expected[0] = p.iloc[0]
    for t in range(1, len(p)):
        expected[t] = a * p.iloc[t] + (1 - a) * expected[t - 1]
    out = ind.ema(p, span=span)
    assert out.iloc[: span - 1].isna().all()
    np.testing.assert_allclose(out.iloc[span - 1 :], expected[span - 1 :], rtol=1e-12)


def test_macd_hist_is_line_minus_signal_and_matches_pandas_ewm():
    p = _random_walk(200, seed=3)
    out = ind.macd(p)
    assert list(out.columns) == [ind.MACD, ind.MACD_SIGNAL, ind.MACD_HIST]
    np.testing.assert_allclose(out[ind.MACD_HIST], out[ind.MACD] - out[ind.MACD_SIGNAL], equal_nan=True)
    # Independent computation straight from pandas' ewm.
    line = p.ewm(span=12, adjust=False).mean() - p.ewm(span=26, adjust=False).mean()
    signal = line.ewm(span=9, adjust=False).mean()
    assert out[ind.MACD].iloc[:25].isna().all() and out[ind.MACD_SIGNAL].iloc[:33].isna().all()
    np.testing.assert_allclose(out[ind.MACD].iloc[25:], line.iloc[25:], rtol=1e-12)
    np.testing.assert_allclose(out[ind.MACD_SIGNAL].iloc[33:], signal.iloc[33:], rtol=1e-12)


def test_macd_rejects_fast_not_below_slow():
    with pytest.raises(ConfigError, match="fast"):
        ind.macd(_random_walk(50), fast=26, slow=12)


def _wilder_rsi_loop(p: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(p), np.nan)
    d = np.diff(p)
    gains, losses = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    ag, al = gains[:n].mean(), losses[:n].mean()
    out[n] = 100.0 - 100.0 / (1.0 + ag / al)
    for t in range(n + 1, len(p)):
        ag = (ag * (n - 1) + gains[t - 1]) / n
        al = (al * (n - 1) + losses[t - 1]) / n
        out[t] = 100.0 - 100.0 / (1.0 + ag / al)
    return out


def test_rsi_matches_a_direct_wilder_loop():
    p = _random_walk(250, seed=7)
    out = ind.rsi(p, window=14)
    assert out.iloc[:14].isna().all() and out.name == "rsi_14"
    np.testing.assert_allclose(out, _wilder_rsi_loop(p.to_numpy(), 14), rtol=1e-10, equal_nan=True)


def test_rsi_extremes():
    rising = pd.Series(np.arange(1.0, 41.0))
    np.testing.assert_allclose(ind.rsi(rising).iloc[14:], 100.0)
    np.testing.assert_allclose(ind.rsi(rising[::-1].reset_index(drop=True)).iloc[14:], 0.0)
    np.testing.assert_allclose(ind.rsi(pd.Series(np.full(30, 5.0))).iloc[14:], 50.0)  # flat: neutral, not NaN
    out = ind.rsi(_random_walk(300, seed=1))
    assert ((out.dropna() >= 0) & (out.dropna() <= 100)).all()


def test_bollinger_hand_computed():
    # window 2, k 1: prices 1, 3 -> mid 2, population std 1, bands 1..3, price sits on the upper band.
    out = ind.bollinger(pd.Series([1.0, 3.0]), window=2, k=1.0)
    np.testing.assert_allclose(out.iloc[1], [2.0, 3.0, 1.0, 1.0])
    assert out.iloc[0].isna().all()


def test_bollinger_pctb_bounds_and_flat_window():
    w, k = ind.BOLLINGER
    out = ind.bollinger(_random_walk(500, seed=5), window=w, k=k)
    pctb = out[ind.BB_PCTB].dropna()
    half = np.sqrt(w - 1) / (2 * k)  # |p - mid| <= sigma * sqrt(w - 1) with the population std
    assert len(pctb) == 500 - w + 1
    assert pctb.between(0.5 - half - 1e-9, 0.5 + half + 1e-9).all()
    assert (out[ind.BB_UPPER].dropna() >= out[ind.BB_MID].dropna()).all()
    flat = ind.bollinger(pd.Series(np.full(25, 7.0)))
    assert flat[ind.BB_PCTB].isna().all()
    np.testing.assert_allclose(flat[ind.BB_UPPER].iloc[19:], 7.0)
    np.testing.assert_allclose(flat[ind.BB_LOWER].iloc[19:], 7.0)


def test_volatility_annualised_std_of_log_returns():
    p = _random_walk(100, seed=2)
    out = ind.volatility(p, window=20)
    logret = np.diff(np.log(p.to_numpy()))
    assert out.iloc[:20].isna().all() and out.name == "vol_20"
    np.testing.assert_allclose(out.iloc[20], np.std(logret[:20], ddof=1) * np.sqrt(252), rtol=1e-10)
    raw = ind.volatility(p, window=20, annualisation=None)
    np.testing.assert_allclose(out.dropna(), raw.dropna() * np.sqrt(252))
    steady = pd.Series(100.0 * 1.01 ** np.arange(40))  # constant log return -> zero volatility
    np.testing.assert_allclose(ind.volatility(steady).dropna(), 0.0, atol=1e-12)


def test_volume_zscore_values_and_zero_std_guard():
    np.testing.assert_allclose(ind.volume_zscore(pd.Series([1.0, 2.0, 3.0]), window=3), [np.nan, np.nan, 1.0])
    for const in (0.0, 1e6):
        out = ind.volume_zscore(pd.Series(np.full(30, const)))
        assert out.isna().all() and not np.isinf(out).any()
    # A flat stretch after varied volume: NaN there too, never inf.
    v = pd.Series(np.r_[np.arange(1.0, 31.0) * 1000, np.full(25, 123.0)])
    out = ind.volume_zscore(v)
    assert out.iloc[-5:].isna().all() and np.isfinite(out.iloc[19:30]).all()


def test_index_is_preserved():
    ds = pd.bdate_range("2024-01-01", periods=30, name="ds")
    p = pd.Series(np.linspace(10, 20, 30), index=ds)
    for out in (ind.sma(p, window=5), ind.rsi(p), ind.macd(p), ind.bollinger(p), ind.volatility(p)):
        assert out.index.equals(ds)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_windows_raise_config_error(bad):
    with pytest.raises(ConfigError):
        ind.sma(pd.Series([1.0, 2.0]), window=bad)


def test_feature_names():
    assert list(ind.FEATURE_COLUMNS) == ind.feature_names()
    for name in ("ret_1", "logret_1", "sma_5", "sma_120", "macd", "macd_signal", "macd_hist", "rsi_14"):
        assert name in ind.FEATURE_COLUMNS
    for name in ("bb_mid", "bb_upper", "bb_lower", "bb_pctb", "vol_20", "volume_z_20"):
        assert name in ind.FEATURE_COLUMNS
    names = ind.feature_names(
        returns=False, sma_windows=(10,), ema_spans=(8,), macd_params=None, bollinger_params=None, volume_window=None
    )
    assert names == ["sma_10", "ema_8", "rsi_14", "vol_20"]
