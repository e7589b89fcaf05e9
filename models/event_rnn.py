"""One Keras recurrent event classifier (SimpleRNN, LSTM or GRU cell): windows of causal features -> P(event).

Design choices (why, not what):
- Inputs are windows of `window` sessions of the feature matrix ending AT the origin (inclusive), aligned as in
  features.windows.windows_ending_at, so a prediction at row r reads rows r - window + 1 .. r only.
- Samples are the rows with a known label and a fully finite window, in time order. The validation tail is
  the last `validation_fraction` of them (never shuffled into training); the `horizon - 1` samples before it
  are purged, because a label reads the h closes after its origin and those would overlap the tail's labels.
  The tail drives early stopping (best weights restored). Minibatch order inside the training samples is
  shuffled (seeded): that is SGD, not a split across time.
- Scaling: features.scaling.TrainScaler fitted on the training windows' rows only (not the tail).
- Rare positive class: `class_weight="balanced"` weights the loss by n / (2 n_class) on training AND
  validation samples (so early stopping monitors the objective being trained); `prior_correction` maps the
  weighted model's odds back (models.classifiers.prior_shift) so the probabilities are calibrated again.
- Sigmoid output, binary cross-entropy, Adam with clipnorm; small defaults (16 units, window 20, 20 epochs).
- Determinism: `keras.backend.clear_session()` then `keras.utils.set_random_seed(seed)` before each build, and
  op determinism (models.rnn._keras).
- Warm start (default): a refit of the same instance at a later cutoff continues from the previous weights for
  `warm_epochs` epochs (early stopping still on the new tail) instead of `epochs` from scratch; the previous
  weights were learned on an earlier, shorter window, so nothing after the new cutoff is involved. It also
  reuses the traced train and predict functions, which is most of a cold fit's cost.
- All origins of a call are predicted in ONE batched forward pass through a tf.function traced once per
  network (any batch size).
- Keras/TensorFlow are imported on first fit, never at module import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from common.errors import ConfigError, DataError, NotFittedError
from features.scaling import TrainScaler
from features.windows import windows_ending_at
from models.classifiers import MIN_SAMPLES, ClassWeight, EventClassifier, balanced_weights, prior_shift
from models.rnn import _CELLS, _keras, cell_name, recurrent_stack, seeded_dense, training_lock

if TYPE_CHECKING:  # annotations only: Keras and TensorFlow load on first fit
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)


class RecurrentEventClassifier(EventClassifier):
    """Keras SimpleRNN/LSTM/GRU on windows of standardised features with a sigmoid output."""

    # A cold Keras fit costs seconds: refit every 10th fold (warm-started, parameters at most 10 folds old, the
    # forecasters' default policy) instead of at every fold. Not tuned on W1: pass refit_every=1 to compare.
    default_refit_every: ClassVar[int] = 10
    uses_horizon: ClassVar[bool] = True  # the backtest passes the event horizon (purge before the tail)

    # Fitted Keras state, declared because it is also read before fit sets it (warm start, unpickling).
    model_: keras.Model | None  # the live network; None in a pickle (weights_ holds it there)
    weights_: list[np.ndarray]
    serve_: Callable[[np.ndarray], tf.Tensor] | None  # the traced forward pass of model_

    def __init__(
        self,
        *,
        cell: Literal["rnn", "lstm", "gru"] = "lstm",
        window: int = 20,
        units: int = 16,
        layers: int = 1,
        dropout: float = 0.0,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        clipnorm: float = 1.0,
        patience: int = 4,
        validation_fraction: float = 0.2,
        horizon: int = 1,
        class_weight: ClassWeight = "balanced",
        prior_correction: bool = True,
        seed: int = 0,
        warm_start: bool = True,
        warm_epochs: int = 3,
    ) -> None:
        if str(cell).lower() not in _CELLS:
            raise ConfigError(f"rnn_event: cell must be one of ['gru', 'lstm', 'rnn'], got {cell!r}")
        who = f"{cell_name(cell)}_event"  # the registry key of this cell, e.g. lstm_event
        for label, value in (
            ("window", window),
            ("units", units),
            ("layers", layers),
            ("horizon", horizon),
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("warm_epochs", warm_epochs),
        ):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ConfigError(f"{who}: {label} must be an integer >= 1, got {value!r}")
        if not 0.0 < validation_fraction < 0.9:
            raise ConfigError(
                f"{who}: validation_fraction must be in (0, 0.9) (early stopping needs a tail), "
                f"got {validation_fraction}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{who}: dropout must be in [0, 1), got {dropout}")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"{who}: class_weight must be None or 'balanced', got {class_weight!r}")
        self.cell = str(cell).lower()
        self.window = int(window)
        self.units = int(units)
        self.layers = int(layers)
        self.dropout = float(dropout)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.clipnorm = clipnorm
        self.patience = int(patience)
        self.validation_fraction = float(validation_fraction)
        self.horizon = int(horizon)
        self.class_weight = class_weight
        self.prior_correction = bool(prior_correction)
        self.seed = int(seed)
        self.warm_start = bool(warm_start)
        self.warm_epochs = int(warm_epochs)

    @property
    def default_name(self) -> str:
        """Built directly (not by make_event_model), the classifier is named by its cell: e.g. lstm_event."""
        return f"{cell_name(self.cell)}_event"

    # ---- samples ------------------------------------------------------------------------------------------
    def _window_ok(self, X: np.ndarray) -> np.ndarray:
        """(T,) True where the window ending at the row exists and is fully finite."""
        finite = np.all(np.isfinite(X), axis=1).astype(np.int64)
        csum = np.concatenate([[0], np.cumsum(finite)])
        ok = np.zeros(X.shape[0], dtype=bool)
        ends = np.arange(self.window - 1, X.shape[0])
        ok[ends] = (csum[ends + 1] - csum[ends + 1 - self.window]) == self.window
        return ok

    def _split(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(self._window_ok(X) & np.isfinite(y))
        n_val = max(1, int(round(self.validation_fraction * rows.size))) if rows.size else 0
        val = rows[rows.size - n_val :]
        train = rows[: rows.size - n_val]
        if val.size:
            train = train[train <= val[0] - self.horizon]  # purge: no training label overlaps a tail label
        if train.size < MIN_SAMPLES or val.size < 1:
            raise DataError(
                f"{self.name}: {rows.size} samples with a full window={self.window} and a label leave {train.size} "
                f"training samples after the {self.validation_fraction:g} validation tail and the purge of "
                f"horizon - 1 = {self.horizon - 1}; need >= {MIN_SAMPLES}: use a longer training window or a "
                "shorter window"
            )
        return train, val

    # ---- network ------------------------------------------------------------------------------------------
    def _build(self, n_features: int) -> keras.Model:
        keras = _keras()
        inputs = keras.Input(shape=(self.window, n_features))
        x = recurrent_stack(
            keras, inputs, cell=self.cell, units=self.units, layers=self.layers, dropout=self.dropout, seed=self.seed
        )
        outputs = seeded_dense(keras, 1, seed=self.seed, activation="sigmoid")(x)
        model = keras.Model(inputs, outputs)
        opt = keras.optimizers.Adam(learning_rate=self.learning_rate, clipnorm=self.clipnorm)
        model.compile(optimizer=opt, loss="binary_crossentropy")
        return model

    def _serve(self) -> Callable[[np.ndarray], tf.Tensor]:
        """A forward pass traced once for any batch size (model.predict adds ~100 ms per call)."""
        serve = getattr(self, "serve_", None)
        if serve is None:
            import tensorflow as tf

            model = self.model_
            if model is None:
                raise NotFittedError(f"{self.name}: no network to predict with; call fit() first")
            spec = tf.TensorSpec(shape=(None, self.window, self.n_features_), dtype=tf.float32)
            serve = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
            self.serve_ = serve
        return serve

    # ---- hooks --------------------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        with training_lock():  # Keras' seed and session are process-wide: see models.rnn.TRAINING_LOCK
            self._fit_seeded(X, y, rows)

    def _fit_seeded(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        train, val = self._split(X, y)
        y_train = y[train]
        self.constant_ = None
        if np.unique(y_train).size < 2:  # one class: nothing to learn beyond the rate
            self.constant_ = float(y_train[0])
            return
        keras = _keras()
        arch = (self.cell, self.window, X.shape[1], self.units, self.layers, self.dropout)
        previous = getattr(self, "model_", None)
        warm = self.warm_start and previous is not None and getattr(self, "arch_", None) == arch
        Xw_train = windows_ending_at(X, train, window=self.window)
        self.scaler_ = TrainScaler().fit(Xw_train.reshape(-1, X.shape[1]))
        Xs_train = self.scaler_.transform(Xw_train).astype("float32")
        Xs_val = self.scaler_.transform(windows_ending_at(X, val, window=self.window)).astype("float32")
        y_val = y[val]
        weights = balanced_weights(y_train) if self.class_weight == "balanced" else {0: 1.0, 1: 1.0}
        self.class_weights_ = weights
        if warm and previous is not None:  # same network and traced functions: a few epochs from its weights
            model, epochs = previous, self.warm_epochs
            keras.utils.set_random_seed(self.seed)
        else:
            keras.backend.clear_session(free_memory=False)  # before seeding: clearing resets Keras' seed state
            keras.utils.set_random_seed(self.seed)
            model, epochs = self._build(X.shape[1]), self.epochs
            self.serve_ = None
        w_val = np.where(y_val == 1.0, weights[1], weights[0]).astype("float32")
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True, verbose=0
        )
        hist = model.fit(
            Xs_train,
            y_train.astype("float32"),
            validation_data=(Xs_val, y_val.astype("float32"), w_val),
            class_weight=weights,
            epochs=epochs,
            batch_size=self.batch_size,
            shuffle=True,
            callbacks=[stop],
            verbose=0,
        )
        self.model_, self.arch_, self.warm_started_ = model, arch, warm
        self.epochs_run_ = len(hist.history.get("loss", []))
        self.n_train_, self.n_val_ = int(train.size), int(val.size)
        log.debug("%s(%s): %d epochs on %d samples", self.name, self.cell, self.epochs_run_, train.size)

    def _predict(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(rows.size, self.constant_)
        ok = self._window_ok(X)[rows]
        if not ok.all():
            raise DataError(
                f"{self.name}: {int((~ok).sum())} origin(s) lack a full finite window of {self.window} sessions, "
                f"first row {rows[~ok][0]}; start the folds later or shorten the window"
            )
        Xs = self.scaler_.transform(windows_ending_at(X, rows, window=self.window)).astype("float32")
        with training_lock():  # a forward pass beside another thread's training changes that fit: see models.rnn._net
            p = self._serve()(Xs).numpy().reshape(-1).astype(float)
        if self.class_weight == "balanced" and self.prior_correction:
            p = prior_shift(p, self.class_weights_)
        return p

    # ---- pickling: weights + config, never the live Keras model -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("model_") is not None:
            state["weights_"] = state["model_"].get_weights()
        state["model_"], state["serve_"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.__dict__.get("weights_") is not None and getattr(self, "n_features_", None):
            model = self._build(self.n_features_)
            model.set_weights(self.weights_)
            self.model_ = model
