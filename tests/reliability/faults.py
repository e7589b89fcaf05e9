"""Fault-injecting models for the reliability tests: each misbehaves on one series only (FAULTY) and acts
like the naive random walk on every other, so a test can check that only that unit is recorded as failed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

import numpy as np
import pandas as pd

from models.base import Forecaster, OriginForecasts

FAULTY = "IBM"


class _NaiveElsewhere(Forecaster):
    """Naive on healthy series; subclasses define `_fault` for FAULTY."""

    name: ClassVar[str] = "fault"

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        if self.unique_id_ == FAULTY:
            self._fault()

    def _fault(self) -> None:
        return None

    def _predict(self, horizon: int):
        return np.full(horizon, self.y_[-1]), None


class Raises(_NaiveElsewhere):
    name: ClassVar[str] = "raises"

    def _fault(self) -> None:
        raise RuntimeError("injected failure: the optimiser blew up")


class Hangs(_NaiveElsewhere):
    """Never returns on FAULTY (an interruptible loop, like a stuck Python optimiser)."""

    name: ClassVar[str] = "hangs"

    def _fault(self) -> None:
        while True:
            time.sleep(0.05)


class ReturnsNaN(_NaiveElsewhere):
    """Bypasses Forecaster.forecast_block's own check (as a model overriding predict_origins may): NaN forecasts
    on FAULTY."""

    name: ClassVar[str] = "returns_nan"

    def predict_origins(self, history: pd.DataFrame, cutoffs: Sequence[pd.Timestamp], horizon: int) -> OriginForecasts:
        out = super().predict_origins(history, cutoffs, horizon)
        return replace(out, mean=np.full_like(out.mean, np.nan)) if self.unique_id_ == FAULTY else out


class WrongLength(_NaiveElsewhere):
    """Returns one step too few on FAULTY."""

    name: ClassVar[str] = "wrong_length"

    def predict_origins(self, history: pd.DataFrame, cutoffs: Sequence[pd.Timestamp], horizon: int) -> OriginForecasts:
        out = super().predict_origins(history, cutoffs, horizon)
        return replace(out, mean=out.mean[:, :-1], ds=out.ds[:, :-1]) if self.unique_id_ == FAULTY else out


FAULTS = {"raises": Raises, "hangs": Hangs, "returns_nan": ReturnsNaN, "wrong_length": WrongLength}


def register_faults(monkeypatch) -> None:
    import models

    for name, cls in FAULTS.items():
        spec = models.ModelSpec(f"{__name__}:{cls.__name__}", f"fault injection: {name} on {FAULTY}")
        monkeypatch.setitem(models.REGISTRY, name, spec)
