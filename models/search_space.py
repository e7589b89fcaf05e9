"""Search-space declarations: the hyperparameters a model class lets `+tuned` search, and their ranges.

Pure and tiny (no numpy, no optuna) so a model class can declare `search_space` without importing anything
heavy; models.tuning turns each dimension into an Optuna suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError


@dataclass(frozen=True)
class Int:
    """An integer in [low, high] (both included), on a log scale when `log`, in steps of `step` otherwise."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ConfigError(f"Int search range: low {self.low} must be <= high {self.high}")
        if self.step < 1 or (self.log and self.step != 1):
            raise ConfigError(f"Int search range: step must be >= 1 and 1 on a log scale, got step={self.step}")
        if self.log and self.low < 1:
            raise ConfigError(f"Int search range: a log scale needs low >= 1, got {self.low}")

    def contains(self, value: Any) -> bool:
        """Whether `value` is a point of this range (bools are not integers here)."""
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return is_int and self.low <= value <= self.high and (value - self.low) % self.step == 0


@dataclass(frozen=True)
class Float:
    """A float in [low, high], on a log scale when `log` (for scales and rates spanning decades)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ConfigError(f"Float search range: low {self.low} must be <= high {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"Float search range: a log scale needs low > 0, got {self.low}")

    def contains(self, value: Any) -> bool:
        is_num = isinstance(value, int | float) and not isinstance(value, bool)
        return is_num and math.isfinite(value) and self.low <= value <= self.high


@dataclass(frozen=True, init=False)
class Choice:
    """One of a few values (bools, numbers or strings: what Optuna's categorical suggestion accepts)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if not values:
            raise ConfigError("Choice search range: give at least one value")
        object.__setattr__(self, "values", tuple(values))

    def contains(self, value: Any) -> bool:
        # Compared with the type: True == 1, but a bool is not a choice of (1, 2).
        return any(type(value) is type(v) and value == v for v in self.values)


Dimension = Int | Float | Choice
# Constructor argument name -> its range; an empty mapping means the model is not tunable.
SearchSpace = Mapping[str, Dimension]
