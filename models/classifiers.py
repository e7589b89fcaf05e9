"""Event classifiers: P("the close rises >= x% within h sessions") at an origin, from causal features.

The contract is on arrays of ONE series, so the backtest (backtest/event_task.py) owns every date and fold:

    fit(features, labels)          features (T, F): consecutive sessions in time order, causal values;
                                   labels (T,): 1.0 / 0.0, NaN where the outcome is unknown (the backtest
                                   masks every label that reads past the cutoff). Rows with a NaN label or
                                   NaN features (indicator warm-up) are not training samples.
    predict_proba(features, rows)  P(event) at each row index in `rows` (ascending), ONE call for all
                                   origins; the value at row r may read features[: r + 1] only.

Fitted state ends with `_`; constructor arguments are never mutated. sklearn is imported on use, so
`import models.classifiers` stays light; the Keras classifier lives in models/event_rnn.py.

Class weights and probabilities: training with class_weight="balanced" multiplies the odds the model learns
by n_neg / n_pos. With `prior_correction=True` (default) the predicted odds are multiplied back by
n_pos / n_neg (the intercept/prior-shift correction of King & Zeng, 2001), so the weights help the optimiser
find the rare class while the probabilities stay calibrated for Brier score and log loss.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Self

import numpy as np

from common.errors import ConfigError, DataError, ModelFitError, NotFittedError
from features.scaling import TrainScaler
from models.naming import RegistryNamed

log = logging.getLogger(__name__)

ClassWeight = Literal["balanced"] | None
MIN_SAMPLES = 10  # fewest labelled training samples any event model fits on


def balanced_weights(labels: np.ndarray) -> dict[int, float]:
    """sklearn's "balanced" class weights n / (2 n_c) of a 0/1 label vector (1.0 for an absent class)."""
    y = np.asarray(labels, dtype=float)
    n = y.size
    n_pos = float(np.sum(y == 1.0))
    n_neg = float(n - n_pos)
    return {0: n / (2.0 * n_neg) if n_neg else 1.0, 1: n / (2.0 * n_pos) if n_pos else 1.0}


def prior_shift(p: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """Undo class weighting on probabilities: odds * w0 / w1 (exact for the intercept of a logistic model)."""
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1.0 - 1e-12)
    odds = p / (1.0 - p) * (weights[0] / weights[1])
    return odds / (1.0 + odds)


def training_rows(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row indices that are training samples: a known label and finite features."""
    features, labels = _check_arrays(features, labels)
    ok = np.isfinite(labels[: len(features)]) & np.all(np.isfinite(features[: len(labels)]), axis=1)
    return np.flatnonzero(ok)


def _check_arrays(features: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(features, dtype=float)
    if X.ndim != 2:
        raise DataError(f"event models take a (sessions, features) matrix, got shape {X.shape}")
    if labels is None:
        return X, np.empty(0)
    y = np.asarray(labels, dtype=float).reshape(-1)
    if y.size != X.shape[0]:
        raise DataError(f"event models: {X.shape[0]} feature rows but {y.size} labels; pass one label per row")
    bad = np.isfinite(y) & (y != 0.0) & (y != 1.0)
    if bad.any():
        raise DataError(
            f"event labels must be 0, 1 or NaN, got {y[bad][:3].tolist()} at rows {np.flatnonzero(bad)[:3].tolist()}"
        )
    return X, y


def _check_rows(rows: np.ndarray, n: int, *, who: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataError(f"{who}: rows must lie in [0, {n - 1}], got min {rows.min()} max {rows.max()}")
    if np.any(np.diff(rows) < 0):
        raise DataError(f"{who}: rows must be ascending (origins in time order)")
    return rows


class EventClassifier(RegistryNamed):
    """Base class: argument checks, the sample selection, fitted-state bookkeeping. Subclasses implement hooks.

    `name` is the event-registry key the model was made under (models.naming); subclasses set `default_name`.
    Descriptions live in the registry (models.EVENT_REGISTRY, ModelSpec.summary).
    """

    # Backtest refit policy when none is asked for (refit every k-th fold; 0 = fit once).
    default_refit_every: ClassVar[int] = 1

    def fit(self, features: np.ndarray, labels: np.ndarray) -> Self:
        X, y = _check_arrays(features, labels)
        rows = training_rows(X, y)
        if rows.size < MIN_SAMPLES:
            raise DataError(
                f"{self.name}: {rows.size} labelled training samples with finite features (need >= {MIN_SAMPLES}); "
                "use a longer training window or fewer/shorter indicators"
            )
        self.n_features_ = X.shape[1]
        self.n_samples_ = int(rows.size)
        self.train_rate_ = float(np.mean(y[rows]))
        self._fit(X, y, rows)
        return self

    def predict_proba(self, features: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "n_features_"):
            raise NotFittedError(f"{self.name}: call fit() before predict_proba()")
        X, _ = _check_arrays(features)
        if X.shape[1] != self.n_features_:
            raise DataError(f"{self.name}: fitted on {self.n_features_} features, got {X.shape[1]}")
        rows = _check_rows(rows, X.shape[0], who=self.name)
        if rows.size == 0:
            return np.empty(0)
        p = np.asarray(self._predict(X, rows), dtype=float).reshape(-1)
        if p.shape != rows.shape or not np.all(np.isfinite(p)):
            raise ModelFitError(self.name, "?", f"predicted {p.size} values for {rows.size} origins, or non-finite")
        return np.clip(p, 0.0, 1.0)

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- hooks ----------------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class BaseRate(EventClassifier):
    """Climatology: the training window's event rate at every origin. The honest baseline to beat."""

    default_name: ClassVar[str] = "base_rate"

    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        self.rate_ = float(np.mean(y[rows]))

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.full(rows.size, self.rate_)


class LogisticEvent(EventClassifier):
    """L2 logistic regression (scikit-learn) on features standardised with training-row statistics only.

    The default solver is Newton-Cholesky: with thousands of sessions and ~16 features it converges in 2-3
    Newton steps (~3 ms), where lbfgs needs ~40 iterations (~90 ms) to a looser optimum.
    """

    default_name: ClassVar[str] = "logistic"

    def __init__(
        self,
        *,
        C: float = 1.0,
        class_weight: ClassWeight = None,
        prior_correction: bool = True,
        solver: str = "newton-cholesky",
        max_iter: int = 1000,
    ) -> None:
        if not float(C) > 0:
            raise ConfigError(f"logistic: C (inverse regularisation) must be > 0, got {C!r}")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"logistic: class_weight must be None or 'balanced', got {class_weight!r}")
        if int(max_iter) < 1:
            raise ConfigError(f"logistic: max_iter must be >= 1, got {max_iter!r}")
        self.C = float(C)
        self.class_weight = class_weight
        self.prior_correction = bool(prior_correction)
        self.solver = str(solver)
        self.max_iter = int(max_iter)

    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        labels = y[rows]
        self.scaler_ = TrainScaler().fit(X[rows])
        self.constant_ = None
        if np.unique(labels).size < 2:  # one class in training: the rate is the only honest answer
            self.constant_ = float(labels[0])
            return
        self.weights_ = balanced_weights(labels) if self.class_weight == "balanced" else None
        clf = LogisticRegression(C=self.C, class_weight=self.class_weight, solver=self.solver, max_iter=self.max_iter)
        clf.fit(self.scaler_.transform(X[rows]), labels.astype(int))
        self.clf_ = clf

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(rows.size, self.constant_)
        Z = X[rows]
        bad = ~np.all(np.isfinite(Z), axis=1)
        if bad.any():
            raise DataError(f"{self.name}: non-finite features at {int(bad.sum())} origin(s), first row {rows[bad][0]}")
        p = self.clf_.predict_proba(self.scaler_.transform(Z))[:, 1]
        if self.weights_ is not None and self.prior_correction:
            p = prior_shift(p, self.weights_)
        return p
