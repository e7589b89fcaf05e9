"""Prophet: piecewise-linear trend + weekly/yearly seasonality + the ticker's market holidays, MAP-fitted.

Design choices (why, not what):
- Holidays come from the exchange's own calendar (exchange-calendars): weekdays that are not sessions are
  closures. A closure has no observation and is never forecast, so an effect ON the closed day is
  unidentifiable and useless; what markets show is behaviour AROUND closures. We therefore turn each run of
  consecutive closures into two Prophet "holidays" on trading days: `before <name>` on the last session
  before it and `after <name>` on the first session after it. Names come from the `holidays` package
  (NYSE / KRX financial calendars), normalised so e.g. "Christmas Day (observed)" and "Christmas Day" share
  one coefficient; one-off closures (hurricanes, days of mourning) share one `special closure` name. The frame
  spans the whole exchange calendar (1985 to its last session), so it is identical for every series and fold
  of one exchange: warm starts keep the same parameter shapes and `cross_validation` copies match exactly.
- 80 and 95 % intervals from ONE set of predictive samples (`Prophet.predictive_samples`) and its quantiles,
  instead of two models with different `interval_width`s. The point forecast is Prophet's own `yhat`
  (computed with sampling switched off, which is what `predict` returns for `yhat` anyway), so it equals
  plain Prophet and `prophet.diagnostics.cross_validation` exactly. `uncertainty_samples=0` skips sampling.
- Warm starts: a refit of an already fitted instance (or `warm_start_from=<fitted model>`) passes the previous
  MAP parameters as Stan `init` (Prophet docs, "Updating fitted models"); Prophet falls back to its default
  init for any parameter whose shape changed.
- `update()`: Prophet has no filter state. New rows extend the recorded history (the base class does that),
  so `predict` returns the forecast for the sessions after the LAST OBSERVED one, but from the curve fitted at
  the last `fit`: new observations do not move the level until the next refit.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError
from common.schema import DS, LEVELS, YHAT, Y
from common.timing import held
from features.calendar import sessions
from models.base import Forecaster, Intervals, is_calendar_column
from models.search_space import Float, SearchSpace

if TYPE_CHECKING:  # annotations only: Prophet (and Stan) load on first fit
    from prophet import Prophet

log = logging.getLogger(__name__)

# Prophet's own column names: its API requires exactly these (they equal our DS/Y constants).
_P_DS, _P_Y, _P_YHAT = DS, Y, YHAT
_QUIET_LOGGERS = ("cmdstanpy", "prophet", "prophet.plot", "prophet.models")
# Prophet draws its predictive samples from numpy's GLOBAL generator (no Generator argument). Units run in threads
# (the Prefect task runner), so two Prophet units seeding and drawing at once interleaved their draws and the same
# backtest gave different intervals run to run (measured: 30 of 400 rows of the sample's 95% bounds). Seeding,
# drawing and restoring happen under this lock, one model at a time.
_GLOBAL_RNG = threading.Lock()
_SPECIAL = "special closure"
_MIN_OCCURRENCES = 3  # names seen fewer times across the calendar are one-offs


def _quiet_stan_logs() -> None:
    """cmdstanpy logs two INFO lines per fit and prophet.plot an ERROR about plotly on import: silence them."""
    try:  # cmdstanpy installs its handler (and level DEBUG) on first use; do that now, then override the level
        from cmdstanpy.utils import get_logger

        get_logger()
    except ImportError:  # pragma: no cover - prophet always ships cmdstanpy
        pass
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


# Prophet's internals we wrap: a Stan backend's prepare_data(init, data) -> (init, data), and
# make_all_seasonality_features(df) -> (features, prior scales, component columns, modes).
_PrepareData = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
_Modes = dict[Literal["additive", "multiplicative"], list[str]]
_Features = tuple[pd.DataFrame, list[float], pd.DataFrame, _Modes]
_SeasonalityFeatures = Callable[[pd.DataFrame], _Features]


@contextmanager
def _quiet_prophet_calls() -> Iterator[None]:
    """Prophet 1.5 calls pandas APIs deprecated in pandas 3; hide those warnings around our Prophet calls only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pandas' Pandas4Warning subclasses it
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _as_arrays(prepare: _PrepareData) -> _PrepareData:
    """Wrap a Prophet backend's `prepare_data` so the Stan data holds numpy arrays instead of Python lists.

    Written by hand because the libraries are slow here: Prophet's CmdStanPy backend turns every array into a
    list, and stanio then walks those lists element by element in Python before writing the JSON (a million
    calls, ~40% of a warm-started fit on 2,000 sessions, profiled). Given arrays, stanio converts each in one
    C call. The numbers written are the same floats, so fits are identical to plain Prophet's.
    """

    def prepare_data(init: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        inits, stan_data = prepare(init, data)
        return inits, {k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in stan_data.items()}

    return prepare_data


# What make_all_seasonality_features returns besides the rows: prior scales, component columns, modes, and the
# train_holiday_names it records on the model.
_FeatureOutputs = tuple[list[float], pd.DataFrame, _Modes, pd.Series | None]


class _FeatureRows:
    """Prophet's seasonality and holiday feature rows, kept per date across one forecaster's refits.

    Written by hand because Prophet is slow here: `make_all_seasonality_features` rebuilds the whole feature
    matrix (Fourier terms of every date, a loop over the holiday rows, a pandas crosstab of the components) on
    every fit, predict and predictive_samples call, i.e. three times per backtest fold on a history that only
    grew by a few sessions: two thirds of the Python time of a warm refit (profiled on W1). Without extra
    regressors or conditional seasonalities a row is a function of its date alone, so when every date of a call
    has been seen under the same configuration, the rows and Prophet's own outputs of that configuration are
    reused, and the one thing the method records on the model (the holiday names seen in fit) is set as Prophet
    would. Any other call runs Prophet's code on the whole frame, as before. Fits are identical (tested).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._rows: pd.DataFrame | None = None
        self._outputs: _FeatureOutputs | None = None

    def install(self, model: Prophet) -> None:
        original = model.make_all_seasonality_features

        def make_all_seasonality_features(df: pd.DataFrame) -> _Features:
            return self._features(model, original, df)

        # Deliberately replaces the bound method on this one instance (the class and other models are untouched).
        model.make_all_seasonality_features = make_all_seasonality_features  # type: ignore[method-assign]

    @staticmethod
    def _configuration(model: Prophet) -> tuple | None:
        """What the rows depend on besides the date; None when they depend on more than the date."""
        if model.extra_regressors or any(p["condition_name"] is not None for p in model.seasonalities.values()):
            return None
        # The names a fit records; a predict's holiday frame may hold only the forecast dates' rows.
        fitted, holidays = model.train_holiday_names, model.holidays
        names = fitted if fitted is not None else (() if holidays is None else holidays["holiday"])
        names = tuple(sorted(set(names)))
        settings = (model.holidays_prior_scale, model.holidays_mode, model.country_holidays)
        return repr(sorted(model.seasonalities.items())), names, settings

    def _features(self, model: Prophet, original: _SeasonalityFeatures, df: pd.DataFrame) -> _Features:
        key = self._configuration(model)
        if key is None:
            return original(df)
        dates = pd.DatetimeIndex(df[_P_DS])
        if (
            key == self._key
            and self._rows is not None
            and self._outputs is not None
            and dates.isin(self._rows.index).all()
        ):
            prior_scales, component_cols, modes, holiday_names = self._outputs
            if model.train_holiday_names is None and holiday_names is not None:
                model.train_holiday_names = holiday_names.copy()
            rows = self._rows.reindex(dates).reset_index(drop=True)
            return rows, list(prior_scales), component_cols.copy(), {k: list(v) for k, v in modes.items()}
        features, prior_scales, component_cols, modes = original(df)
        rows = features.set_axis(dates)
        rows = rows[~rows.index.duplicated()]
        if key == self._key and self._rows is not None and list(rows.columns) == list(self._rows.columns):
            rows = pd.concat([self._rows, rows[~rows.index.isin(self._rows.index)]])
        self._key, self._rows = key, rows
        holiday_names = model.train_holiday_names
        self._outputs = (
            list(prior_scales),
            component_cols.copy(),
            {k: list(v) for k, v in modes.items()},
            None if holiday_names is None else holiday_names.copy(),
        )
        return features, prior_scales, component_cols, modes


def _normalise_holiday_name(name: str | None) -> str | None:
    if not name:
        return None
    name = name.split(";")[0].strip()
    name = re.sub(r"\s*\(observed\)$", "", name)
    name = re.sub(r"^(Alternative holiday for|The day preceding|The second day of)\s+", "", name)
    return name.strip() or None


_HOLIDAY_LIBRARY = {"XNYS": ("NYSE", None), "XNAS": ("NYSE", None), "XKRX": ("XKRX", "en_US")}


@lru_cache(maxsize=8)
def _market_holidays_cached(exchange: str) -> pd.DataFrame | None:
    if exchange not in _HOLIDAY_LIBRARY:  # 24/7 crypto, 24/5 FX: no closures worth modelling
        return None
    import holidays as holidays_lib

    sess = sessions(exchange, "1900-01-01", "2200-01-01")  # clamped to the calendar's own bounds
    if len(sess) < 2:
        return None
    closed = pd.bdate_range(sess[0], sess[-1]).difference(sess)
    if closed.empty:
        return None
    market, language = _HOLIDAY_LIBRARY[exchange]
    years = range(sess[0].year, sess[-1].year + 1)
    named = holidays_lib.financial_holidays(market, years=years, language=language)
    # Closures sharing the same previous session form one episode (e.g. Chuseok's three days).
    pos = sess.searchsorted(closed)  # index of the first session after each closed day
    episodes: dict[int, str | None] = {}
    for day, after_idx in zip(closed, pos, strict=True):
        name = _normalise_holiday_name(named.get(day))
        if episodes.get(after_idx) is None:
            episodes[after_idx] = name
    after_idx = np.array(sorted(episodes))
    after_idx = after_idx[(after_idx > 0) & (after_idx < len(sess))]
    names = pd.Series([episodes[i] or _SPECIAL for i in after_idx])
    counts = names.value_counts()
    names = names.where(names.map(counts) >= _MIN_OCCURRENCES, _SPECIAL)
    frame = pd.concat(
        [
            pd.DataFrame({"holiday": "before " + names, _P_DS: sess[after_idx - 1]}),
            pd.DataFrame({"holiday": "after " + names, _P_DS: sess[after_idx]}),
        ],
        ignore_index=True,
    )
    frame["lower_window"] = 0
    frame["upper_window"] = 0
    return frame.sort_values([_P_DS, "holiday"], ignore_index=True)


def market_holidays(exchange: str) -> pd.DataFrame | None:
    """Prophet `holidays` frame (holiday, ds, lower_window, upper_window) for an exchange, or None (24/x)."""
    frame = _market_holidays_cached(exchange)
    return None if frame is None else frame.copy()


def _trim_holidays(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows with start <= ds <= end, plus the first row of every other name (Prophet loops over all rows).

    Prophet creates one feature column per name; a name without a row in the range gets an all-zero column
    either way, so parameter shapes and fitted values equal those of the full-calendar frame (the
    cross_validation test checks this), while fit and predict skip hundreds of irrelevant rows.
    """
    keep = frame[_P_DS].between(start, end)
    placeholders = frame[~frame["holiday"].isin(frame.loc[keep, "holiday"])].drop_duplicates("holiday")
    return pd.concat([placeholders, frame[keep]], ignore_index=True)


def stan_init(model: Prophet) -> dict[str, Any]:
    """A fitted Prophet's MAP parameters in the form Stan's `init` takes (Prophet docs, warm start)."""
    res: dict[str, Any] = {}
    for pname in ("k", "m", "sigma_obs"):
        res[pname] = float(np.mean(model.params[pname]))
    for pname in ("delta", "beta"):
        res[pname] = np.mean(model.params[pname], axis=0)
    return res


class ProphetForecaster(Forecaster):
    """Prophet with market holidays, optional known-ahead regressors, 80/95 intervals and warm-started refits.

    Args:
        changepoint_prior_scale, seasonality_prior_scale, changepoint_range: Prophet's own (same defaults).
        regressors: exog column names; `cal_` calendar columns are used as-is (known ahead), all others lagged
            by `exog_lag` sessions (so predict(h) needs h <= exog_lag when any such column is used).
        exog_lag: None (default) lags by the horizon the model is fitted for, the shortest lag that keeps every
            step's regressors known (the engine passes the run's horizon: needs_horizon() is True with such
            regressors); 1 when fitted without a horizon.
        uncertainty_samples: predictive samples for the intervals; 0 = point forecasts only (10x faster).
        interval_width: passed to Prophet for parity with a plain Prophet; our 80/95 bands do not use it.
        warm_start_from: a fitted ProphetForecaster (or Prophet, or a stan_init dict) whose parameters
            initialise the first fit.
        seed: seeds the predictive sampling (numpy global RNG, restored afterwards).
        warm_tol_rel_grad: CmdStan's `tol_rel_grad` for warm-started refits (None = Stan's default, 1e7).
            Prophet's MAP objective is very flat along the changepoint deltas: after a warm start LBFGS spends
            most of its iterations moving yhat by a few 0.1%. Measured on W1 (50 folds x 4 tickers), stopping
            warm refits at 1e9 cut CmdStan time by 37-62% and left yhat as close to a cold, fully converged fit
            (mean relative difference ~1e-3) as warm refits at the default tolerance are; MASE moved by 0.04%
            (benchmarks/bench_backtest.py --part prophet).
            Cold fits always use Stan's defaults, so a first fit equals plain Prophet's.
        optimize_args: extra arguments for CmdStan's `optimize` in every fit (Prophet passes `fit` keyword
            arguments through), e.g. {"history_size": 10}; None = Prophet's own settings.
    """

    default_name: ClassVar[str] = "prophet"
    supports_exog: ClassVar[bool] = True
    supports_intervals: ClassVar[bool] = True
    # Prophet has no filter state: update() leaves the fitted curve as it was, so between refits forecasts come
    # from a stale trend level. On W1 refit_every=5 lost 12% MASE against refitting at every fold; refits are
    # warm-started, so refitting at every fold is the default.
    default_refit_every: ClassVar[int] = 1
    min_train_size: ClassVar[int] = 10
    # Prophet's docs ("Hyperparameter tuning"): changepoint_prior_scale 0.001-0.5 and seasonality_prior_scale
    # 0.01-10 on log scales; changepoint_range from the default 0.8 up to 0.95 lets the trend bend late.
    search_space: ClassVar[SearchSpace] = {
        "changepoint_prior_scale": Float(0.001, 0.5, log=True),
        "seasonality_prior_scale": Float(0.01, 10.0, log=True),
        "changepoint_range": Float(0.8, 0.95),
    }
    exog_param: ClassVar[str | None] = "regressors"

    def __init__(
        self,
        *,
        growth: Literal["linear", "flat"] = "linear",
        weekly: bool = True,
        yearly: bool = True,
        holidays: bool = True,
        changepoint_prior_scale: float = 0.05,
        seasonality_prior_scale: float = 10.0,
        changepoint_range: float = 0.8,
        seasonality_mode: Literal["additive", "multiplicative"] = "additive",
        uncertainty_samples: int = 200,
        regressors: Sequence[str] = (),
        exog_lag: int | None = None,
        warm_start: bool = True,
        warm_start_from: ProphetForecaster | Prophet | dict[str, Any] | None = None,
        interval_width: float = 0.8,
        seed: int = 0,
        warm_tol_rel_grad: float | None = 1e9,
        optimize_args: Mapping[str, Any] | None = None,
    ) -> None:
        if growth not in ("linear", "flat"):
            raise ConfigError(f"prophet: growth must be 'linear' or 'flat' (logistic needs a cap), got {growth!r}")
        if seasonality_mode not in ("additive", "multiplicative"):
            raise ConfigError(f"prophet: seasonality_mode must be additive or multiplicative, got {seasonality_mode!r}")
        if int(uncertainty_samples) < 0:
            raise ConfigError(f"prophet: uncertainty_samples must be >= 0, got {uncertainty_samples}")
        if exog_lag is not None and (int(exog_lag) != exog_lag or exog_lag < 1):
            raise ConfigError(
                f"prophet: exog_lag must be a positive integer or None (the fit horizon), got {exog_lag!r}"
            )
        if not float(changepoint_prior_scale) > 0 or not float(seasonality_prior_scale) > 0:
            raise ConfigError(
                f"prophet: prior scales must be > 0, got changepoint_prior_scale={changepoint_prior_scale!r}, "
                f"seasonality_prior_scale={seasonality_prior_scale!r}"
            )
        if not 0.0 < float(changepoint_range) <= 1.0:
            raise ConfigError(f"prophet: changepoint_range must be in (0, 1], got {changepoint_range!r}")
        self.growth = growth
        self.weekly = weekly
        self.yearly = yearly
        self.holidays = holidays
        self.changepoint_prior_scale = changepoint_prior_scale
        self.seasonality_prior_scale = seasonality_prior_scale
        self.changepoint_range = changepoint_range
        self.seasonality_mode = seasonality_mode
        self.uncertainty_samples = int(uncertainty_samples)
        self.regressors = tuple(regressors)
        self.exog_lag = None if exog_lag is None else int(exog_lag)
        self.warm_start = warm_start
        self.warm_start_from = warm_start_from
        self.interval_width = interval_width
        self.seed = seed
        if warm_tol_rel_grad is not None and not float(warm_tol_rel_grad) > 0:
            raise ConfigError(f"prophet: warm_tol_rel_grad must be > 0 or None, got {warm_tol_rel_grad!r}")
        self.warm_tol_rel_grad = None if warm_tol_rel_grad is None else float(warm_tol_rel_grad)
        reserved = {"data", "init", "inits", "algorithm", "iter"} & set(optimize_args or {})
        if reserved:
            raise ConfigError(f"prophet: optimize_args cannot set {sorted(reserved)}; Prophet chooses those")
        self.optimize_args = None if optimize_args is None else dict(optimize_args)

    @property
    def exog_columns(self) -> tuple[str, ...]:
        return self.regressors

    def needs_horizon(self) -> bool:
        """True with a non-calendar regressor and no explicit exog_lag: the lag follows the fit horizon."""
        return self.exog_lag is None and any(not is_calendar_column(c) for c in self.regressors)

    def _lag(self) -> int:
        """The lag in use: exog_lag when given, else the fit horizon (1 when fitted without one)."""
        if self.exog_lag is not None:
            return self.exog_lag
        return int(getattr(self, "fit_horizon_", None) or 1)

    # ---- Prophet construction (public so tests and users can build the identical plain Prophet) ----------
    def prophet_kwargs(self, exchange: str) -> dict[str, Any]:
        """Constructor arguments of the plain `Prophet` this forecaster fits for a series on `exchange`."""
        return {
            "growth": self.growth,
            "weekly_seasonality": bool(self.weekly),
            "yearly_seasonality": bool(self.yearly),
            "daily_seasonality": False,
            "holidays": market_holidays(exchange) if self.holidays else None,
            "changepoint_prior_scale": self.changepoint_prior_scale,
            "seasonality_prior_scale": self.seasonality_prior_scale,
            "changepoint_range": self.changepoint_range,
            "seasonality_mode": self.seasonality_mode,
            "uncertainty_samples": self.uncertainty_samples,
            "interval_width": self.interval_width,
        }

    def _new_prophet(self) -> Prophet:
        from prophet import Prophet

        _quiet_stan_logs()  # after the import: cmdstanpy sets its own logger level when first imported
        kwargs = self.prophet_kwargs(self.exchange_)
        if kwargs["holidays"] is not None:  # same fit as the full frame, 5-10x cheaper predict
            kwargs["holidays"] = _trim_holidays(kwargs["holidays"], self.ds_[0], self.ds_[-1])
        m = Prophet(**kwargs)
        for col in self.regressors:
            m.add_regressor(col)
        self._feature_rows().install(m)
        backend = getattr(m, "stan_backend", None)
        if backend is not None and hasattr(backend, "prepare_data"):
            backend.prepare_data = _as_arrays(backend.prepare_data)
        return m

    def _feature_rows(self) -> _FeatureRows:
        rows = self.__dict__.get("_rows_cache")
        if rows is None:
            rows = self._rows_cache = _FeatureRows()
        return rows

    def _init_params(self) -> dict[str, Any] | None:
        if self.warm_start and getattr(self, "model_", None) is not None:
            return stan_init(self.model_)
        src = self.warm_start_from
        if src is None:
            return None
        if isinstance(src, dict):
            return src
        if isinstance(src, ProphetForecaster):
            src = getattr(src, "model_", None)
            if src is None:
                raise ConfigError("prophet: warm_start_from must be a FITTED ProphetForecaster")
        return stan_init(src)

    # ---- hooks --------------------------------------------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        frame = pd.DataFrame({_P_DS: self.ds_, _P_Y: y})
        if self.regressors:
            design, _ = self.exog_design(self._lag(), 0)
            frame = pd.concat([frame, design.reset_index(drop=True)], axis=1)
            frame = frame.dropna().reset_index(drop=True)  # the first exog_lag rows have no lagged value
        init = self._init_params()
        m = self._new_prophet()
        args: dict[str, Any] = {}
        if init is not None:
            args["init"] = init
            if self.warm_tol_rel_grad is not None:
                args["tol_rel_grad"] = self.warm_tol_rel_grad
        args.update(self.optimize_args or {})
        with _quiet_prophet_calls():
            m.fit(frame, **args)
        self.model_ = m
        self.warm_started_ = init is not None

    def _future_frame(self, horizon: int) -> pd.DataFrame:
        future = pd.DataFrame({_P_DS: self.future_ds(horizon)})
        if self.regressors:
            has_lagged = any(not is_calendar_column(c) for c in self.regressors)
            _, fut = self.exog_design(self._lag() if has_lagged else horizon, horizon)
            future = pd.concat([future, fut.reset_index(drop=True)], axis=1)
        return future

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        m = self.model_
        future = self._future_frame(horizon)
        n_samples, fit_holidays = m.uncertainty_samples, m.holidays
        m.uncertainty_samples = 0  # yhat does not depend on sampling; skip Prophet's own interval pass
        full = _market_holidays_cached(self.exchange_) if fit_holidays is not None else None
        if full is not None:  # only the forecast dates' rows; Prophet re-adds the other fitted names
            m.holidays = full[full[_P_DS].between(future[_P_DS].iloc[0], future[_P_DS].iloc[-1])].reset_index(drop=True)
        try:
            with _quiet_prophet_calls():
                mean = m.predict(future)[_P_YHAT].to_numpy(dtype=float)
            m.uncertainty_samples = n_samples
            if not n_samples:
                return mean, None
            with held(_GLOBAL_RNG):  # queued behind another unit's draws: a wait, not this unit's cost
                state = np.random.get_state()
                np.random.seed(self.seed)
                try:
                    with _quiet_prophet_calls():
                        draws = m.predictive_samples(future)[_P_YHAT]  # (horizon, n_samples)
                finally:
                    np.random.set_state(state)
        finally:
            m.uncertainty_samples, m.holidays = n_samples, fit_holidays
        intervals: Intervals = {}
        for level in LEVELS:
            alpha = (100 - level) / 200
            lo, hi = np.quantile(draws, [alpha, 1 - alpha], axis=1)
            intervals[level] = (np.minimum(lo, mean), np.maximum(hi, mean))
        return mean, intervals

    # ---- persistence: Prophet's own JSON serialisation, not a pickle of cmdstan handles -----------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_rows_cache", None)  # a cache: rebuilt on the next fit
        if state.get("model_") is not None:
            from prophet.serialize import model_to_json

            with _quiet_prophet_calls():
                state["model_"] = model_to_json(state["model_"])
        src = state.get("warm_start_from")
        if src is not None and not isinstance(src, dict):  # keep only the parameters, not a second model
            state["warm_start_from"] = self._init_from(src)
        return state

    @staticmethod
    def _init_from(src: ProphetForecaster | Prophet) -> dict[str, Any] | None:
        model = getattr(src, "model_", None) if isinstance(src, ProphetForecaster) else src
        return None if model is None else stan_init(model)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("model_"), str):
            from prophet.serialize import model_from_json

            _quiet_stan_logs()
            with _quiet_prophet_calls():
                state["model_"] = model_from_json(state["model_"])
        self.__dict__.update(state)
