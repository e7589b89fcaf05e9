"""Seeded synthetic panels, a small feature config and instrumented event models for the event tests."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from backtest.folds import FoldPlan
from common.schema import DS, ID, VOLUME, Y
from features.build import FeatureConfig
from models.classifiers import EventClassifier

# Short windows: about 20 warm-up sessions instead of 120, so small panels leave room for folds.
SMALL_FEATURES = FeatureConfig(
    sma_windows=(5, 20), macd=(5, 10, 4), rsi_window=5, bollinger=(10, 2.0), vol_window=10, volume_window=10
)
TINY_RNN = {"window": 5, "units": 4, "epochs": 2, "batch_size": 32, "patience": 1, "warm_epochs": 1}


def panel(n_series: int = 2, n_steps: int = 320, *, seed: int = 0, vol: float = 0.02) -> pd.DataFrame:
    """A seeded geometric random walk per series on business days, with volume."""
    rng = np.random.default_rng(seed)
    ds = pd.bdate_range("2015-01-05", periods=n_steps)
    frames = [
        pd.DataFrame(
            {
                ID: f"S{k}",
                DS: ds,
                Y: 100 * np.exp(np.cumsum(rng.normal(0.0005, vol, n_steps))),
                VOLUME: rng.integers(1_000, 5_000, n_steps).astype(float),
            }
        )
        for k in range(n_series)
    ]
    return pd.concat(frames, ignore_index=True)


def plan(windows: int = 6, step: int = 5, origins: int = 5) -> FoldPlan:
    return FoldPlan(horizon=origins, step=step, windows=windows, min_train_size=100)


class Spy(EventClassifier):
    """Records what every fit and predict call sees; predicts the training rate (like base_rate)."""

    name: ClassVar[str] = "spy"
    fits: ClassVar[list[tuple[np.ndarray, np.ndarray]]] = []
    predicts: ClassVar[list[tuple[np.ndarray, np.ndarray]]] = []

    def __init__(self, fail_on_fit: tuple[int, ...] = ()):
        self.fail_on_fit = fail_on_fit

    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        Spy.fits.append((X.copy(), y.copy()))
        if len(Spy.fits) in self.fail_on_fit:
            raise ValueError(f"spy fails on fit #{len(Spy.fits)}")
        self.rate_ = float(np.mean(y[rows]))

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        Spy.predicts.append((X.copy(), rows.copy()))
        return np.full(rows.size, self.rate_)


class Coin(EventClassifier):
    """A model that cannot beat the base rate: always 0.5."""

    name: ClassVar[str] = "coin"

    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        pass

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.full(rows.size, 0.5)
