"""Benchmark forecasters from fpp3 ch. 5: naive, seasonal naive, drift and moving average.

These have no estimated parameters beyond a residual scale, so `update` is the same as a refit on the extended
history. It is done in O(new rows) by keeping running sums of squared one-step residuals (the only statistic
the intervals need), so a backtest that updates every session never rescans the history.

Residual scale follows fpp3 5.5: sigma^2 = sum(e_t^2) / (T - K - M) with K estimated parameters and M missing
residuals, i.e. the mean square over the residuals that exist (minus one for drift's slope).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from common.errors import ConfigError
from models._stats import MinTrainSize, normal_intervals
from models.base import Forecaster, Intervals, NewRows
from models.search_space import Int, SearchSpace


def _check_positive_int(model: str, arg: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ConfigError(f"{model}: {arg} must be a positive integer, got {value!r}")


class Naive(Forecaster):
    """Random walk: every future value equals the last observation; intervals y_T ± z·sigma·sqrt(h)."""

    default_name: ClassVar[str] = "naive"
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 2

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        d = np.diff(y)
        self.sse_ = float(np.sum(d * d))
        self.n_resid_ = int(d.size)

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        # y_ already holds the new rows (base appended them); prepend the previous last value for the diffs.
        d = np.diff(self.y_[-(len(y_new) + 1) :])
        self.sse_ += float(np.sum(d * d))
        self.n_resid_ += int(d.size)

    @property
    def sigma_(self) -> float:
        return float(np.sqrt(self.sse_ / self.n_resid_))

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        steps = np.arange(1, horizon + 1)
        mean = np.full(horizon, self.y_[-1])
        return mean, normal_intervals(mean, self.sigma_ * np.sqrt(steps))

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin at once: its last value, and the running sum of squared changes up to it."""
        y = np.concatenate([self.y_[-1:], new.y])  # y[c] is the last value an origin with c new rows has seen
        d = np.diff(y)
        sse = self.sse_ + np.concatenate([[0.0], np.cumsum(d * d)])[counts]
        sigma = np.sqrt(sse / (self.n_resid_ + counts))
        mean = np.repeat(y[counts][:, None], horizon, axis=1)
        self._condition(new)
        return mean, normal_intervals(mean, sigma[:, None] * np.sqrt(np.arange(1, horizon + 1)))


class SeasonalNaive(Forecaster):
    """The value one season ago: yhat_{T+h} = y_{T+h-m(k+1)}, k = floor((h-1)/m); fpp3 5.5 intervals."""

    default_name: ClassVar[str] = "seasonal_naive"
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size = MinTrainSize(6, lambda self: self.season_length + 1)  # one season plus one residual

    def __init__(self, *, season_length: int = 5) -> None:
        _check_positive_int("seasonal_naive", "season_length", season_length)
        self.season_length = season_length

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        m = self.season_length
        e = y[m:] - y[:-m]
        self.sse_ = float(np.sum(e * e))
        self.n_resid_ = int(e.size)

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        m = self.season_length
        tail = self.y_[-(len(y_new) + m) :]
        e = tail[m:] - tail[:-m]
        self.sse_ += float(np.sum(e * e))
        self.n_resid_ += int(e.size)

    @property
    def sigma_(self) -> float:
        return float(np.sqrt(self.sse_ / self.n_resid_))

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        m = self.season_length
        last_season = self.y_[-m:]
        mean = np.resize(last_season, horizon)  # cycles the last m values: index (h-1) mod m
        k = np.floor(np.arange(horizon) / m)  # floor((h-1)/m) for h = 1..horizon
        return mean, normal_intervals(mean, self.sigma_ * np.sqrt(k + 1))


class Drift(Forecaster):
    """Random walk with drift: the line through the first and last observation, extended h steps.

    Intervals: sigma·sqrt(h(1 + h/T)) (fpp3 table 5.2) with T counted as the number of one-step changes the
    slope is averaged over (n - 1). That is the exact forecast variance under the model (Var(slope) =
    sigma^2/(n-1)) and the same choice statsforecast's RandomWalkWithDrift makes. sigma divides by n - 2
    (n - 1 residuals, one estimated parameter) as fpp3 prescribes.
    """

    default_name: ClassVar[str] = "drift"
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 3

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        d = np.diff(y)
        # Sufficient statistics: residuals are d_t - slope, so sum(e^2) = sum(d^2) - n_d·slope^2.
        self.sum_d2_ = float(np.sum(d * d))
        self.n_diff_ = int(d.size)

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        d = np.diff(self.y_[-(len(y_new) + 1) :])
        self.sum_d2_ += float(np.sum(d * d))
        self.n_diff_ += int(d.size)

    @property
    def slope_(self) -> float:
        return float((self.y_[-1] - self.y_[0]) / self.n_diff_)

    @property
    def sigma_(self) -> float:
        sse = max(self.sum_d2_ - self.n_diff_ * self.slope_**2, 0.0)  # clip rounding below zero on exact lines
        return float(np.sqrt(sse / (self.n_diff_ - 1)))

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        steps = np.arange(1, horizon + 1, dtype=float)
        mean = self.y_[-1] + self.slope_ * steps
        sd = self.sigma_ * np.sqrt(steps * (1.0 + steps / self.n_diff_))
        return mean, normal_intervals(mean, sd)


class MovingAverage(Forecaster):
    """Mean of the last `window` sessions, flat over the horizon.

    Intervals use the residual std of the window mean as a one-step forecaster (e_t = y_t - mean of the k values
    before t) and are held CONSTANT across h: a moving average has no generative model that would say how the
    error grows, and a flat band is the honest statement of what the residuals show. Use naive/drift/ets when a
    widening band matters.
    """

    default_name: ClassVar[str] = "moving_average"
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size = MinTrainSize(21, lambda self: self.window + 1)  # one window plus one residual
    # Two sessions to three months, on a log scale: the short windows a noisy price needs are as likely as long.
    search_space: ClassVar[SearchSpace] = {"window": Int(2, 60, log=True)}

    def __init__(self, *, window: int = 20) -> None:
        _check_positive_int("moving_average", "window", window)
        self.window = window

    def _residuals(self, y: np.ndarray) -> np.ndarray:
        """One-step residuals y_t - mean(y_{t-k..t-1}) for every t with k predecessors in `y`."""
        k = self.window
        c = np.concatenate([[0.0], np.cumsum(y)])
        means = (c[k:-1] - c[: -k - 1]) / k  # mean of y[t-k:t] for t = k..len(y)-1
        return y[k:] - means

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        e = self._residuals(y)
        self.sse_ = float(np.sum(e * e))
        self.n_resid_ = int(e.size)

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        e = self._residuals(self.y_[-(len(y_new) + self.window) :])
        self.sse_ += float(np.sum(e * e))
        self.n_resid_ += int(e.size)

    @property
    def sigma_(self) -> float:
        return float(np.sqrt(self.sse_ / self.n_resid_))

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        mean = np.full(horizon, float(np.mean(self.y_[-self.window :])))
        return mean, normal_intervals(mean, np.full(horizon, self.sigma_))

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin at once: the mean of its last `window` values, the running residual sum of squares."""
        k = self.window
        y = np.concatenate([self.y_[-k:], new.y])  # an origin with c new rows ends at y[k - 1 + c]
        e = self._residuals(y)  # e[i] is the residual of the new row i
        sse = self.sse_ + np.concatenate([[0.0], np.cumsum(e * e)])[counts]
        sigma = np.sqrt(sse / (self.n_resid_ + counts))
        windows = np.lib.stride_tricks.sliding_window_view(y, k)[counts]  # rows: each origin's last k values
        mean = np.repeat(windows.mean(axis=1)[:, None], horizon, axis=1)
        self._condition(new)
        return mean, normal_intervals(mean, np.repeat(sigma[:, None], horizon, axis=1))
