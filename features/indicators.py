"""Technical indicators on ONE price (or volume) series: pure, vectorised, causal.

Every value at row t uses rows <= t only (rolling windows, returns over past rows, recursive EMAs with
adjust=False), so appending future rows never changes past values; tests/features/test_no_lookahead.py proves it.
Warm-up rows (too few observations for the window) are NaN and are never back-filled. Series may be indexed
by position or by ds; windows count rows (sessions), not calendar days, and the index is preserved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from common.errors import ConfigError

log = logging.getLogger(__name__)

# ---- column names -----------------------------------------------------------------------------------
RET_1 = "ret_1"
LOGRET_1 = "logret_1"
SMA = "sma_{window}"
EMA = "ema_{span}"
MACD = "macd"
MACD_SIGNAL = "macd_signal"
MACD_HIST = "macd_hist"
RSI = "rsi_{window}"
BB_MID = "bb_mid"
BB_UPPER = "bb_upper"
BB_LOWER = "bb_lower"
BB_PCTB = "bb_pctb"
VOL = "vol_{window}"
VOLUME_Z = "volume_z_{window}"

# ---- defaults ---------------------------------------------------------------------------------------
SMA_WINDOWS: tuple[int, ...] = (5, 20, 60, 120)
EMA_SPANS: tuple[int, ...] = ()
MACD_PARAMS: tuple[int, int, int] = (12, 26, 9)  # fast span, slow span, signal span
RSI_WINDOW = 14
BOLLINGER: tuple[int, float] = (20, 2.0)  # window, number of standard deviations
VOL_WINDOW = 20
TRADING_DAYS = 252.0
VOLUME_WINDOW = 20

# Relative size below which a rolling std counts as zero (float residue of an exactly constant window).
_ZERO_STD_RTOL = 1e-12


def _check_window(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_float(series: pd.Series) -> pd.Series:
    return pd.Series(np.asarray(series, dtype=float), index=series.index, name=series.name)


def _warm(values: pd.Series, series: pd.Series, need: int) -> pd.Series:
    """NaN wherever fewer than `need` valid observations of `series` have been seen so far."""
    return values.where(series.notna().cumsum() >= need)


# ---- returns ----------------------------------------------------------------------------------------
def simple_return(price: pd.Series, *, periods: int = 1) -> pd.Series:
    """Simple return r_t = p_t / p_{t-k} - 1; the first k rows are NaN."""
    k = _check_window("periods", periods)
    p = _as_float(price)
    return (p / p.shift(k) - 1.0).rename(RET_1 if k == 1 else f"ret_{k}")


def log_return(price: pd.Series, *, periods: int = 1) -> pd.Series:
    """Log return l_t = ln(p_t / p_{t-k}); the first k rows are NaN (non-positive prices give NaN)."""
    k = _check_window("periods", periods)
    p = _as_float(price)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(p / p.shift(k))
    return out.rename(LOGRET_1 if k == 1 else f"logret_{k}")


# ---- moving averages --------------------------------------------------------------------------------
def sma(price: pd.Series, *, window: int) -> pd.Series:
    """Simple moving average SMA_t = mean(p_{t-w+1..t}); NaN until w observations."""
    w = _check_window("window", window)
    return _as_float(price).rolling(w, min_periods=w).mean().rename(SMA.format(window=w))


def _ewm(series: pd.Series, span: int) -> pd.Series:
    """Recursive EMA e_t = a*x_t + (1-a)*e_{t-1}, a = 2/(span+1), seeded at the first value (adjust=False)."""
    return series.ewm(span=span, adjust=False).mean()


def ema(price: pd.Series, *, span: int) -> pd.Series:
    """Exponential moving average with a = 2/(span+1), adjust=False (prefix-stable); NaN for the first span-1 rows.

    The recursion is seeded at the first price; the first span-1 values lean on that seed and are masked.
    """
    s = _check_window("span", span)
    p = _as_float(price)
    return _warm(_ewm(p, s), p, s).rename(EMA.format(span=s))


def macd(price: pd.Series, *, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD: line = EMA_fast(p) - EMA_slow(p), signal = EMA_signal(line), hist = line - signal.

    All EMAs use adjust=False and run from the first row (the usual convention); the line is NaN for the first
    slow-1 rows and signal/hist for the first slow+signal-2 rows.
    """
    fast = _check_window("fast", fast)
    slow = _check_window("slow", slow)
    signal = _check_window("signal", signal)
    if fast >= slow:
        raise ConfigError(f"MACD fast span must be shorter than slow span, got fast={fast}, slow={slow}")
    p = _as_float(price)
    line = _ewm(p, fast) - _ewm(p, slow)
    sig = _ewm(line, signal)
    hist = line - sig
    return pd.DataFrame(
        {
            MACD: _warm(line, p, slow),
            MACD_SIGNAL: _warm(sig, p, slow + signal - 1),
            MACD_HIST: _warm(hist, p, slow + signal - 1),
        },
        index=price.index,
    )


# ---- oscillators and bands --------------------------------------------------------------------------
def rsi(price: pd.Series, *, window: int = 14) -> pd.Series:
    """Relative strength index with Wilder smoothing: RSI = 100 * G / (G + L).

    d_t = p_t - p_{t-1}; gains g = max(d, 0), losses l = max(-d, 0). G and L start as the simple mean of the first
    n gains/losses (at row n) and then follow Wilder's recursion G_t = (G_{t-1} * (n-1) + g_t) / n. Equivalent to
    100 - 100 / (1 + G/L): 100 when L = 0 < G, 0 when G = 0 < L, and 50 on a flat window (G = L = 0).
    NaN for the first n rows.
    """
    n = _check_window("window", window)
    p = _as_float(price)
    delta = p.diff().to_numpy()
    seen = np.cumsum(~np.isnan(delta))  # valid price changes so far
    gain = pd.Series(np.fmax(delta, 0.0), index=p.index)  # fmax keeps NaN where delta is NaN
    loss = pd.Series(np.fmax(-delta, 0.0), index=p.index)
    avgs = []
    for part in (gain, loss):
        seed = part.rolling(n, min_periods=n).mean().to_numpy()
        # Feed the recursion the seed at the n-th change and raw values after it; NaN before is skipped by ewm.
        fed = np.where(seen > n, part.to_numpy(), np.where(seen == n, seed, np.nan))
        smooth = pd.Series(fed, index=p.index).ewm(alpha=1.0 / n, adjust=False).mean().to_numpy()
        avgs.append(np.where(seen >= n, smooth, np.nan))
    avg_gain, avg_loss = avgs
    total = avg_gain + avg_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(total == 0.0, 50.0, 100.0 * avg_gain / total)
    out = pd.Series(values, index=p.index)
    return out.rename(RSI.format(window=n))


def bollinger(price: pd.Series, *, window: int = 20, k: float = 2.0) -> pd.DataFrame:
    """Bollinger bands: mid = SMA_w, upper/lower = mid +/- k * sigma_w, %b = (p - lower) / (upper - lower).

    sigma_w is the population std (ddof=0), as in Bollinger's definition. On a flat window the bands collapse onto
    the mid and %b is NaN. With ddof=0, |p - mid| <= sigma * sqrt(w - 1), so %b lies in 0.5 +/- sqrt(w-1) / (2k).
    """
    w = _check_window("window", window, minimum=2)
    if not k > 0:
        raise ConfigError(f"Bollinger k must be > 0, got {k!r}")
    p = _as_float(price)
    roll = p.rolling(w, min_periods=w)
    mid = roll.mean()
    sd = roll.std(ddof=0)
    flat = sd <= _ZERO_STD_RTOL * mid.abs()
    sd = sd.mask(flat, 0.0)  # a flat window's bands collapse onto the mid
    upper = mid + k * sd
    lower = mid - k * sd
    pctb = ((p - lower) / (upper - lower)).mask(flat)
    return pd.DataFrame({BB_MID: mid, BB_UPPER: upper, BB_LOWER: lower, BB_PCTB: pctb}, index=price.index)


def volatility(price: pd.Series, *, window: int = 20, annualisation: float | None = TRADING_DAYS) -> pd.Series:
    """Rolling volatility: sample std (ddof=1) of the last w log returns, times sqrt(annualisation) if given.

    NaN until w returns exist (row w). Pass annualisation=None for the per-session std.
    """
    w = _check_window("window", window, minimum=2)
    r = log_return(price)
    out = r.rolling(w, min_periods=w).std(ddof=1)
    if annualisation is not None:
        if not annualisation > 0:
            raise ConfigError(f"annualisation must be > 0 sessions per year, got {annualisation!r}")
        out = out * np.sqrt(float(annualisation))
    return out.rename(VOL.format(window=w))


def volume_zscore(volume: pd.Series, *, window: int = 20) -> pd.Series:
    """Volume z-score z_t = (v_t - mean(v_{t-w+1..t})) / std(v_{t-w+1..t}) (ddof=1, window includes t).

    NaN (never inf) where the window's std is zero, e.g. indices or FX quoted with volume 0.
    """
    w = _check_window("window", window, minimum=2)
    v = _as_float(volume)
    roll = v.rolling(w, min_periods=w)
    mean = roll.mean()
    sd = roll.std(ddof=1)
    sd = sd.mask(sd <= _ZERO_STD_RTOL * np.maximum(mean.abs(), 1.0))
    return ((v - mean) / sd).rename(VOLUME_Z.format(window=w))


# ---- names ------------------------------------------------------------------------------------------
def feature_names(
    *,
    returns: bool = True,
    sma_windows: Sequence[int] = SMA_WINDOWS,
    ema_spans: Sequence[int] = EMA_SPANS,
    macd_params: tuple[int, int, int] | None = MACD_PARAMS,
    rsi_window: int | None = RSI_WINDOW,
    bollinger_params: tuple[int, float] | None = BOLLINGER,
    vol_window: int | None = VOL_WINDOW,
    volume_window: int | None = VOLUME_WINDOW,
) -> list[str]:
    """Indicator column names, in output order, for a configuration (None or empty disables a family)."""
    names: list[str] = [RET_1, LOGRET_1] if returns else []
    names += [SMA.format(window=w) for w in sma_windows]
    names += [EMA.format(span=s) for s in ema_spans]
    if macd_params is not None:
        names += [MACD, MACD_SIGNAL, MACD_HIST]
    if rsi_window is not None:
        names.append(RSI.format(window=rsi_window))
    if bollinger_params is not None:
        names += [BB_MID, BB_UPPER, BB_LOWER, BB_PCTB]
    if vol_window is not None:
        names.append(VOL.format(window=vol_window))
    if volume_window is not None:
        names.append(VOLUME_Z.format(window=volume_window))
    return names


FEATURE_COLUMNS: tuple[str, ...] = tuple(feature_names())
