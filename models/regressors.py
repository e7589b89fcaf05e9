"""Tabular regressors on lagged log returns (scikit-learn), direct multi-step: random forest, gradient boosting, SVR.

Anchors: skforecast's ForecasterDirect and mlforecast. One class, `LagRegressor`, holds the whole method; the three
registered models differ only in the estimator they build (`_estimator`).

Design choices (why, not what):
- Targets are log returns relative to the origin t, r_h = log(y_{t+h} / y_t), one estimator per step h = 1..H
  (direct multi-step, so the class declares `requires_horizon_in_fit`); the forecast is y_t * exp(r_h_hat). Returns
  are scale-free (a model trained at $30 works at $300) and "predict 0" is the naive forecast. Each step learns
  from every origin whose h-step target is known, so short steps use a few more rows than long ones.
- Features of origin t use rows <= t only: the last `n_lags` log returns, the mean and std of the returns over each
  of `windows` sessions, and the `features` columns (exog_param: indicator columns of features/build.py such as
  rsi_14, bb_pctb or vol_20, covariates `cov_*_logret`, calendar `cal_*` columns) taken at the origin's row. The
  feature builder's indicators and the covariates are causal (the value at a row is known at that row's close),
  so no further lag is needed. Level-type columns (sma_*, cov_*_level) are not scale-free; the `+cov` variant
  therefore feeds the log-return covariates (covariate_kinds).
- Rows whose features are not yet defined (the lags' and windows' warm-up, an indicator's warm-up, a covariate
  that starts later) are dropped from training, never filled. An origin whose own feature row is incomplete is
  refused with the date and the column.
- Every feature is computed per row on a fixed window of raw values (sliding windows, not running sums), so a
  row's features are bit-identical whether computed on the whole history or on its tail: the batched block path,
  the update + predict loop and a fresh fit agree exactly.
- Scaling is fitted on the training rows only: each step's target is standardised (mean/std of its training
  targets), so SVR's epsilon and C read in standard deviations of returns; SVR's features go through a
  StandardScaler inside its pipeline. Trees are scale-free and need none.
- No native intervals (supports_intervals = False): the backtest and the live forecast give split-conformal bands
  (backtest/conformal.py, backtest/live_bands.py).
- update() refits nothing: the base class appends the rows and the next origin's features are read off the
  extended history. Seeds: `seed` is every estimator's random_state (SVR has no randomness); RandomForest runs
  with n_jobs=1 so results never depend on the machine. Models pickle whole (scikit-learn estimators pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError, ModelFitError
from features.calendar import calendar_features
from models._stats import MinTrainSize
from models.base import Forecaster, Intervals, NewRows, direct_steps, is_calendar_column
from models.search_space import Choice, Float, Int, SearchSpace

if TYPE_CHECKING:  # annotations only: scikit-learn loads on first fit
    from sklearn.base import RegressorMixin

log = logging.getLogger(__name__)

# Fewest training rows the longest step may learn from; fewer is a fit error, not a silently poor model.
_MIN_SAMPLES = 10
# Sessions of training rows (beyond the warm-up) the length check asks for before fitting at all.
_MIN_ROWS_AFTER_WARMUP = 40


def _one_thread() -> AbstractContextManager[Any]:
    """Native threads (OpenMP: HistGradientBoosting) limited to one while fitting and predicting.

    A backtest runs units side by side; OpenMP spinning on a busy machine made one boosting fit 5-30x slower
    (0.5-9 s instead of 0.1 s measured on 2 cores), and one thread keeps the numbers machine-independent.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


class LagRegressor(Forecaster):
    """A scikit-learn regressor per horizon step on lagged log returns, rolling moments and origin-time features."""

    supports_exog: ClassVar[bool] = True
    supports_intervals: ClassVar[bool] = False
    requires_horizon_in_fit: ClassVar[bool] = True
    exog_param: ClassVar[str | None] = "features"
    covariate_kinds: ClassVar[tuple[str, ...]] = ("logret",)
    # The warm-up (first row with every lag and window defined) plus enough rows to learn from.
    min_train_size = MinTrainSize(20 + _MIN_ROWS_AFTER_WARMUP, lambda self: self.lookback + _MIN_ROWS_AFTER_WARMUP)

    estimators_: list[Any]

    def __init__(
        self,
        *,
        n_lags: int = 10,
        windows: Sequence[int] = (5, 20),
        features: Sequence[str] = (),
        horizon: int | None = None,
        seed: int = 0,
    ) -> None:
        who = self.default_name
        if isinstance(n_lags, bool) or int(n_lags) != n_lags or n_lags < 1:
            raise ConfigError(f"{who}: n_lags must be an integer >= 1, got {n_lags!r}")
        if isinstance(windows, str) or any(isinstance(w, bool) or int(w) != w or w < 2 for w in windows):
            raise ConfigError(f"{who}: windows must be integers >= 2 such as (5, 20), got {windows!r}")
        if horizon is not None and (isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1):
            raise ConfigError(f"{who}: horizon must be a positive integer or None, got {horizon!r}")
        self.n_lags = int(n_lags)
        self.windows = tuple(int(w) for w in windows)
        self.features = tuple(features)
        self.horizon = None if horizon is None else int(horizon)
        self.seed = int(seed)

    @property
    def exog_columns(self) -> tuple[str, ...]:
        return self.features

    @property
    def lookback(self) -> int:
        """Rows before a row its return features read: the first row with every lag and window defined."""
        return max(self.n_lags, *self.windows) if self.windows else self.n_lags

    def feature_names(self) -> list[str]:
        """Column names of the design, in order (for inspection and feature importances)."""
        lags = [f"logret_lag{k}" for k in range(self.n_lags)]
        moments = [f"logret_{stat}_{w}" for w in self.windows for stat in ("mean", "std")]
        cal = [c for c in self.features if is_calendar_column(c)]
        other = [c for c in self.features if not is_calendar_column(c)]
        return [*lags, *moments, *cal, *other]

    # ---- the estimator: the only difference between the registered models -----------------------------------
    def _estimator(self) -> RegressorMixin:
        raise NotImplementedError

    # ---- design ----------------------------------------------------------------------------------------------
    def _design(self, start: int, stop: int) -> np.ndarray:
        """Feature rows start..stop-1 of the seen history, (stop - start, F); NaN where a feature is not yet known.

        Reads rows from start - lookback on only, and computes each value from a fixed window of raw values, so the
        result does not depend on how much earlier history exists (see the module docstring).
        """
        lo = max(0, start - self.lookback)
        y = self.y_[lo:stop]
        if np.any(y <= 0):
            bad = lo + np.flatnonzero(y <= 0)
            raise DataError(
                f"{self.name} on {self.unique_id_}: log returns need positive prices, {bad.size} values <= 0 "
                f"(first {self.ds_[bad[0]].date()}); forecast a positive series (e.g. a price, not a return)"
            )
        r = np.concatenate([[np.nan], np.diff(np.log(y))])  # r[i]: log return into row lo + i
        n = len(r)
        cols = [np.concatenate([np.full(k, np.nan), r[: n - k]]) for k in range(self.n_lags)]
        for w in self.windows:
            pad = np.full(min(w - 1, n), np.nan)
            if n >= w:
                win = np.lib.stride_tricks.sliding_window_view(r, w)
                mean, std = win.mean(axis=1), win.std(axis=1, ddof=1)
            else:
                mean = std = np.empty(0)
            cols += [np.concatenate([pad, mean]), np.concatenate([pad, std])]
        parts = [np.column_stack(cols)]
        cal = [c for c in self.features if is_calendar_column(c)]
        if cal:
            parts.append(calendar_features(self.ds_[lo:stop])[cal].to_numpy(dtype=float))
        other = [c for c in self.features if not is_calendar_column(c)]
        if other:
            parts.append(self.exog_rows()[other].iloc[lo:stop].to_numpy(dtype=float))
        return np.concatenate(parts, axis=1)[start - lo :]

    def _outputs(self) -> int:
        """Steps to fit: the constructor's horizon if set, else the fit horizon (one of them is required)."""
        return direct_steps(self, self.horizon)

    # ---- hooks -----------------------------------------------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        from sklearn.base import clone

        H = self._outputs()
        design = self._design(0, len(y))
        complete = np.isfinite(design).all(axis=1)
        self.warmup_ = int(np.argmax(complete)) if complete.any() else len(y)
        usable = np.flatnonzero(complete[: max(len(y) - H, 0)])
        if len(usable) < _MIN_SAMPLES:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"{len(y)} sessions give {len(usable)} complete training rows for horizon {H} after "
                f"{self.warmup_} warm-up rows (n_lags={self.n_lags}, windows={list(self.windows)}); need "
                f">= {_MIN_SAMPLES}: use a longer history, fewer lags/shorter windows or a smaller horizon",
            )
        skipped = int(np.sum(~complete[self.warmup_ :]))
        if skipped:
            log.debug("%s on %s: %d incomplete rows after warm-up left out", self.name, self.unique_id_, skipped)
        logy = np.log(y)
        template = self._estimator()
        self.estimators_, centers, scales = [], [], []
        with _one_thread():
            for h in range(1, H + 1):
                rows = np.flatnonzero(complete[: len(y) - h])
                target = logy[rows + h] - logy[rows]
                center, scale = float(target.mean()), float(target.std())
                scale = scale if scale > 1e-12 else 1.0  # a flat target (constant series) stays 0 after centring
                self.estimators_.append(clone(template).fit(design[rows], (target - center) / scale))
                centers.append(center)
                scales.append(scale)
        self.horizon_ = H
        self.target_center_ = np.asarray(centers)
        self.target_scale_ = np.asarray(scales)
        self.n_samples_ = len(usable)

    def _forecast_ends(self, ends: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts (len(ends), horizon) from origins at history rows `ends`: one predict call per step."""
        if horizon > self.horizon_:
            raise DataError(
                f"{self.name}: asked for {horizon} steps, the model was fitted for horizon={self.horizon_}; "
                f"fit it with horizon>={horizon} (direct multi-step models cannot extrapolate further)"
            )
        ends = np.asarray(ends, dtype=np.int64)
        lo = int(ends.min())
        rows = self._design(lo, int(ends.max()) + 1)[ends - lo]
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            names = self.feature_names()
            missing = [names[j] for j in np.flatnonzero(~np.isfinite(rows[bad[0]]))]
            raise DataError(
                f"{self.name} on {self.unique_id_}: feature(s) {missing[:3]} unknown at origin "
                f"{self.ds_[ends[bad[0]]].date()}; an origin's own feature row must be complete "
                "(start forecasting after the warm-up, or fill the gap upstream)"
            )
        with _one_thread():
            out = np.column_stack([est.predict(rows) for est in self.estimators_[:horizon]])
        returns = out * self.target_scale_[:horizon] + self.target_center_[:horizon]
        return self.y_[ends][:, None] * np.exp(returns)

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        return self._forecast_ends(np.array([len(self.y_) - 1]), horizon)[0], None

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin of the block in one predict call per step estimator; equal to the update + predict loop.

        Each origin's features end at its own last row, so it reads only rows at or before its cutoff.
        """
        seen = len(self.y_)
        self._condition(new)
        return self._forecast_ends(seen - 1 + np.asarray(counts, dtype=np.int64), horizon), None


class RandomForestForecaster(LagRegressor):
    """Random forest (scikit-learn RandomForestRegressor) per step on lagged returns."""

    default_name: ClassVar[str] = "random_forest"
    # A forest's usual knobs: size, depth, leaf size, the share of features per split and of rows per tree; plus the
    # lags. Defaults (leaf 10, a third of the features, half the rows per tree) keep a fit on 2,000 sessions x 5 steps
    # near 1 s on one core; on daily returns larger leaves also forecast better than fully grown trees.
    search_space: ClassVar[SearchSpace] = {
        "n_estimators": Int(50, 300, log=True),
        "max_depth": Choice(None, 4, 8, 16),  # None (grown until min_samples_leaf) is the default
        "min_samples_leaf": Int(1, 50, log=True),
        "max_features": Float(0.2, 1.0),
        "max_samples": Float(0.2, 1.0),
        "n_lags": Int(2, 20),
    }

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 10,
        max_features: float = 0.33,
        max_samples: float = 0.5,
        n_lags: int = 10,
        windows: Sequence[int] = (5, 20),
        features: Sequence[str] = (),
        horizon: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_lags=n_lags, windows=windows, features=features, horizon=horizon, seed=seed)
        self.n_estimators = int(n_estimators)
        self.max_depth = None if max_depth is None else int(max_depth)
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_features = float(max_features)
        self.max_samples = float(max_samples)

    def _estimator(self) -> RegressorMixin:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_samples=self.max_samples,
            n_jobs=1,  # a backtest runs many units side by side; one core each keeps results machine-independent
            random_state=self.seed,
        )


class GradientBoostingForecaster(LagRegressor):
    """Histogram gradient boosting (scikit-learn HistGradientBoostingRegressor) per step on lagged returns."""

    default_name: ClassVar[str] = "gradient_boosting"
    # Rate and rounds trade off; leaf count and leaf size bound each tree; L2 shrinks leaf values; plus the lags.
    # Defaults: small trees with large leaves (7 leaves, 30 rows each), since daily returns are mostly noise.
    search_space: ClassVar[SearchSpace] = {
        "learning_rate": Float(0.01, 0.3, log=True),
        "max_iter": Int(50, 300, log=True),
        "max_leaf_nodes": Int(4, 63, log=True),
        "min_samples_leaf": Int(5, 100, log=True),
        "l2_regularization": Float(0.0, 10.0),
        "n_lags": Int(2, 20),
    }

    def __init__(
        self,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 30,
        l2_regularization: float = 1.0,
        n_lags: int = 10,
        windows: Sequence[int] = (5, 20),
        features: Sequence[str] = (),
        horizon: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_lags=n_lags, windows=windows, features=features, horizon=horizon, seed=seed)
        self.max_iter = int(max_iter)
        self.learning_rate = float(learning_rate)
        self.max_leaf_nodes = int(max_leaf_nodes)
        self.min_samples_leaf = int(min_samples_leaf)
        self.l2_regularization = float(l2_regularization)

    def _estimator(self) -> RegressorMixin:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,  # a random validation split would make the rounds data-order dependent
            random_state=self.seed,
        )


class SVRForecaster(LagRegressor):
    """Epsilon-SVR with an RBF kernel on standardised features and standardised returns, per step."""

    default_name: ClassVar[str] = "svr"
    # C and epsilon in standard deviations of the step's returns, the kernel width on standardised features.
    # Defaults: a wide kernel (gamma 0.02, near-linear) and a wide tube (epsilon 0.5 sd) suit daily returns, where
    # the signal is weak; on an AR(1) in returns they beat sklearn's gamma="scale", epsilon=0.1 (MAE 0.87 vs 0.93
    # of naive). "scale"/"auto" remain accepted.
    search_space: ClassVar[SearchSpace] = {
        "C": Float(0.01, 100.0, log=True),
        "epsilon": Float(0.01, 1.0, log=True),
        "gamma": Float(1e-3, 1.0, log=True),
        "n_lags": Int(2, 20),
    }

    def __init__(
        self,
        *,
        C: float = 1.0,
        epsilon: float = 0.5,
        gamma: float | str = 0.02,
        n_lags: int = 10,
        windows: Sequence[int] = (5, 20),
        features: Sequence[str] = (),
        horizon: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_lags=n_lags, windows=windows, features=features, horizon=horizon, seed=seed)
        if not float(C) > 0 or not float(epsilon) >= 0:
            raise ConfigError(f"svr: C must be > 0 and epsilon >= 0, got C={C!r}, epsilon={epsilon!r}")
        if isinstance(gamma, str) and gamma not in ("scale", "auto"):
            raise ConfigError(f"svr: gamma must be a positive number, 'scale' or 'auto', got {gamma!r}")
        self.C = float(C)
        self.epsilon = float(epsilon)
        self.gamma: float | str = gamma if isinstance(gamma, str) else float(gamma)

    def _estimator(self) -> RegressorMixin:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        # The scaler is part of each step's pipeline, so it is fitted on that step's training rows only.
        svr = SVR(kernel="rbf", C=self.C, epsilon=self.epsilon, gamma=self.gamma)
        model: RegressorMixin = make_pipeline(StandardScaler(), svr)
        return model
