"""Small seeded panels and instrumented test models for the backtest tests."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from common.schema import DS, ID, Y
from features.calendar import sessions
from models.base import Forecaster


def panel(n_series: int = 2, n_steps: int = 60, *, seed: int = 0, start: str = "2021-01-04") -> pd.DataFrame:
    """A seeded geometric random-walk panel on real XNYS sessions (so model dates match the data's)."""
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", start, pd.Timestamp(start) + pd.Timedelta(days=2 * n_steps + 30))[:n_steps]
    frames = [
        pd.DataFrame({ID: f"S{k}", DS: ds, Y: 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, n_steps)))})
        for k in range(n_series)
    ]
    return pd.concat(frames, ignore_index=True)


class LastValue(Forecaster):
    """Random walk without intervals; counts fit and predict_origins calls in class-level lists."""

    name: ClassVar[str] = "last"
    min_train_size: ClassVar[int] = 1
    fits: ClassVar[list[int]] = []
    origin_calls: ClassVar[list[int]] = []

    def __init__(self, fail_fit_len: tuple[int, ...] = (), fail_predict_len: tuple[int, ...] = ()):
        self.fail_fit_len = fail_fit_len
        self.fail_predict_len = fail_predict_len

    def fit(self, train: pd.DataFrame):
        if len(train) in self.fail_fit_len:  # a raw exception, not via the base class: the engine must wrap it
            raise ValueError(f"boom at {len(train)} rows")
        type(self).fits.append(len(train))
        return super().fit(train)

    def predict_origins(self, history, cutoffs, horizon):
        type(self).origin_calls.append(len(cutoffs))
        return super().predict_origins(history, cutoffs, horizon)

    def _fit(self, y, X) -> None:
        pass

    def _predict(self, horizon):
        if len(self.y_) in self.fail_predict_len:
            raise FloatingPointError(f"cannot forecast after {len(self.y_)} rows")
        return np.full(horizon, self.y_[-1]), None

    @classmethod
    def reset(cls) -> None:
        cls.fits.clear()
        cls.origin_calls.clear()


class Trend(Forecaster):
    """Mean one-step change extrapolated, with fixed-width intervals: a second, different model."""

    name: ClassVar[str] = "trend"
    supports_intervals: ClassVar[bool] = True

    def _fit(self, y, X) -> None:
        self.slope_ = float(np.mean(np.diff(y)))

    def _predict(self, horizon):
        mean = self.y_[-1] + self.slope_ * np.arange(1, horizon + 1)
        return mean, {80: (mean - 1.0, mean + 1.0), 95: (mean - 2.0, mean + 2.0)}


TEST_MODELS = {"last": LastValue, "trend": Trend}


def factory(name: str, **params):
    """Model factory for run_backtest/run_unit over the test models."""
    return TEST_MODELS[name](**params)
