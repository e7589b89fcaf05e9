"""One Keras recurrent network trained across many series (a global model, as in neuralforecast and Darts).

A local network (models.rnn) sees one ticker's few hundred windows; a global one pools the windows of every series
of a run, so it learns the shape of price paths from far more data and can forecast a ticker it never saw
(zero-shot). The backtest runs it as ONE unit spanning every series (`global_model`, backtest.panel): `fit_panel`
trains once per refit on all series, `predict_panel_origins` forecasts every series' origins in one batched call.
Fitted on one series through the Forecaster contract (`fit`/`update`/`predict`), it is the degenerate panel.

Design choices (why, not what):
- Log returns only, each series scaled on its own: with s_i the standard deviation of series i's one-step log
  returns over the rows its training windows cover (never its validation tail, as models.rnn fits its scalers),
  the input channel is (log y_t - log y_origin) / s_i and the targets (log y_{origin+k} - log y_origin) / s_i for
  k = 1..horizon. Scale-free in price (a $30 and a $30,000 series give the same inputs) and in volatility (a calm
  index and a volatile coin both move about one unit a session), so one network fits both and neither dominates
  the loss. Forecast: y_origin * exp(s_i * output). A (numerically) constant series has no scale of its own: s_i
  below 1e-8 is replaced by 1 (log units), so a flat series never divides by zero.
- A series the fit never saw (with `embedding_dim=0`) is scaled the same way on its rows up to each origin's
  cutoff, so its forecast from one origin never reads a later row.
- Windows and validation per series, then pooled: each series' windows in time order, its last
  `validation_fraction` held out with the `horizon - 1` windows before them purged (no validation target was a
  training target), as models.rnn does on one series. The pooled validation windows drive early stopping (best
  weights restored) and the split-conformal intervals: per horizon step, the conformal quantile of the POOLED
  scaled residuals, mapped back per series as y_origin * exp(s_i * (output +/- q)). A per-series tail is a few
  dozen windows, too short for a 95% quantile; scaling by s_i is what makes the pooled residuals comparable.
- A series that cannot give one training window (or has a non-finite or non-positive price, or unsorted dates)
  is left out of the fit, listed in `skipped_` and logged; the others are fitted. A per-series problem at
  forecast time (unseen with an embedding, too few rows before a cutoff, a bad price, a cutoff that is not a row)
  is that series' value in the result, never a failure of the others.
- Optional series embedding (`embedding_dim > 0`): a learnt vector per fitted series, concatenated with the
  recurrent output before the Dense head, lets the network tell series apart; it can then only forecast the
  series it was fitted on (`series_index_`). Without it any series can be forecast.
- No exogenous inputs in this version (`supports_exog = False`): covariates differ between series of a panel.
- Direct multi-step (one output per step), so the horizon is needed at fit (`requires_horizon_in_fit`);
  forecasting beyond it is an error, never an extrapolation.
- Determinism and persistence as models.rnn: fits serialised under its TRAINING_LOCK, the session cleared before
  seeding a cold fit, every initializer seeded explicitly; a warm refit (same architecture and, with an
  embedding, the same series) continues from the weights for `warm_epochs`; pickles hold weights and config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError, ModelFitError, NotFittedError
from common.schema import DS, ID, LEVELS, Y
from features.calendar import exchange_for, sessions_after_each
from features.windows import supervised_windows
from models.base import Intervals, OriginForecasts, direct_steps
from models.rnn import (
    _MIN_TRAIN_SAMPLES,
    KerasForecaster,
    _keras,
    cell_name,
    check_network_args,
    conformal_quantile,
    recurrent_stack,
    seeded_dense,
    training_lock,
)
from models.search_space import SearchSpace

if TYPE_CHECKING:  # annotations only: Keras and TensorFlow load on first fit
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

_MIN_SCALE = 1e-8


def log_return_scale(log_y: np.ndarray) -> float:
    """Standard deviation of the one-step log returns of `log_y`; 1.0 when below 1e-8 or undefined (flat/short)."""
    r = np.diff(np.asarray(log_y, dtype=float))
    s = float(np.std(r)) if r.size else float("nan")
    return s if np.isfinite(s) and s >= _MIN_SCALE else 1.0


def _price_problem(y: np.ndarray) -> int | None:
    """Index of the first non-finite or non-positive price, or None."""
    bad = np.flatnonzero(~(np.isfinite(y) & (y > 0)))
    return int(bad[0]) if bad.size else None


def _dates(model: str, uid: str, exchange: str, cuts: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """The `horizon` sessions after each cutoff (a row of the series, so its last seen session) on `exchange`."""
    try:
        return sessions_after_each(exchange, cuts, horizon)
    except Exception as exc:  # exchange-calendars raises its own types for a name it does not know
        raise DataError(
            f"{model} on {uid}: no sessions from calendar {exchange!r} ({type(exc).__name__}: {exc}); pass an "
            "exchange-calendars name (XNYS, XLON, ...), 24/7 or 24/5 in calendars"
        ) from exc


@dataclass(frozen=True)
class _Origins:
    """One series' origins ready for the network: raw price windows, their scales and the series' embedding row."""

    windows: np.ndarray  # (n, window) prices, each ending at its origin
    scales: np.ndarray  # (n,)
    index: int  # row of the embedding (0 when there is none)


class GlobalRecurrentForecaster(KerasForecaster):
    """ONE Keras SimpleRNN/LSTM/GRU over every series of a panel (log returns scaled per series), direct
    multi-step, split-conformal 80/95 bands from the pooled validation residuals; no exogenous inputs."""

    global_model: ClassVar[bool] = True  # the engine runs ONE unit spanning every series (backtest.panel)
    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 20
    requires_horizon_in_fit: ClassVar[bool] = True
    default_refit_every: ClassVar[int] = 10  # as the local recurrent models
    search_space: ClassVar[SearchSpace] = {}  # not tunable in this version

    # Fitted Keras state read before fit sets it (warm start, unpickling); model_ and weights_: KerasForecaster.
    serve_: tuple[keras.Model, Callable[..., tf.Tensor]]  # (network, its traced forward pass)

    def __init__(
        self,
        *,
        cell: Literal["rnn", "lstm", "gru"] = "lstm",
        window: int = 30,
        units: int = 32,
        layers: int = 1,
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        clipnorm: float = 1.0,
        patience: int = 5,
        validation_fraction: float = 0.1,
        horizon: int | None = None,
        embedding_dim: int = 0,
        seed: int = 0,
        warm_start: bool = True,
        warm_epochs: int = 5,
    ) -> None:
        who = check_network_args(
            "global_rnn",
            "global_",
            cell=cell,
            window=window,
            units=units,
            layers=layers,
            horizon=horizon,
            dropout=dropout,
            validation_fraction=validation_fraction,
        )
        if int(embedding_dim) < 0:
            raise ConfigError(f"{who}: embedding_dim must be >= 0 (0 = no series embedding), got {embedding_dim}")
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
        self.horizon = None if horizon is None else int(horizon)
        self.embedding_dim = int(embedding_dim)
        self.seed = int(seed)
        self.warm_start = warm_start
        self.warm_epochs = int(warm_epochs)

    @property
    def default_name(self) -> str:
        """Built directly (not by make_model), the network is named by its cell: global_lstm, global_gru, ..."""
        return "global_" + cell_name(self.cell)

    # ---- the panel API ---------------------------------------------------------------------------------------
    def fit_panel(
        self, train: pd.DataFrame, *, horizon: int, calendars: Mapping[str, str | None] | None = None
    ) -> Self:
        """Fit one network on every series of a long frame (unique_id, ds, y; several ids; each id's rows sorted
        by ds) for `horizon` steps. `calendars`: each series' trading calendar (default: its ticker's spelling).

        A series that cannot be fitted is left out and listed in `skipped_` (uid -> reason); DataError when none
        is left. Clears the one-series state of an earlier fit(): predict()/update() need fit() again.
        """
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon <= 0:
            raise DataError(f"{self.name}: fit horizon must be a positive integer, got {horizon!r}")
        missing = [c for c in (ID, DS, Y) if c not in train.columns]
        if missing:
            raise DataError(f"{self.name}: input frame lacks column(s) {missing}; expected unique_id, ds, y")
        series = {
            str(uid): (pd.DatetimeIndex(rows[DS]), rows[Y].to_numpy(dtype=float))
            for uid, rows in train.groupby(train[ID].astype(str), sort=True)
        }
        if not series:
            raise DataError(f"{self.name}: fit_panel got an empty frame; pass the training rows of every series")
        panel = SimpleNamespace(name=self.name, unique_id_=f"a panel of {len(series)} series", fit_horizon_=horizon)
        steps = direct_steps(panel, self.horizon)  # the base's messages, said of the panel
        self.is_fitted_ = False  # the one-series history (if any) no longer matches the network
        self.fit_horizon_ = int(horizon)
        chosen = calendars or {}
        self._fit_series(series, steps, {uid: chosen.get(uid) or exchange_for(uid) for uid in series})
        return self

    def predict_panel_origins(
        self,
        history: pd.DataFrame,
        cutoffs: Mapping[str, Sequence[pd.Timestamp]],
        horizon: int,
        *,
        calendars: Mapping[str, str | None] | None = None,
    ) -> dict[str, OriginForecasts | Exception]:
        """Forecasts from every series' origins with parameters fixed, in ONE batched network call.

        For each uid of `cutoffs` and each of its cutoffs (in the given order; each must be a row of the series),
        the window of that uid's rows of `history` ending at the cutoff, so ds <= cutoff ONLY. A per-series
        problem (unseen series with an embedding, fewer than `window` rows up to a cutoff, a price <= 0 or
        non-finite, a cutoff that is not a row) is that uid's value as a DataError; the others are unaffected.
        `calendars` names the calendar of series the fit did not see (default: the ticker's spelling). The model is
        left as it was: nothing is conditioned on, so any series and any cutoffs can come in any call.
        """
        self._check_panel_fitted()
        horizon = self._horizon_arg(horizon)
        self._check_horizon(horizon)
        missing = [c for c in (ID, DS, Y) if c not in history.columns]
        if missing:
            raise DataError(f"{self.name}: history lacks column(s) {missing}; expected unique_id, ds, y")
        ids = history[ID].astype(str)
        wanted = history.loc[ids.isin({str(u) for u in cutoffs})]
        groups = dict(iter(wanted.groupby(wanted[ID].astype(str), sort=False)))
        out: dict[str, OriginForecasts | Exception] = {}
        ready: dict[str, tuple[_Origins, pd.DatetimeIndex, np.ndarray]] = {}
        for key, cuts_in in cutoffs.items():
            uid = str(key)
            cuts = pd.DatetimeIndex([pd.Timestamp(c) for c in cuts_in])
            exchange = (calendars or {}).get(uid) or self.exchanges_.get(uid) or exchange_for(uid)
            try:
                rows = groups.get(uid)
                if rows is None:
                    raise DataError(
                        f"{self.name} on {uid}: no rows in history; pass the series' rows up to its cutoffs"
                    )
                origins = self._panel_origins(uid, pd.DatetimeIndex(rows[DS]), rows[Y].to_numpy(dtype=float), cuts)
                dates = _dates(self.name, uid, exchange, cuts, horizon)
            except DataError as exc:  # one series' problem is its result, not everyone's
                out[uid] = exc
                continue
            ready[uid] = (origins, cuts, dates)
        if ready:
            parts = [origins for origins, _, _ in ready.values()]
            mean, intervals = self._forecast(
                np.concatenate([p.windows for p in parts]),
                np.concatenate([p.scales for p in parts]),
                np.concatenate([np.full(len(p.scales), p.index, dtype=np.int32) for p in parts]),
            )
            start = 0
            for uid, (_, cuts, dates) in ready.items():
                at = slice(start, start + len(cuts))
                start += len(cuts)
                m = mean[at, :horizon]
                if not np.all(np.isfinite(m)):
                    bad = int(np.flatnonzero(~np.isfinite(m).all(axis=1))[0])
                    out[uid] = ModelFitError(
                        self.name, uid, f"non-finite forecast from the origin at {cuts[bad].date()}; check its prices"
                    )
                    continue
                bands = (
                    None
                    if intervals is None
                    else {lv: (lo[at, :horizon], hi[at, :horizon]) for lv, (lo, hi) in intervals.items()}
                )
                out[uid] = OriginForecasts(uid, cuts, dates, m, bands)
        return {str(k): out[str(k)] for k in cutoffs}  # the caller's order

    # ---- fitting ---------------------------------------------------------------------------------------------
    def _fit_series(
        self, series: Mapping[str, tuple[pd.DatetimeIndex, np.ndarray]], steps: int, exchanges: Mapping[str, str]
    ) -> None:
        with training_lock():
            self._fit_locked(series, steps, exchanges)

    def _fit_locked(
        self, series: Mapping[str, tuple[pd.DatetimeIndex, np.ndarray]], steps: int, exchanges: Mapping[str, str]
    ) -> None:
        W, H, vf = self.window, steps, self.validation_fraction
        skipped: dict[str, str] = {}
        kept: dict[str, tuple[np.ndarray, np.ndarray, int, int, float]] = {}  # uid -> (X, Y, n_train, n_val, s)
        for uid in sorted(series):
            ds, y = series[uid]
            reason = self._training_problem(ds, y)
            if reason is None:
                n = len(y) - W - H + 1
                n_val = int(round(vf * n)) if vf > 0 and n > 0 else 0
                n_train = n - n_val - (H - 1 if n_val else 0)  # purge so no validation target is a training target
                if n_train < 1:
                    reason = (
                        f"{len(y)} rows give {max(n, 0)} windows for window={W}, horizon={H} and "
                        f"{max(n_train, 0)} for training after the validation tail"
                    )
            if reason is not None:
                skipped[uid] = reason
                continue
            log_y = np.log(y)
            s = log_return_scale(log_y[: n_train + W + H - 1])  # the rows its training windows cover
            Xw, Yw = supervised_windows(log_y, window=W, horizon=H)
            origin = Xw[:, -1:, 0]
            kept[uid] = ((Xw[:, :, 0] - origin) / s, (Yw - origin) / s, n_train, n_val, s)
        if skipped:
            log.warning(
                "%s: %d of %d series left out of the fit: %s",
                self.name,
                len(skipped),
                len(series),
                "; ".join(f"{u}: {r}" for u, r in list(skipped.items())[:5]),
            )
        n_train_all = sum(k[2] for k in kept.values())
        n_val_all = sum(k[3] for k in kept.values())
        if not kept or n_train_all < _MIN_TRAIN_SAMPLES or (vf > 0 and n_val_all < 1):
            shown = "; ".join(f"{u}: {r}" for u, r in list(skipped.items())[:5]) or "none"
            raise DataError(
                f"{self.name}: {len(kept)} of {len(series)} series can be trained, giving {n_train_all} training and "
                f"{n_val_all} validation windows (need >= {_MIN_TRAIN_SAMPLES} training"
                f"{' and >= 1 validation' if vf > 0 else ''}) for window={W}, horizon={H}, validation_fraction={vf}; "
                f"left out: {shown}. Use longer histories, a shorter window or a smaller horizon"
            )
        index = {uid: i for i, uid in enumerate(kept)}
        x_tr, i_tr, y_tr, x_va, i_va, y_va = [], [], [], [], [], []
        for uid, (X, Yt, n_train, n_val, _) in kept.items():
            x_tr.append(X[:n_train])
            y_tr.append(Yt[:n_train])
            i_tr.append(np.full(n_train, index[uid], dtype=np.int32))
            if n_val:
                x_va.append(X[len(X) - n_val :])
                y_va.append(Yt[len(X) - n_val :])
                i_va.append(np.full(n_val, index[uid], dtype=np.int32))

        keras = _keras()
        arch = self._arch(H, index)
        warm = bool(
            self.warm_start and getattr(self, "weights_", None) is not None and getattr(self, "arch_", None) == arch
        )
        self.horizon_ = H
        self.series_index_ = index
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
        if n_val_all:
            val_data = (self._inputs(np.concatenate(x_va), np.concatenate(i_va)), np.concatenate(y_va))
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.patience, restore_best_weights=True, verbose=0
                )
            )
        hist = model.fit(
            self._inputs(np.concatenate(x_tr), np.concatenate(i_tr)),
            np.concatenate(y_tr),
            validation_data=val_data,
            epochs=max(int(epochs), 1),
            batch_size=self.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
        self.model_ = model
        self.weights_ = model.get_weights()
        self.arch_ = arch
        self.warm_started_ = warm
        self.epochs_run_ = len(hist.history.get("loss", []))
        self.scales_ = {uid: k[4] for uid, k in kept.items()}
        self.skipped_ = skipped
        self.exchanges_ = dict(exchanges)
        self.residuals_ = None  # pooled scaled validation residuals (n_val_all, H)
        if n_val_all:
            self.residuals_ = np.concatenate(y_va) - self._net(np.concatenate(x_va), np.concatenate(i_va))
        log.debug(
            "%s: %d series, %d training windows, %d epochs, warm=%s",
            self.name,
            len(kept),
            n_train_all,
            self.epochs_run_,
            warm,
        )

    def _training_problem(self, ds: pd.DatetimeIndex, y: np.ndarray) -> str | None:
        """Why a series cannot be fitted on (unsorted dates, a price log returns cannot take), or None."""
        if not ds.is_monotonic_increasing or ds.has_duplicates:
            return "ds is not strictly increasing; sort and deduplicate its rows"
        bad = _price_problem(y)
        if bad is not None:
            return f"price {float(y[bad])} at {ds[bad].date()}; log returns need finite prices > 0"
        return None

    def _arch(self, steps: int, index: Mapping[str, int]) -> tuple:
        """What a warm start must keep: the layers' shapes and, with an embedding, which series each row is."""
        series = tuple(index.items()) if self.embedding_dim else None
        return (self.cell, self.window, self.units, self.layers, self.dropout, steps, self.embedding_dim, series)

    def _build(self) -> keras.Model:
        keras = _keras()
        inputs = keras.Input(shape=(self.window, 1))
        x = recurrent_stack(
            keras, inputs, cell=self.cell, units=self.units, layers=self.layers, dropout=self.dropout, seed=self.seed
        )
        model_inputs = [inputs]
        if self.embedding_dim:
            which = keras.Input(shape=(1,), dtype="int32")
            init = keras.initializers.RandomUniform(minval=-0.05, maxval=0.05, seed=self.seed * 1009 + 777)
            emb = keras.layers.Embedding(len(self.series_index_), self.embedding_dim, embeddings_initializer=init)
            x = keras.layers.Concatenate()([x, keras.layers.Flatten()(emb(which))])
            model_inputs.append(which)
        outputs = seeded_dense(keras, self.horizon_, seed=self.seed)(x)  # one output per step
        model = keras.Model(model_inputs, outputs)
        opt = keras.optimizers.Adam(learning_rate=self.learning_rate, clipnorm=self.clipnorm)
        model.compile(optimizer=opt, loss="mse")
        return model

    def _inputs(self, x: np.ndarray, index: np.ndarray) -> Any:
        """The network's inputs: scaled windows (n, window, 1) [, series rows (n, 1) with an embedding]."""
        xs = np.asarray(x, dtype="float32")[:, :, None]
        if not self.embedding_dim:
            return xs
        return [xs, np.asarray(index, dtype="int32").reshape(-1, 1)]

    def _serve(self) -> Callable[..., tf.Tensor]:
        """The forward pass graph-compiled ONCE for any batch size (see models.rnn RecurrentForecaster._serve)."""
        model = self._model()
        if getattr(self, "serve_", None) is None or self.serve_[0] is not model:
            import tensorflow as tf

            specs = [tf.TensorSpec(shape=(None, self.window, 1), dtype=tf.float32)]
            fn: Callable[..., tf.Tensor]
            if self.embedding_dim:
                specs.append(tf.TensorSpec(shape=(None, 1), dtype=tf.int32))
                fn = tf.function(lambda x, i: model([x, i], training=False), input_signature=specs)
            else:
                fn = tf.function(lambda x: model(x, training=False), input_signature=specs)
            self.serve_ = (model, fn)
        return self.serve_[1]

    # ---- forecasting -----------------------------------------------------------------------------------------
    def _net(self, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        """One batched forward pass: scaled windows (n, window) -> scaled outputs (n, horizon_)."""
        with training_lock():  # a pass traced while another thread trains would change that fit (see models.rnn)
            inputs = self._inputs(x, index)
            fn = self._serve()
            out = fn(*inputs) if isinstance(inputs, list) else fn(inputs)
            return np.asarray(out.numpy(), dtype=float)

    def _forecast(
        self, windows: np.ndarray, scales: np.ndarray, index: np.ndarray
    ) -> tuple[np.ndarray, Intervals | None]:
        """Forecasts (n, horizon_) from price windows (n, window) with per-row scales, in ONE network call."""
        log_w = np.log(windows)
        s = np.asarray(scales, dtype=float)[:, None]
        out = self._net((log_w - log_w[:, -1:]) / s, index)
        base = windows[:, -1:]
        mean = base * np.exp(s * out)
        if self.residuals_ is None:
            return mean, None
        intervals: Intervals = {}
        for level in LEVELS:
            q = conformal_quantile(self.residuals_, level)[None, :]
            intervals[level] = (base * np.exp(s * (out - q)), base * np.exp(s * (out + q)))
        return mean, intervals

    def _panel_origins(self, uid: str, ds: pd.DatetimeIndex, y: np.ndarray, cuts: pd.DatetimeIndex) -> _Origins:
        """One series' origins at `cuts`, each reading rows with ds <= its cutoff only; DataError for its problems."""
        if self.embedding_dim and uid not in self.series_index_:
            why = f" (left out of the fit: {self.skipped_[uid]})" if uid in self.skipped_ else ""
            raise DataError(
                f"{self.name} on {uid}: series not seen at fit{why}, and the network has a learnt embedding for the "
                f"{len(self.series_index_)} series it was fitted on; refit including it or use embedding_dim=0"
            )
        if not ds.is_monotonic_increasing or ds.has_duplicates:
            raise DataError(f"{self.name} on {uid}: ds must be strictly increasing; sort and deduplicate first")
        if not len(cuts):
            return _Origins(np.empty((0, self.window)), np.empty(0), self.series_index_.get(uid, 0))
        pos = ds.searchsorted(cuts)
        hit = (pos < len(ds)) & (ds[np.minimum(pos, max(len(ds) - 1, 0))] == cuts) if len(ds) else pos < 0
        if not hit.all():
            cut = cuts[int(np.flatnonzero(~hit)[0])]
            span = f"its rows run {ds[0].date()} to {ds[-1].date()}" if len(ds) else "it has no rows"
            raise DataError(
                f"{self.name} on {uid}: cutoff {cut.date()} is not a row of the series ({span}); forecast from "
                "sessions the series has a row at"
            )
        return self._origins(uid, ds, y, pos.astype(np.int64))

    def _origins(self, uid: str, ds: pd.DatetimeIndex, y: np.ndarray, ends: np.ndarray) -> _Origins:
        """Windows ending at row indices `ends`, their scales (fitted, else from rows up to each origin)."""
        W = self.window
        short = np.flatnonzero(ends < W - 1)
        if short.size:
            e = int(ends[short[0]])
            raise DataError(
                f"{self.name} on {uid}: the origin at {ds[e].date()} has {e + 1} rows up to it, the model needs "
                f"window={W}; start the forecasts later or use a shorter window"
            )
        fitted = uid in self.scales_
        if fitted:
            rows = np.unique(ends[:, None] + np.arange(-W + 1, 1)[None, :])  # only the windows' rows are read
        else:
            rows = np.arange(int(ends.max()) + 1)  # an unseen series' scale reads every row up to its origin
        bad = _price_problem(y[rows])
        if bad is not None:
            row = int(rows[bad])
            raise DataError(
                f"{self.name} on {uid}: price {float(y[row])} at {ds[row].date()}, read by a forecast origin; "
                "log returns need finite prices > 0: fix or drop those rows"
            )
        windows = y[ends[:, None] + np.arange(-W + 1, 1)[None, :]]
        if fitted:
            scales = np.full(len(ends), self.scales_[uid])
        else:
            log_y = np.log(y[rows])
            scales = np.array([log_return_scale(log_y[: e + 1]) for e in ends])
        return _Origins(windows, scales, self.series_index_.get(uid, 0))

    def _check_panel_fitted(self) -> None:
        if getattr(self, "weights_", None) is None:
            raise NotFittedError(f"{self.name}: call fit_panel() (or fit()) before predict_panel_origins()")

    def _check_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False) and getattr(self, "weights_", None) is not None:
            raise NotFittedError(
                f"{self.name}: fitted on a panel by fit_panel(); forecast it with predict_panel_origins(), or "
                "fit(train) on one series to use predict()/update()"
            )
        super()._check_fitted()

    # ---- the one-series contract: the degenerate panel --------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        steps = direct_steps(self, self.horizon)
        self._fit_series({self.unique_id_: (self.ds_, self.y_)}, steps, {self.unique_id_: self.exchange_})

    def _forecast_ends(self, ends: np.ndarray) -> tuple[np.ndarray, Intervals | None]:
        origins = self._origins(self.unique_id_, self.ds_, self.y_, np.asarray(ends, dtype=np.int64))
        index = np.full(len(ends), origins.index, dtype=np.int32)
        return self._forecast(origins.windows, origins.scales, index)
