"""Forecast combination: the mean or median of member models' point forecasts.

Combining is one of the most reliable accuracy gains in forecasting (M4/M5); the median is robust to one member
going astray. No intervals: the members' intervals cannot be combined into a calibrated band without their
joint error distribution (averaging quantiles is only valid for perfectly dependent errors), so the ensemble
declares supports_intervals=False rather than emit a band with an unknown coverage.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError, ModelFitError, NotFittedError
from common.schema import DS, ID, YHAT, Y
from models.base import Forecaster, Intervals, NewRows, fit_model


class Ensemble(Forecaster):
    """Mean or median of member forecasts; members come from the registry (`models.make_model`)."""

    default_name: ClassVar[str] = "ensemble"
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = False
    min_train_size: ClassVar[int] = 2  # members enforce their own minimum and fail with their own reason

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("naive", "ets", "arima"),
        combine: Literal["median", "mean"] = "median",
        member_params: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        if not members:
            raise ConfigError("ensemble: members must name at least one registered model")
        if combine not in ("median", "mean"):
            raise ConfigError(f"ensemble: combine must be 'median' or 'mean', got {combine!r}")
        unknown = sorted(set(member_params or {}) - set(members))
        if unknown:
            raise ConfigError(f"ensemble: member_params for {unknown} which are not members {list(members)}")
        if "ensemble" in members:
            raise ConfigError("ensemble: an ensemble cannot contain itself")
        self.members = members
        self.combine = combine
        self.member_params = member_params

    def needs_horizon(self) -> bool:
        """True when a member needs the horizon at fit: the ensemble passes it on. Each member is asked as built with
        its parameters (its own needs_horizon), since for some the answer depends on them (ts_regression and prophet
        need it only with covariates)."""
        return any(member.needs_horizon() for member in self._build())

    def _build(self) -> list[Forecaster]:
        from models import make_model  # local: models/__init__ imports nothing eagerly, keep it that way

        params = self.member_params or {}
        return [make_model(name, **params.get(name, {})) for name in self.members]

    def _frame(self, y: np.ndarray, X: pd.DataFrame | None, ds: pd.DatetimeIndex) -> pd.DataFrame:
        frame = pd.DataFrame({ID: self.unique_id_, DS: ds, Y: y})
        if X is not None:
            frame = pd.concat([frame, X.reset_index(drop=True)], axis=1)
        return frame

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        fitted = []
        train = self._frame(y, X, self.ds_)
        for name, model in zip(self.members, self._build(), strict=True):
            fitted.append(self._run(name, lambda m=model: self._fit_member(m, train)))
        self.models_ = fitted

    def _fit_member(self, model: Forecaster, train: pd.DataFrame) -> Forecaster:
        horizon = getattr(self, "fit_horizon_", None)
        return fit_model(model, train, horizon, calendar=self.exchange_)  # members forecast on the same dates

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        new = self._frame(y_new, X_new, self.ds_[-len(y_new) :])
        for name, model in zip(self.members, self.models_, strict=True):
            self._run(name, lambda m=model: m.update(new))

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        means = [
            self._run(name, lambda m=model: m.predict(horizon))[YHAT].to_numpy(dtype=float)
            for name, model in zip(self.members, self.models_, strict=True)
        ]
        stacked = np.vstack(means)
        combined = np.median(stacked, axis=0) if self.combine == "median" else np.mean(stacked, axis=0)
        return combined, None

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin at once: each member's own block forecasts (vectorised where the member is), combined."""
        means = [
            self._run(name, lambda m=model: m.forecast_block(new, counts, horizon))[0]
            for name, model in zip(self.members, self.models_, strict=True)
        ]
        self._append_rows(new)  # the members conditioned themselves on the block
        stacked = np.stack(means)
        return (np.median(stacked, axis=0) if self.combine == "median" else np.mean(stacked, axis=0)), None

    def _run(self, member: str, fn):
        """Call a member; its failure becomes this ensemble's ModelFitError naming the member."""
        try:
            return fn()
        except (DataError, NotFittedError):
            raise
        except ModelFitError as exc:
            raise ModelFitError(self.name, self.unique_id_, f"member {member!r} failed: {exc.reason}") from exc
