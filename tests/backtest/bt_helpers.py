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


class PanelDrift(Forecaster):
    """A global model (`global_model = True`) the engine tests can see through: ONE drift, the mean daily log
    return over every series' training rows, applied to each series from its own last value at each origin.

    Records each panel fit's last training session per series (`fitted_until`), so a test can check the cut.
    `broken` names a series the model returns a DataError for (a per-series problem, as a real model would).
    """

    name: ClassVar[str] = "panel_drift"
    global_model: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 2
    fitted_until: ClassVar[list[dict[str, pd.Timestamp]]] = []

    def __init__(self, broken: str | None = None) -> None:
        self.broken = broken

    def fit_panel(self, train: pd.DataFrame, *, horizon: int, calendars=None):
        from common.errors import DataError

        if train.empty:
            raise DataError("panel_drift: no training rows")
        groups = dict(tuple(train.sort_values([ID, DS]).groupby(ID)))
        type(self).fitted_until.append({str(uid): g[DS].max() for uid, g in groups.items()})
        self.drift_ = float(np.mean(np.concatenate([np.diff(np.log(g[Y].to_numpy())) for g in groups.values()])))
        self.horizon_ = horizon
        return self

    def predict_panel_origins(self, history: pd.DataFrame, cutoffs, horizon: int):
        from common.errors import DataError
        from features.calendar import sessions_after_each
        from models.base import OriginForecasts

        out: dict = {}
        for uid, cuts in cutoffs.items():
            if uid == self.broken:
                out[uid] = DataError(f"panel_drift on {uid}: broken on purpose")
                continue
            rows = history[history[ID] == uid]
            cuts = pd.DatetimeIndex(cuts)
            base = rows[Y].to_numpy()[pd.DatetimeIndex(rows[DS]).get_indexer(cuts)]
            mean = base[:, None] * np.exp(self.drift_ * np.arange(1, horizon + 1))[None, :]
            out[uid] = OriginForecasts(uid, cuts, sessions_after_each("XNYS", cuts, horizon), mean, None)
        return out

    def _fit(self, y, X) -> None:  # one series: the degenerate panel
        self.drift_ = float(np.mean(np.diff(np.log(y))))

    def _predict(self, horizon: int):
        return self.y_[-1] * np.exp(self.drift_ * np.arange(1, horizon + 1)), None


def register_panel_drift(monkeypatch) -> None:
    """Register PanelDrift as `panel_drift` for one test (the engine reads the global_model tag from the registry)."""
    import models

    spec = models.ModelSpec("tests.backtest.bt_helpers:PanelDrift", "one drift across every series (tests only)")
    monkeypatch.setitem(models.REGISTRY, "panel_drift", spec)
    PanelDrift.fitted_until.clear()
