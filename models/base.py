"""The Forecaster contract every model implements, plus the helpers that keep all models' output identical.

A Forecaster fits ONE series (a long frame with a single unique_id). The backtest engine and the flows
fan out over series, so each (series, model) pair is an independent unit that can be cached or retried.

Subclasses implement three small hooks on numpy arrays and never touch frames or dates:
    _fit(y, X)         estimate parameters on the training values
    _update(y_new, X_new)  condition on newly observed values, parameters fixed (default: refit-free append)
    _predict(h)        -> (mean[h], {level: (lo[h], hi[h])})
The base class does validation, dates (next sessions of the ticker's exchange), the output frame,
failure wrapping (ModelFitError) and save/load.
"""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, Self, TypeVar

import numpy as np
import pandas as pd

from common.errors import DataError, ModelFitError, NotFittedError
from common.schema import CALENDAR_PREFIX, CUTOFF, DS, ID, LEVELS, YHAT, H, Y
from common.schema import interval_columns as _interval_columns
from features.calendar import calendar_features, exchange_for, next_sessions, sessions_after_each
from models.naming import RegistryNamed
from models.search_space import SearchSpace

log = logging.getLogger(__name__)

Intervals = dict[int, tuple[np.ndarray, np.ndarray]]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def forecast_frame(
    unique_id: str,
    ds: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    yhat: np.ndarray,
    intervals: Intervals | None = None,
) -> pd.DataFrame:
    """The one forecast output format: unique_id, ds, h, yhat [, yhat_lo_80, yhat_hi_80, yhat_lo_95, ...]."""
    yhat = np.asarray(yhat, dtype=float)
    frame = pd.DataFrame(
        {
            ID: pd.Series([str(unique_id)] * len(yhat), dtype=object),
            DS: pd.DatetimeIndex(ds),
            H: np.arange(1, len(yhat) + 1, dtype=np.int64),
            YHAT: yhat,
        }
    )
    for level in LEVELS:
        if intervals and level in intervals:
            lo_col, hi_col = _interval_columns(level)
            lo, hi = intervals[level]
            frame[lo_col] = np.asarray(lo, dtype=float)
            frame[hi_col] = np.asarray(hi, dtype=float)
    return frame


@dataclass(frozen=True)
class NewRows:
    """Rows observed after a model's last seen session, validated once: what a block of origins conditions on."""

    ds: pd.DatetimeIndex
    y: np.ndarray
    X: pd.DataFrame | None

    def __len__(self) -> int:
        return len(self.y)

    def rows(self, start: int, stop: int) -> NewRows:
        """Rows [start, stop) of the block."""
        X = None if self.X is None else self.X.iloc[start:stop].reset_index(drop=True)
        return NewRows(self.ds[start:stop], self.y[start:stop], X)


@dataclass(frozen=True)
class OriginForecasts:
    """Forecasts of one series from several origins as arrays: row k is the origin at cutoffs[k], column j step j+1.

    The backtest engine reads the arrays directly; `to_frame` is the long contract format with a cutoff column.
    """

    unique_id: str
    cutoffs: pd.DatetimeIndex  # (n,)
    ds: np.ndarray  # (n, h) datetime64[ns]: the exchange sessions each origin forecasts
    mean: np.ndarray  # (n, h)
    intervals: Intervals | None  # level -> (lo (n, h), hi (n, h))

    def to_frame(self) -> pd.DataFrame:
        """unique_id, cutoff, ds, h, yhat [, yhat_lo_80, ...]: one row per origin and step, built once."""
        n, h = self.mean.shape
        frame = pd.DataFrame(
            {
                ID: pd.Series([self.unique_id] * (n * h), dtype=object),
                CUTOFF: np.repeat(self.cutoffs.values, h),
                DS: pd.DatetimeIndex(self.ds.reshape(-1)),
                H: np.tile(np.arange(1, h + 1, dtype=np.int64), n),
                YHAT: self.mean.reshape(-1),
            }
        )
        for level in LEVELS:
            if self.intervals and level in self.intervals:
                lo_col, hi_col = _interval_columns(level)
                lo, hi = self.intervals[level]
                frame[lo_col] = np.asarray(lo, dtype=float).reshape(-1)
                frame[hi_col] = np.asarray(hi, dtype=float).reshape(-1)
        return frame


def stack_intervals(parts: Sequence[Intervals | None]) -> Intervals | None:
    """Per-origin intervals ({level: (lo[h], hi[h])}, one per origin) stacked to {level: (lo[n, h], hi[n, h])};
    None unless every origin has every level the first one has."""
    if not parts or any(p is None for p in parts):
        return None
    levels = [lv for lv in LEVELS if all(lv in p for p in parts if p is not None)]
    return {
        lv: (np.vstack([p[lv][0] for p in parts if p]), np.vstack([p[lv][1] for p in parts if p])) for lv in levels
    } or None


def is_calendar_column(name: str) -> bool:
    return name.startswith(CALENDAR_PREFIX)


def direct_steps(model: Any, horizon: int | None) -> int:
    """Steps a direct multi-step model is trained to output: its constructor's `horizon` if set, else the horizon
    it is fitted for (`fit_horizon_`); DataError when neither is known or the constructor's is too short."""
    asked: int | None = getattr(model, "fit_horizon_", None)
    if horizon is None:
        if asked is None:
            raise DataError(
                f"{model.name} on {model.unique_id_}: a direct multi-step model needs the horizon at fit; "
                "call fit(train, horizon=h) or construct it with horizon=h"
            )
        return int(asked)
    if asked is not None and horizon < asked:
        raise DataError(
            f"{model.name} on {model.unique_id_}: constructed with horizon={horizon} but fitted for {asked} "
            f"steps; drop the horizon parameter (the run's horizon is used) or set horizon>={asked}"
        )
    return int(horizon)


def fit_model(
    model: Forecaster, train: pd.DataFrame, horizon: int | None, *, calendar: str | None = None
) -> Forecaster:
    """`model.fit(train)`, told the run's `horizon` when the model needs it (requires_horizon_in_fit) and the
    series' trading `calendar` when the run chose one (features.calendar; else the ticker's spelling decides).

    The one place engines and tasks fit a model, so every caller honours the horizon-in-fit contract.
    """
    needs = getattr(model, "needs_horizon", None)  # duck-typed models without the hook are fitted as before
    kwargs: dict[str, Any] = {"calendar": calendar} if calendar is not None else {}
    if horizon is not None and needs is not None and needs():
        kwargs["horizon"] = horizon
    return model.fit(train, **kwargs)


class Forecaster(RegistryNamed):
    """Base class of every pricecast model. Constructor arguments are never mutated; fitted state ends in `_`.

    `name` is the registry key the model was made under (models.naming); subclasses set `default_name`, the
    name of an instance built from the class directly. Descriptions live in the registry (ModelSpec.summary).
    """

    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = False
    # Fewest training sessions the model can fit on; engines and error messages use it.
    min_train_size: ClassVar[int] = 2
    # Backtest refit policy when none is asked for: refit every k-th fold, update() in between (0 = fit once).
    # Measured on W1 (benchmarks/bench_backtest.py --part refit): for models whose update() conditions on new
    # data, refitting every 10th fold kept MASE within 0.1% of refitting at every fold at about a third of the cost.
    default_refit_every: ClassVar[int] = 10
    # sktime's "requires-fh-in-fit": a direct multi-step model learns one output per step, so it must know at fit
    # time how many steps it will be asked for. Engines and tasks pass the run's horizon to fit() for these models
    # (see fit_model); predict(h) beyond the fitted horizon stays an error.
    requires_horizon_in_fit: ClassVar[bool] = False
    # The hyperparameters `<model>+tuned` searches (constructor argument -> range, models.search_space), read by
    # models.tuning.Tuned; empty = the model is not tunable and `--tune` refuses it.
    search_space: ClassVar[SearchSpace] = {}
    # The constructor argument that takes exogenous column names (`<model>+cov` adds the covariates to it);
    # None = the model takes none.
    exog_param: ClassVar[str | None] = None
    # Which covariate columns (features.covariates: "logret", "level") a `+cov` variant feeds this model. Returns by
    # default: scale-free and stationary, what a network or a regression on changes wants.
    covariate_kinds: ClassVar[tuple[str, ...]] = ("logret",)

    # ---- public contract -------------------------------------------------------------------------
    def fit(self, train: pd.DataFrame, *, horizon: int | None = None, calendar: str | None = None) -> Self:
        """Fit on a long frame `unique_id, ds, y [, exog...]` holding one series, sorted by ds.

        `horizon`: the most steps predict() will be asked for; used by models that declare requires_horizon_in_fit
        (kept as `fit_horizon_`), ignored by the others. `calendar`: the series' trading calendar (an
        exchange-calendars name, 24/7 or 24/5) whose sessions label the forecasts; default: the ticker's spelling.
        """
        if horizon is not None and (isinstance(horizon, bool) or int(horizon) != horizon or horizon <= 0):
            raise DataError(f"{self.name}: fit horizon must be a positive integer, got {horizon!r}")
        uid, ds, y, X = self._split(train, first=True)
        if len(y) < self.min_train_size:
            raise ModelFitError(
                self.name,
                uid,
                f"{len(y)} training sessions, needs at least {self.min_train_size}; "
                "use a longer history or fewer/later folds",
            )
        self.unique_id_ = uid
        self.exchange_ = calendar or exchange_for(uid)
        self.ds_ = ds
        self.y_ = y
        self.X_ = X
        self.fit_horizon_ = None if horizon is None else int(horizon)
        self._call(self._fit, y, X)
        self.is_fitted_ = True
        return self

    def needs_horizon(self) -> bool:
        """Whether fit() must be told the horizon: the class tag (an ensemble asks its members)."""
        return self.requires_horizon_in_fit

    def update(self, new: pd.DataFrame) -> Self:
        """Condition on newly observed rows (after the last seen session) without re-estimating parameters."""
        self._check_fitted()
        if new is None or len(new) == 0:
            return self
        uid, ds, y, X = self._split(new, first=False)
        if uid != self.unique_id_:
            raise DataError(f"{self.name}: update() got series {uid!r}, model was fitted on {self.unique_id_!r}")
        if ds[0] <= self.ds_[-1]:
            raise DataError(
                f"{self.name} on {uid}: update() rows must come after the last seen session "
                f"{self.ds_[-1].date()}, first new row is {ds[0].date()}"
            )
        self._call(self._condition, NewRows(ds, y, X))
        return self

    def predict(self, horizon: int) -> pd.DataFrame:
        """Forecast the next `horizon` trading sessions of the series' exchange."""
        self._check_fitted()
        horizon = self._horizon_arg(horizon)
        mean, intervals = self._call(self._predict, horizon)
        mean = np.asarray(mean, dtype=float)
        if mean.shape != (horizon,) or not np.all(np.isfinite(mean)):
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"forecast has shape {mean.shape} with {int(np.sum(~np.isfinite(mean)))} non-finite values, "
                f"expected {horizon} finite values",
            )
        future = next_sessions(self.exchange_, self.ds_[-1], horizon)
        return forecast_frame(self.unique_id_, future, mean, intervals if self.supports_intervals else None)

    def forecast_origins(self, history: pd.DataFrame, cutoffs: Sequence[pd.Timestamp], horizon: int) -> pd.DataFrame:
        """Forecasts from several origins with parameters fixed at the last fit, stacked with a `cutoff` column.

        The long-frame form of `predict_origins` (see there); equal to update() up to each cutoff + predict().
        """
        return self.predict_origins(history, cutoffs, horizon).to_frame()

    def predict_origins(self, history: pd.DataFrame, cutoffs: Sequence[pd.Timestamp], horizon: int) -> OriginForecasts:
        """Forecasts from several origins with parameters fixed at the last fit, as arrays.

        `history` holds the series at least up to the last cutoff; for each cutoff (ascending, none before the last
        fitted session) the model is conditioned on rows up to that cutoff only, then forecasts `horizon` steps.
        The rows are validated once and every origin's dates come from one calendar lookup; the forecasts come
        from `_forecast_block`: a loop of update + predict on arrays by default, one vectorised pass for models
        that override it (naive, moving average, ETS, ARIMA, the recurrent networks). The model ends conditioned
        on the last cutoff.
        """
        self._check_fitted()
        horizon = self._horizon_arg(horizon)
        cuts = pd.DatetimeIndex([pd.Timestamp(c) for c in cutoffs])
        if len(cuts) and not cuts.is_monotonic_increasing:
            raise DataError(f"{self.name}: cutoffs must be ascending, got {[str(c.date()) for c in cuts[:5]]}")
        if len(cuts) and cuts[0] < self.ds_[-1]:
            raise DataError(
                f"{self.name} on {self.unique_id_}: cutoff {cuts[0].date()} is before the last seen session "
                f"{self.ds_[-1].date()}; refit on data up to that cutoff instead"
            )
        empty = np.empty((0, horizon))
        if not len(cuts):
            return OriginForecasts(self.unique_id_, cuts, empty.astype("datetime64[ns]"), empty, None)
        new = self._rows_after(history, cuts[-1])
        counts = new.ds.searchsorted(cuts, side="right").astype(np.int64)  # new rows each origin conditions on
        before = np.datetime64(self.ds_[-1], "ns")
        picked = new.ds.values[np.maximum(counts - 1, 0)].astype("datetime64[ns]") if len(new) else before
        last_seen = pd.DatetimeIndex(np.where(counts > 0, picked, before))  # each origin's last seen session
        mean, intervals = self.forecast_block(new, counts, horizon)
        future = sessions_after_each(self.exchange_, last_seen, horizon)
        return OriginForecasts(
            self.unique_id_, cuts, future, mean, intervals if self.supports_intervals and intervals else None
        )

    def forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """`_forecast_block` with its output checked: (origins, horizon) finite forecasts, the model conditioned on
        every row of `new`. predict_origins calls it; an ensemble calls its members' (arrays, no dates or frames)."""
        n = len(counts)
        seen = len(self.y_)
        mean, intervals = self._call(self._forecast_block, new, counts, horizon)
        mean = np.asarray(mean, dtype=float)
        if len(self.y_) != seen + len(new):
            raise ModelFitError(
                self.name, self.unique_id_, "_forecast_block did not condition the model on the block's rows"
            )
        if mean.shape != (n, horizon) or not np.all(np.isfinite(mean)):
            bad = np.flatnonzero(~np.isfinite(mean).all(axis=1)) if mean.shape == (n, horizon) else np.array([])
            first = f", first at origin {int(bad[0]) + 1} of {n}" if bad.size else ""
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"forecasts have shape {mean.shape} with {int(np.sum(~np.isfinite(mean)))} non-finite values{first}; "
                f"expected {n} origins x {horizon} finite values",
            )
        return mean, intervals

    def clone(self) -> Self:
        """An unfitted copy with the same constructor arguments."""
        new = copy.copy(self)
        for key in [k for k in vars(new) if k.endswith("_") and not k.startswith("__")]:
            delattr(new, key)
        return new

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (public attributes not ending in `_`)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def save(self, path: str | Path) -> Path:
        """Persist a fitted model (pickle by default; Keras models override)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # atomic: a crash never leaves a half-written model
        return path

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        with Path(path).open("rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, Forecaster):
            raise DataError(f"{path} does not hold a pricecast model")
        return model

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ---- hooks for subclasses --------------------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        raise NotImplementedError

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        """Default: nothing to do beyond the history append the base class already made."""

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        raise NotImplementedError

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Forecasts (n_origins, horizon) from origins that condition on the first counts[k] rows of `new`.

        Must leave the model conditioned on every row of `new` (`_condition`, or `_append_rows` plus the model's
        own state update). Default: condition on each origin's rows and `_predict`, on arrays, no frames.
        """
        means, bands = [], []
        done = 0
        for count in counts:
            if count > done:
                self._condition(new.rows(done, int(count)))
                done = int(count)
            mean, intervals = self._predict(horizon)
            means.append(np.asarray(mean, dtype=float))
            bands.append(intervals)
        if done < len(new):
            self._condition(new.rows(done, len(new)))
        return np.vstack(means), stack_intervals(bands)

    def _condition(self, new: NewRows) -> None:
        """Append `new` to the seen history, then the model's `_update` (parameters fixed)."""
        self._append_rows(new)
        self._update(new.y, new.X)

    def _append_rows(self, new: NewRows) -> None:
        """Append `new` to the seen history only (a vectorised `_forecast_block` updates its state itself)."""
        self.ds_ = self.ds_.append(new.ds)
        self.y_ = np.concatenate([self.y_, new.y])
        if self.X_ is not None and new.X is not None:
            self.X_ = pd.concat([self.X_, new.X], ignore_index=True)

    # ---- helpers ---------------------------------------------------------------------------------
    @property
    def exog_columns(self) -> tuple[str, ...]:
        return tuple(getattr(self, "exog", ()) or ())

    def future_ds(self, horizon: int) -> pd.DatetimeIndex:
        """The `horizon` sessions after the last observed one, from the exchange calendar."""
        return next_sessions(self.exchange_, self.ds_[-1], horizon)

    def exog_design(self, lag: int, horizon: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Exogenous design known at forecast time: calendar columns as-is, every other column lagged by `lag`.

        Returns (train_design aligned to self.y_, future_design for `horizon` steps; no rows when horizon=0).
        The first `lag` training rows have NaN lagged values; callers drop or fill them. Requires horizon <= lag,
        since a feature lagged by `lag` sessions is only known `lag` steps ahead.
        """
        if horizon > lag:
            raise DataError(
                f"{self.name}: exogenous features lagged by {lag} sessions are unknown {horizon} steps ahead; "
                f"set exog_lag >= {horizon}"
            )
        cols = self.exog_columns
        cal_cols = [c for c in cols if is_calendar_column(c)]
        lag_cols = [c for c in cols if not is_calendar_column(c)]
        observed = self.exog_rows() if lag_cols else None
        hist_cal = calendar_features(self.ds_)[cal_cols] if cal_cols else pd.DataFrame(index=range(len(self.ds_)))
        lagged = observed[lag_cols].shift(lag).reset_index(drop=True) if observed is not None else None
        train = pd.concat([hist_cal, lagged], axis=1) if lagged is not None else hist_cal
        if horizon == 0:
            return train[list(cols)], train[list(cols)].iloc[:0]
        fut_ds = self.future_ds(horizon)
        fut_cal = calendar_features(fut_ds)[cal_cols] if cal_cols else pd.DataFrame(index=range(horizon))
        if observed is not None:
            n = len(observed)
            rows = observed[lag_cols].iloc[n - lag : n - lag + horizon].reset_index(drop=True)
            fut = pd.concat([fut_cal, rows], axis=1)
        else:
            fut = fut_cal
        return train[list(cols)], fut[list(cols)]

    def exog_rows(self) -> pd.DataFrame:
        """The observed non-calendar exogenous columns, one row per seen session (fit keeps them as `X_`)."""
        X = getattr(self, "X_", None)
        if X is None:
            raise NotFittedError(f"{self.name}: no exogenous rows seen yet; call fit() with {list(self.exog_columns)}")
        return X

    def _split(
        self, frame: pd.DataFrame, *, first: bool
    ) -> tuple[str, pd.DatetimeIndex, np.ndarray, pd.DataFrame | None]:
        missing = [c for c in (ID, DS, Y) if c not in frame.columns]
        if missing:
            raise DataError(f"{self.name}: input frame lacks column(s) {missing}; expected unique_id, ds, y")
        ids = frame[ID].astype(str).unique()
        if len(ids) != 1:
            raise DataError(
                f"{self.name}: a model instance fits one series, got {len(ids)} ({list(ids)[:5]}); "
                "fit one model per series (the backtest engine does this for you)"
            )
        uid = str(ids[0])
        ds = pd.DatetimeIndex(frame[DS])
        if not ds.is_monotonic_increasing or ds.has_duplicates:
            raise DataError(f"{self.name} on {uid}: ds must be strictly increasing; sort and deduplicate first")
        y = frame[Y].to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DataError(
                f"{self.name} on {uid}: y has {bad.size} missing/non-finite values, first at "
                f"{[str(d.date()) for d in ds[bad[:3]]]}; apply the ingest gap policy first"
            )
        X = None
        cols = self.exog_columns
        if cols:
            if not self.supports_exog:
                raise DataError(f"{self.name} does not take exogenous features, got {list(cols)}")
            need = [c for c in cols if not is_calendar_column(c)]
            absent = [c for c in need if c not in frame.columns]
            if absent:
                raise DataError(f"{self.name} on {uid}: exogenous column(s) {absent} missing from the input frame")
            X = frame[need].reset_index(drop=True).astype(float) if need else pd.DataFrame(index=range(len(frame)))
        return uid, ds, y, X

    def _horizon_arg(self, horizon: int) -> int:
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon <= 0:
            raise DataError(f"{self.name}: horizon must be a positive integer, got {horizon!r}")
        return int(horizon)

    def _rows_after(self, history: pd.DataFrame, last: pd.Timestamp) -> NewRows:
        """The rows of `history` after the last seen session up to `last`, validated as update() validates them."""
        hist_ds = pd.DatetimeIndex(history[DS])
        mask = (hist_ds > self.ds_[-1]) & (hist_ds <= last)
        if not mask.any():
            X = None if self.X_ is None else self.X_.iloc[:0]
            return NewRows(self.ds_[:0], np.empty(0), X)
        uid, ds, y, X = self._split(history.loc[mask], first=False)
        if uid != self.unique_id_:
            raise DataError(f"{self.name}: got series {uid!r}, model was fitted on {self.unique_id_!r}")
        return NewRows(ds, y, X)

    def _check_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(f"{self.name}: call fit() before predict()/update()")

    def _call(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Run a numeric hook; any failure becomes ModelFitError(model, series, reason)."""
        try:
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        except (ModelFitError, DataError, NotFittedError):
            raise
        except Exception as exc:  # numerical libraries raise anything; callers need one type
            uid = getattr(self, "unique_id_", "?")
            raise ModelFitError(self.name, uid, f"{type(exc).__name__}: {exc}") from exc
