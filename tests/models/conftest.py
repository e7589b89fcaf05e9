"""Seeded synthetic price panels on real XNYS sessions for the statistical model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.schema import DS, ID, Y
from features.calendar import sessions

_START = "2012-01-03"


def session_dates(n: int, start: str = _START) -> pd.DatetimeIndex:
    """The first `n` XNYS sessions from `start` (about 252 a year)."""
    end = pd.Timestamp(start) + pd.Timedelta(days=int(n * 1.6) + 30)
    ds = sessions("XNYS", start, end)
    assert len(ds) >= n, "extend the calendar window"
    return ds[:n]


def series_frame(y: np.ndarray, *, uid: str = "SYN", start: str = _START) -> pd.DataFrame:
    """A one-series long frame with the exogenous columns the ARIMAX default expects."""
    y = np.asarray(y, dtype=float)
    frame = pd.DataFrame({ID: uid, DS: session_dates(len(y), start), Y: y})
    logret = np.log(np.abs(frame[Y]) + 1e-9).diff().fillna(0.0)
    frame["logret_1"] = logret
    frame["vol_20"] = logret.rolling(20, min_periods=2).std().fillna(0.0)
    return frame


def synthetic_prices(
    n_series: int = 1,
    n_steps: int = 300,
    *,
    seed: int = 0,
    drift: float = 0.0003,
    vol: float = 0.012,
    start: float = 100.0,
) -> pd.DataFrame:
    """Geometric random walks (long frame unique_id, ds, y, logret_1, vol_20), one seed for the whole panel."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        y = start * np.exp(np.cumsum(rng.normal(drift, vol, n_steps)))
        frames.append(series_frame(y, uid=f"S{i:02d}"))
    return pd.concat(frames, ignore_index=True)


def ar1(n: int, *, phi: float, mean: float = 50.0, sd: float = 1.0, seed: int = 0) -> np.ndarray:
    """A stationary Gaussian AR(1) started from its stationary distribution."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sd, n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1.0 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return mean + x


@pytest.fixture
def prices() -> pd.DataFrame:
    """One seeded 300-session geometric random walk named SYN."""
    frame = synthetic_prices(1, 300, seed=7)
    frame[ID] = "SYN"
    return frame
