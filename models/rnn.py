"""One Keras 3 recurrent forecaster (SimpleRNN, LSTM or GRU cell), direct multi-step, with conformal intervals.

Design choices (why, not what):
- Inputs are windows of `window` sessions ending at the forecast origin (inclusive), aligned as in
  features.windows. With `target_transform="log_return"` (default) the target channel is
  log(y_t) - log(y_origin), i.e. log returns relative to the window's last value, and the outputs are
  log(y_{origin+k}) - log(y_origin) for k = 1..horizon. That makes the network scale-free (a model trained
  at $30 works at $300) and the naive forecast is simply "output 0". `"level"` feeds and predicts the raw
  (standardised) price, for series that can be <= 0.
- Direct multi-step: one Dense output per horizon step, so the model declares `requires_horizon_in_fit` and is
  fitted for the run's horizon (`fit(train, horizon=h)`; the backtest engine and the forecast task pass it).
  The constructor's `horizon` is optional: when set it is the number of outputs to train (at least the fit
  horizon); predict(h) beyond the fitted horizon (`horizon_`) is an error, never an extrapolation.
- Extra inputs (`features`): calendar `cal_` columns and any exog column; inputs end at the origin, so
  values at or before it are known and no extra lag is needed. Leading rows where a feature is not yet known
  (an indicator's warm-up, a covariate that starts later) are skipped: no window starts before the first row
  with every feature finite, and an origin whose window would reach into them is refused. A gap after that is
  an error, never filled here.
- Scalers (features.scaling.TrainScaler) are fitted on the training samples only (not the validation tail).
- Validation tail: the last `validation_fraction` of the samples in time order (never shuffled into training),
  with the `horizon - 1` samples before it purged so no validation target was ever a training target. It
  drives early stopping (best weights restored) and split-conformal intervals: per horizon step, the
  ceil((n+1)(1-alpha))-th smallest absolute validation residual (in log space for log_return, so bands scale
  with the price level). With too few validation samples for a level the largest residual is used (and the
  band is below nominal coverage).
- Determinism: `keras.utils.set_random_seed(seed)` + `tf.config.experimental.enable_op_determinism()`;
  the Keras session is cleared before each fresh build (before seeding, since clearing resets Keras' seed).
- `update()` appends rows only; the next predict runs the fixed network on the newest window.
- Pickling stores the weights (numpy arrays) and config, never the live Keras model; it is rebuilt on use.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError
from common.schema import LEVELS
from common.timing import held
from features.calendar import calendar_features
from features.scaling import TrainScaler
from features.windows import supervised_windows, windows_ending_at
from models.base import Forecaster, Intervals, NewRows, direct_steps, is_calendar_column
from models.search_space import Choice, Float, Int, SearchSpace

if TYPE_CHECKING:  # annotations only: Keras and TensorFlow load on first fit
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

_CELLS = {"rnn": "SimpleRNN", "simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
_MIN_TRAIN_SAMPLES = 8


def cell_name(cell: str) -> str:
    """The registry key of a recurrent cell ('LSTM' -> 'lstm'; the 'simplernn' alias -> 'rnn')."""
    key = str(cell).lower()
    return "rnn" if key == "simplernn" else key


# Keras keeps its random seed and session in process-wide state. Two units training at once in threads (Prefect's
# thread runner) would interleave each other's seeding and clear_session(), so results would depend on timing.
# Training is serialised with this lock; TensorFlow already spreads one fit over every core, so little is lost.
TRAINING_LOCK = threading.RLock()


def training_lock() -> AbstractContextManager[None]:
    """TRAINING_LOCK held, the time spent waiting for it recorded as a wait (common.timing): a unit's time table
    charges it for its own training, not for the other units' it queued behind."""
    return held(TRAINING_LOCK)


def _keras() -> ModuleType:
    """Import Keras (TensorFlow backend) on demand, quietly and with deterministic ops."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no absl/oneDNN banners in a worker's or the CLI's log
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the CLI sets it: same numbers in deployments and CLI
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    _configure_tensorflow()
    return keras


@functools.cache
def _configure_tensorflow() -> None:
    """Once per process: deterministic ops and a quiet TensorFlow logger."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel(logging.ERROR)


def recurrent_stack(
    keras: ModuleType, inputs: Any, *, cell: str, units: int, layers: int, dropout: float, seed: int
) -> Any:
    """`layers` recurrent layers of `cell` on `inputs`, every random draw seeded from `seed` explicitly.

    Keras' unseeded initializers and dropout draw their seeds from Python's global `random` when the layer is
    built. Any other thread drawing from it between keras.utils.set_random_seed and the build (Prefect's log and
    event workers run beside every flow) would change the weights: seen as a test whose forecasts moved with the
    tests that ran before it. Explicit seeds make a fit depend on `seed` alone.
    """
    layer = getattr(keras.layers, _CELLS[cell])
    init = keras.initializers
    x = inputs
    for i in range(layers):
        s = int(seed) * 1009 + 10 * i  # distinct, reproducible seeds per layer and per draw
        x = layer(
            units,
            dropout=dropout,
            return_sequences=i < layers - 1,
            kernel_initializer=init.GlorotUniform(seed=s + 1),
            recurrent_initializer=init.Orthogonal(seed=s + 2),
            seed=s + 3,
        )(x)
    return x


def seeded_dense(keras: ModuleType, units: int, *, seed: int, activation: str | None = None) -> Any:
    """A Dense layer whose kernel initializer is seeded explicitly (see recurrent_stack)."""
    init = keras.initializers.GlorotUniform(seed=int(seed) * 1009 + 999)
    return keras.layers.Dense(units, activation=activation, kernel_initializer=init)


def check_network_args(
    family: str,
    prefix: str,
    *,
    cell: str,
    window: int,
    units: int,
    layers: int,
    horizon: int | None,
    dropout: float,
    validation_fraction: float,
) -> str:
    """ConfigError for a recurrent forecaster's bad shape arguments; returns its registry name (`prefix` + cell).

    `family` names the class in the cell error (rnn, global_rnn); the other errors name the registry key the user
    typed (lstm, global_gru)."""
    if str(cell).lower() not in _CELLS:
        raise ConfigError(f"{family}: cell must be one of {sorted(set(_CELLS) - {'simplernn'})}, got {cell!r}")
    who = prefix + cell_name(cell)
    for label, value in (("window", window), ("units", units), ("layers", layers), ("horizon", horizon or 1)):
        if int(value) < 1:
            raise ConfigError(f"{who}: {label} must be >= 1, got {value}")
    if not 0.0 <= validation_fraction < 0.9:
        raise ConfigError(f"{who}: validation_fraction must be in [0, 0.9), got {validation_fraction}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{who}: dropout must be in [0, 1), got {dropout}")
    return who


def conformal_quantile(residuals: np.ndarray, level: int) -> np.ndarray:
    """Split-conformal half-width per column: the ceil((n+1)*level/100)-th smallest |residual| (capped at n)."""
    res = np.sort(np.abs(np.asarray(residuals, dtype=float)), axis=0)
    n = res.shape[0]
    k = int(np.ceil((n + 1) * level / 100.0))
    return res[min(k, n) - 1]


class KerasForecaster(Forecaster):
    """What the Keras forecasters share (RecurrentForecaster, models.global_rnn): the live network rebuilt from
    stored weights, pickles of weights and config (never the live model), and direct multi-step forecasts from
    windows ending at given rows of the seen history, `_forecast_ends` (ONE batched network call per block).

    Subclasses build the network (`_build`), forecast from window ends (`_forecast_ends`) and set `horizon_`, the
    steps the network outputs, at fit.
    """

    model_: keras.Model | None  # the live network; None after unpickling until first use
    weights_: list[np.ndarray]
    horizon_: int

    def _build(self) -> keras.Model:
        raise NotImplementedError

    def _forecast_ends(self, ends: np.ndarray) -> tuple[np.ndarray, Intervals | None]:
        raise NotImplementedError

    def _model(self) -> keras.Model:
        """The live Keras model; rebuilt from stored weights after unpickling."""
        if getattr(self, "model_", None) is None:
            model = self._build()
            model.set_weights(self.weights_)
            self.model_ = model
        return self.model_

    def _check_horizon(self, horizon: int) -> None:
        if horizon > self.horizon_:
            raise DataError(
                f"{self.name}: asked for {horizon} steps, the network outputs at most horizon={self.horizon_}; "
                f"fit it with horizon>={horizon} (direct multi-step models cannot extrapolate further)"
            )

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        self._check_horizon(horizon)
        mean, intervals = self._forecast_ends(np.array([len(self.y_) - 1]))
        if intervals is None:
            return mean[0, :horizon], None
        return mean[0, :horizon], {lv: (lo[0, :horizon], hi[0, :horizon]) for lv, (lo, hi) in intervals.items()}

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Forecasts from every origin in ONE batched network call; equal to looping update()+predict().

        Each origin's window ends at its own last row, so it uses only rows at or before its cutoff.
        """
        self._check_horizon(horizon)
        seen = len(self.y_)
        self._condition(new)
        mean, intervals = self._forecast_ends(seen - 1 + np.asarray(counts, dtype=np.int64))
        if intervals is None:
            return mean[:, :horizon], None
        return mean[:, :horizon], {lv: (lo[:, :horizon], hi[:, :horizon]) for lv, (lo, hi) in intervals.items()}

    # ---- pickling: weights + config, never the live Keras model -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("model_") is not None:
            state["weights_"] = state["model_"].get_weights()
        state.pop("model_", None)
        state.pop("serve_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.model_ = None


class RecurrentForecaster(KerasForecaster):
    """Keras SimpleRNN/LSTM/GRU on sliding windows, direct multi-step output, split-conformal 80/95 bands."""

    supports_exog: ClassVar[bool] = True
    supports_intervals: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 20
    requires_horizon_in_fit: ClassVar[bool] = True
    # What a practitioner searches for a small recurrent forecaster of daily prices: a few widths, two to twelve
    # weeks of input, one or two layers, light dropout, Adam's rate over two decades, gradient clipping.
    search_space: ClassVar[SearchSpace] = {
        "units": Choice(16, 32, 64),
        "window": Int(10, 60),
        "layers": Int(1, 2),
        "dropout": Float(0.0, 0.3),
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "clipnorm": Float(0.5, 5.0),
    }
    exog_param: ClassVar[str | None] = "features"

    # Fitted Keras state read before fit sets it (warm start, unpickling); model_ and weights_: KerasForecaster.
    serve_: tuple[keras.Model, Callable[[np.ndarray], tf.Tensor]]  # (network, its traced forward pass)

    def __init__(
        self,
        *,
        cell: Literal["rnn", "lstm", "gru"] = "lstm",
        window: int = 30,
        features: Sequence[str] = (),
        units: int = 32,
        layers: int = 1,
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        clipnorm: float = 1.0,
        patience: int = 5,
        validation_fraction: float = 0.1,
        horizon: int | None = None,
        target_transform: Literal["log_return", "level"] = "log_return",
        seed: int = 0,
        warm_start: bool = True,
        warm_epochs: int = 5,
    ) -> None:
        who = check_network_args(
            "rnn",
            "",
            cell=cell,
            window=window,
            units=units,
            layers=layers,
            horizon=horizon,
            dropout=dropout,
            validation_fraction=validation_fraction,
        )
        if target_transform not in ("log_return", "level"):
            raise ConfigError(f"{who}: target_transform must be 'log_return' or 'level', got {target_transform!r}")
        self.cell = str(cell).lower()
        self.window = int(window)
        self.features = tuple(features)
        self.units = int(units)
        self.layers = int(layers)
        self.dropout = float(dropout)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.clipnorm = clipnorm
        self.patience = int(patience)
        self.validation_fraction = float(validation_fraction)
        self.horizon = None if horizon is None else int(horizon)
        self.target_transform = target_transform
        self.seed = int(seed)
        self.warm_start = warm_start
        self.warm_epochs = int(warm_epochs)

    @property
    def default_name(self) -> str:
        """Built directly (not by make_model), the network is named by its cell: rnn, lstm or gru."""
        return cell_name(self.cell)

    @property
    def exog_columns(self) -> tuple[str, ...]:
        return self.features

    # ---- design: raw per-row channels, windows, transforms ------------------------------------------------
    def _raw(self) -> tuple[np.ndarray, int]:
        """(T, 1 + n_features) rows: the target channel (log y or y) then the feature columns, and the number of
        leading warm-up rows where some feature is not yet finite (no window may include them)."""
        y = self.y_
        if self.target_transform == "log_return":
            if np.any(y <= 0):
                bad = np.flatnonzero(y <= 0)
                raise DataError(
                    f"{self.name} on {self.unique_id_}: log_return needs positive prices, {bad.size} values <= 0 "
                    f"(first {self.ds_[bad[0]].date()}); use target_transform='level'"
                )
            y = np.log(y)
        cols = [y[:, None]]
        cal = [c for c in self.features if is_calendar_column(c)]
        if cal:
            cols.append(calendar_features(self.ds_)[cal].to_numpy(dtype=float))
        other = [c for c in self.features if not is_calendar_column(c)]
        if other:
            cols.append(self.exog_rows()[other].to_numpy(dtype=float))
        # Keep the feature order fixed (target, calendar, others) regardless of how `features` lists them.
        raw = np.concatenate(cols, axis=1)
        finite = np.isfinite(raw).all(axis=1)
        warmup = int(np.argmax(finite)) if finite.any() else len(finite)
        late = np.flatnonzero(~finite[warmup:])
        if late.size:
            row = warmup + int(late[0])
            names = ["target", *cal, *other]
            missing = [names[j] for j in np.flatnonzero(~np.isfinite(raw[row]))]
            raise DataError(
                f"{self.name} on {self.unique_id_}: feature {missing[0]!r} is missing/non-finite at "
                f"{self.ds_[row].date()}, after {warmup} warm-up rows and {row - warmup} complete ones; "
                "fill or drop the gap first (only leading warm-up rows are skipped)"
            )
        return raw, warmup

    def _relative(self, X: np.ndarray) -> np.ndarray:
        if self.target_transform == "log_return":
            X = X.copy()
            X[:, :, 0] -= X[:, -1:, 0]
        return X

    def _arch(self) -> tuple:
        return (self.cell, self.window, 1 + len(self.features), self.units, self.layers, self.dropout, self.horizon_)

    def _outputs(self) -> int:
        """Steps the network is trained to output: the constructor's horizon if set, else the fit horizon."""
        return direct_steps(self, self.horizon)

    def _build(self) -> keras.Model:
        keras = _keras()
        inputs = keras.Input(shape=(self.window, 1 + len(self.features)))
        x = recurrent_stack(
            keras, inputs, cell=self.cell, units=self.units, layers=self.layers, dropout=self.dropout, seed=self.seed
        )
        steps = int(getattr(self, "horizon_", None) or self.horizon or 1)
        outputs = seeded_dense(keras, steps, seed=self.seed)(x)  # one output per step
        model = keras.Model(inputs, outputs)
        self._compile(model)
        return model

    def _compile(self, model: keras.Model) -> None:
        keras = _keras()
        opt = keras.optimizers.Adam(learning_rate=self.learning_rate, clipnorm=self.clipnorm)
        model.compile(optimizer=opt, loss="mse")

    def _serve(self) -> Callable[[np.ndarray], tf.Tensor]:
        """A graph-compiled forward pass traced ONCE for any batch size (input_signature with a None batch).

        An eager model(x) steps the RNN loop in Python (~250 ms for window 30); predict_on_batch retraces for
        each new batch size; model.predict() adds ~100 ms of dataset overhead per call.
        """
        model = self._model()
        if getattr(self, "serve_", None) is None or self.serve_[0] is not model:
            import tensorflow as tf

            spec = tf.TensorSpec(shape=(None, self.window, 1 + len(self.features)), dtype=tf.float32)
            fn = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
            self.serve_ = (model, fn)
        return self.serve_[1]

    # ---- hooks --------------------------------------------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        with training_lock():
            self._fit_seeded(y, X)

    def _fit_seeded(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        keras = _keras()
        raw, warmup = self._raw()
        raw = raw[warmup:]  # training windows start after the features' warm-up
        self.horizon_ = self._outputs()
        H, W = self.horizon_, self.window
        n = len(raw) - W - H + 1
        n_val = int(round(self.validation_fraction * n)) if self.validation_fraction > 0 else 0
        n_train = n - n_val - (H - 1 if n_val else 0)  # purge so no validation target is a training target
        if n_train < _MIN_TRAIN_SAMPLES or (self.validation_fraction > 0 and n_val < 1):
            skipped = f" (after {warmup} warm-up rows)" if warmup else ""
            raise DataError(
                f"{self.name} on {self.unique_id_}: {len(raw)} sessions{skipped} give {max(n, 0)} windows for "
                f"window={W}, horizon={H}, validation_fraction={self.validation_fraction}; "
                f"need >= {_MIN_TRAIN_SAMPLES} training windows: use a longer history, a shorter window or a smaller "
                "horizon"
            )
        Xw, Yw = supervised_windows(raw, window=W, horizon=H)  # targets: the target channel, column 0
        if self.target_transform == "log_return":
            Yw = Yw - Xw[:, -1:, 0]
        Xw = self._relative(Xw)
        tr, va = slice(0, n_train), slice(n - n_val, n)
        self.in_scaler_ = TrainScaler().fit(Xw[tr].reshape(-1, Xw.shape[-1]))
        self.out_scaler_ = TrainScaler().fit(Yw[tr])
        Xs, Ys = self.in_scaler_.transform(Xw), self.out_scaler_.transform(Yw)

        warm = bool(
            self.warm_start
            and getattr(self, "weights_", None) is not None
            and getattr(self, "arch_", None) == self._arch()
        )
        if warm:
            model = self._model()
            keras.utils.set_random_seed(self.seed)
            epochs = self.warm_epochs
        else:
            keras.backend.clear_session(free_memory=False)  # before seeding: clearing resets Keras' seed state
            keras.utils.set_random_seed(self.seed)
            model = self._build()
            epochs = self.epochs
        callbacks = []
        val_data = None
        if n_val:
            val_data = (Xs[va], Ys[va])
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.patience, restore_best_weights=True, verbose=0
                )
            )
        hist = model.fit(
            Xs[tr],
            Ys[tr],
            validation_data=val_data,
            epochs=max(int(epochs), 1),
            batch_size=self.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
        self.model_ = model
        self.weights_ = model.get_weights()
        self.arch_ = self._arch()
        self.warm_started_ = warm
        self.epochs_run_ = len(hist.history.get("loss", []))
        self.residuals_ = None
        if n_val:
            # Residuals in transformed units: log returns for log_return (bands scale with price), else levels.
            self.residuals_ = Yw[va] - self._net(Xs[va])
        log.debug("%s on %s: %d epochs, warm=%s", self.name, self.unique_id_, self.epochs_run_, warm)

    def _net(self, Xs: np.ndarray) -> np.ndarray:
        """One batched forward pass on scaled inputs -> outputs in transformed (unscaled) target units."""
        # Under the lock too: a forward pass traced while another thread trains (after its clear_session() and
        # seeding) changed that thread's fit; seen as a flaky thread-determinism test on a loaded machine.
        with training_lock():
            out = self._serve()(np.asarray(Xs, dtype="float32")).numpy()
        return self.out_scaler_.inverse_transform(out.astype(float))

    def _forecast_ends(self, ends: np.ndarray) -> tuple[np.ndarray, Intervals | None]:
        """Forecasts (n_origins, horizon) from windows ending at row indices `ends` of the history, in ONE call."""
        ends = np.asarray(ends, dtype=np.int64)
        raw, warmup = self._raw()
        if warmup and ends.min() < warmup + self.window - 1:
            first = int(ends.min())
            raise DataError(
                f"{self.name} on {self.unique_id_}: the window={self.window} ending at origin "
                f"{self.ds_[first].date()} reaches into the {warmup} warm-up rows where features are not yet "
                f"known (first complete row {self.ds_[min(warmup, len(self.ds_) - 1)].date()}); "
                "start the forecasts later or use a shorter window"
            )
        if ends.min() < self.window - 1:
            raise DataError(
                f"{self.name} on {self.unique_id_}: an origin has only {ends.min() + 1} sessions of history, "
                f"the model needs window={self.window}"
            )
        Xw = self._relative(windows_ending_at(raw, ends, window=self.window))
        out = self._net(self.in_scaler_.transform(Xw))
        if self.target_transform == "log_return":
            base = self.y_[ends][:, None]
            mean = base * np.exp(out)
        else:
            mean = out
        if self.residuals_ is None:
            return mean, None
        intervals: Intervals = {}
        for level in LEVELS:
            q = conformal_quantile(self.residuals_, level)[None, :]
            if self.target_transform == "log_return":
                lo, hi = base * np.exp(out - q), base * np.exp(out + q)
            else:
                lo, hi = mean - q, mean + q
            intervals[level] = (lo, hi)
        return mean, intervals
