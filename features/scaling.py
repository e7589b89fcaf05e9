"""Per-column scaling fitted on the training slice only, so test-period statistics never leak into a model."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np

from common.errors import ConfigError, DataError, NotFittedError


class TrainScaler:
    """Standard (z-score) or min-max scaling per column, estimated on the rows passed to `fit` only.

    Columns with zero spread (constant in training) get scale 1, so they map to 0 instead of NaN/inf.
    Works on (T,), (T, F) and (..., F) arrays: the last axis is the column axis.
    """

    def __init__(self, method: Literal["standard", "minmax"] = "standard") -> None:
        if method not in ("standard", "minmax"):
            raise ConfigError(f"TrainScaler: method must be 'standard' or 'minmax', got {method!r}")
        self.method = method

    def fit(self, values: np.ndarray) -> Self:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        flat = arr.reshape(-1, arr.shape[-1])
        if flat.shape[0] == 0:
            raise DataError("TrainScaler: cannot fit on zero rows")
        if not np.all(np.isfinite(flat)):
            raise DataError(
                f"TrainScaler: {int(np.sum(~np.isfinite(flat)))} non-finite training values; drop or fill them first"
            )
        if self.method == "standard":
            center = flat.mean(axis=0)
            scale = flat.std(axis=0)
        else:
            center = flat.min(axis=0)
            scale = flat.max(axis=0) - center
        # Constant columns: keep them finite (they carry no information, 0 after centring).
        scale = np.where(scale > np.finfo(float).eps * np.maximum(1.0, np.abs(center)), scale, 1.0)
        self.center_ = center
        self.scale_ = scale
        self.n_features_ = flat.shape[1]
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        arr, squeeze = self._check(values)
        out = (arr - self.center_) / self.scale_
        return out[..., 0] if squeeze else out

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        arr, squeeze = self._check(values)
        out = arr * self.scale_ + self.center_
        return out[..., 0] if squeeze else out

    def fit_transform(self, values: np.ndarray) -> np.ndarray:
        return self.fit(values).transform(values)

    def _check(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        if not hasattr(self, "scale_"):
            raise NotFittedError("TrainScaler: call fit() on the training slice before transform()")
        arr = np.asarray(values, dtype=float)
        squeeze = arr.ndim == 1 and self.n_features_ == 1
        if squeeze:
            arr = arr[:, None]
        if arr.shape[-1] != self.n_features_:
            raise DataError(f"TrainScaler: fitted on {self.n_features_} column(s), got shape {arr.shape}")
        return arr, squeeze

    def __repr__(self) -> str:
        return f"TrainScaler(method={self.method!r})"
