"""Time-series regression: log price on a trend, exchange-calendar terms and covariates, with ARMA(p, q) errors.

    z_t = 100 * log(y_t) = x_t' beta + n_t,    (1 - B)^d n_t ~ ARMA(p, q),    d in {0, 1}

Why log prices: a trend in log price is a constant growth rate, which is how prices trend; a calendar effect on
a log price (or on its change, the log return) is a percentage of the price, the same on a $4 and a $400 stock;
and log returns have a far more stable variance than price changes, so one ARMA error model fits a decade. The
100x scale makes the coefficients percentages, which keeps the optimiser's parameters on similar scales. The point
forecast is the exponentiated log forecast (the conditional median, the best forecast under absolute error, i.e.
MASE); the 80/95% bands are the exponentiated log-scale bands of SARIMAX's get_forecast, exact for log-normal
errors.

Why d is chosen from the regression residuals (`d="auto"`, as forecast::auto.arima does with xreg): a regression
with ARMA errors needs stationary errors. The residuals of an OLS fit on the d = 0 design pass KPSS at 5% (the
trend-stationarity critical value, since the design holds a trend) on a trend-stationary series (d = 0: the level
reverts to its trend and calendar pattern), and fail on a stock's log price, which wanders like a random walk around
any line (d = 1: regression with ARIMA(p, 1, q) errors, i.e. log returns on the differenced design). KPSS with few
lags over-rejects on persistent errors: an AR(0.6) around a trend got d = 1 in 4 of 20 seeds (a random walk: 20 of
20); pass d=0 when the structure is known. Measured on the bokeh sample (run_backtest, horizon 5, step 5, 20 folds,
default refit every 10th fold; MASE relative to naive's): d = 1 was chosen for MSFT and AAPL (and IBM, GOOG) and
gave MSFT 0.997, AAPL 1.040; forcing d = 0 gave MSFT 0.996 but AAPL 4.37 (IBM 18.2, GOOG 2.26): a random walk
forced to revert to a fitted trend line drifts away from it, and the AR roots it needs (phi ~ 1) are rejected as
non-stationary. Modelling the level instead of log prices (log=False) scored about the same (1.016, 1.028) but its
95% band covered 50% of AAPL's outcomes against 98% for the log model. Stock prices being near random walks, the
model only ties naive there (0.997-1.04 over the four tickers); it wins where a series has real calendar or
trend-reverting structure (tests/models/test_ts_regression.py).

The regressors are built so they act on the differenced series, where the ARMA model lives:
    d = 0: [1, t, D_t]          level, trend and calendar effects on the (log) level
    d = 1: [t, sum_{s<=t} D_s]  the trend differences to the drift (mean log return), and the running counts of
                                each calendar dummy difference to the dummy itself: calendar effects on returns
Calendar dummies D_t, all from the series' exchange calendar (features.calendar), so known for any future
session: day of week (one dummy per weekday, the last one the baseline), month of year (off by default: eleven
more coefficients that cost 3-8% MASE on the sample and doubled fit time), and the session before and the session
after a weekday the exchange is closed (pre-/post-holiday sessions, the classic holiday effects; none on 24/7 or
24/5 calendars). Dummies constant over the training window are dropped.

Exogenous columns are handled exactly as ARIMAX handles them (Forecaster.exog_design): `cal_*` columns enter as
they are, every other column (a `+cov` covariate, `cov_*_level`) is lagged by `exog_lag` sessions, by default the
horizon the model is fitted for, so every forecast step only uses values observed at the origin; the warm-up rows
without a lagged value are dropped, and predict() refuses horizons beyond the lag.

(p, q) is chosen on the full grid p <= max_p, q <= max_q (default 2 each, nine candidates) by the AICc of a
conditional-sum-of-squares fit on the differenced series, regression coefficients estimated jointly (the ARIMA
family's search, models.arima); the chosen order is then fitted by exact Gaussian MLE in statsmodels' SARIMAX,
started from the CSS estimates (`estimator="css"` keeps the CSS estimates: one Kalman pass). update() extends the
fitted state with the new rows, parameters fixed, and the regressors for them and for future sessions come from
the calendar, so forecasts between refits condition on every observed session. Cost on the sample's ~3,200
sessions: 0.4-1.2 s per MLE fit (0.15 s with estimator="css", which cost ~0.7% MASE there), ~10 ms per
update + predict.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, ModelFitError
from features.calendar import ALWAYS_OPEN, next_sessions, sessions
from models._stats import quiet_numerics, single_thread_blas
from models.arima import SearchSpace as OrderSpace
from models.arima import _check_orders, difference, kpss_statistic, stepwise_search
from models.base import Forecaster, Intervals, is_calendar_column
from models.search_space import Choice, Int, SearchSpace

if TYPE_CHECKING:  # annotations only: statsmodels loads on first fit
    from statsmodels.tsa.statespace.sarimax import SARIMAXResults

log = logging.getLogger(__name__)

_SCALE = 100.0  # model 100 * log price: coefficients in percent
_LAG_WITHOUT_HORIZON = 5  # ARIMAX's default lag when fitted without a horizon
# KPSS 5% critical value for TREND stationarity (Kwiatkowski et al. 1992, table 1): the residuals tested come from
# a regression that includes a trend, so the level-stationarity value (0.463) would pass most random walks.
_KPSS_TREND_CRIT_5PCT = 0.146


def calendar_dummies(
    exchange: str, ds: pd.DatetimeIndex, *, day_of_week: bool = True, month: bool = False, holidays: bool = True
) -> pd.DataFrame:
    """0/1 calendar dummies for sessions `ds` of `exchange`, known in advance for any date (RangeIndex).

    Columns: `dow_<0..6>` (Monday = 0), `month_<1..12>`, `pre_holiday` (the next session is more than one weekday
    later: the exchange is closed on a weekday in between) and `post_holiday` (likewise before the session).
    All levels are returned; the model drops a baseline and the columns constant over its training window.
    """
    ds = pd.DatetimeIndex(ds).normalize()
    cols: dict[str, np.ndarray] = {}
    if day_of_week:
        dow = np.asarray(ds.day_of_week)
        for k in range(7):
            cols[f"dow_{k}"] = (dow == k).astype(float)
    if month:
        mon = np.asarray(ds.month)
        for k in range(1, 13):
            cols[f"month_{k}"] = (mon == k).astype(float)
    if holidays:
        pre, post = holiday_flags(exchange, ds)
        cols["pre_holiday"] = pre.astype(float)
        cols["post_holiday"] = post.astype(float)
    return pd.DataFrame(cols, index=range(len(ds)))


def holiday_flags(exchange: str, ds: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post): whether a weekday on which `exchange` is closed follows / precedes each session of `ds`.

    Read from the exchange's session list (plus the dates themselves, so a missing bar is no holiday); beyond
    the calendar's last session next_sessions' weekday fallback applies, so there are no holidays there.
    """
    ds = pd.DatetimeIndex(ds).normalize()
    n = len(ds)
    if n == 0 or exchange in ALWAYS_OPEN:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    grid = sessions(exchange, ds.min() - pd.Timedelta(days=15), ds.max())
    grid = grid.union(ds).union(next_sessions(exchange, ds.max(), 1)).as_unit("ns")
    pos = grid.searchsorted(ds)
    days = grid.values.astype("datetime64[D]")
    here = ds.values.astype("datetime64[D]")
    prev = days[np.maximum(pos - 1, 0)]
    nxt = days[np.minimum(pos + 1, len(days) - 1)]
    post = (pos > 0) & (np.busday_count(prev, here) > 1)
    pre = (pos + 1 < len(days)) & (np.busday_count(here, nxt) > 1)
    return pre, post


class TSRegression(Forecaster):
    """Regression of 100*log price on trend, calendar dummies and covariates with ARMA(p, q) errors (SARIMAX).

    Args:
        exog: extra regressors, handled as ARIMAX handles them (`cal_*` as-is, others lagged by `exog_lag`).
        exog_lag: None lags non-calendar regressors by the fit horizon (5 when fitted without one).
        d: 0 (errors stationary around the regression), 1 (ARIMA(p,1,q) errors) or "auto" (KPSS on the OLS
            residuals).
        max_p, max_q: the (p, q) grid searched by CSS AICc.
        day_of_week, month, holidays: which calendar dummies enter the regression.
        log: model log prices (needs y > 0); False models the level itself.
        estimator: "mle" (exact MLE from the CSS start) or "css" (CSS estimates, one Kalman pass).
    """

    default_name: ClassVar[str] = "ts_regression"
    supports_exog: ClassVar[bool] = True
    supports_intervals: ClassVar[bool] = True
    # Up to 10 regressors + 4 ARMA coefficients: 60 sessions leave ~45 residual degrees of freedom.
    min_train_size: ClassVar[int] = 60
    exog_param: ClassVar[str | None] = "exog"
    # As ARIMAX: with d = 1 a covariate's level enters as its change, i.e. its return.
    covariate_kinds: ClassVar[tuple[str, ...]] = ("level",)
    search_space: ClassVar[SearchSpace] = {
        "max_p": Int(0, 3),
        "max_q": Int(0, 3),
        "day_of_week": Choice(True, False),
        "month": Choice(False, True),
        "holidays": Choice(True, False),
    }

    # Fitted state (annotations only: clone() drops every `_` attribute).
    d_: int
    t_: int  # rows designed so far: the trend index of the last seen row
    counts_: np.ndarray  # d = 1: running count of each calendar dummy up to the last seen row
    calendar_columns_: tuple[str, ...]
    results_: SARIMAXResults

    def __init__(
        self,
        *,
        exog: tuple[str, ...] = (),
        exog_lag: int | None = None,
        d: Literal["auto", 0, 1] = "auto",
        max_p: int = 2,
        max_q: int = 2,
        day_of_week: bool = True,
        month: bool = False,
        holidays: bool = True,
        log: bool = True,
        estimator: Literal["mle", "css"] = "mle",
    ) -> None:
        _check_orders(self.name, max_p=max_p, max_q=max_q)
        if d not in ("auto", 0, 1) or isinstance(d, bool):
            raise ConfigError(f"{self.name}: d must be 'auto', 0 or 1, got {d!r}")
        if exog_lag is not None and (isinstance(exog_lag, bool) or int(exog_lag) != exog_lag or exog_lag < 1):
            raise ConfigError(f"{self.name}: exog_lag must be a positive integer, got {exog_lag!r}")
        if estimator not in ("mle", "css"):
            raise ConfigError(f"{self.name}: estimator must be 'mle' or 'css', got {estimator!r}")
        self.exog = tuple(exog)
        self.exog_lag = exog_lag
        self.d = d
        self.max_p = max_p
        self.max_q = max_q
        self.day_of_week = day_of_week
        self.month = month
        self.holidays = holidays
        self.log = log
        self.estimator = estimator

    # ---- exogenous columns: ARIMAX's convention ---------------------------------------------------
    def needs_horizon(self) -> bool:
        """True with a non-calendar regressor and no explicit exog_lag: its lag follows the fit horizon."""
        return self.exog_lag is None and any(not is_calendar_column(c) for c in self.exog_columns)

    def _lag(self) -> int:
        if self.exog_lag is not None:
            return int(self.exog_lag)
        return int(getattr(self, "fit_horizon_", None) or _LAG_WITHOUT_HORIZON)

    def _user_design(self, horizon: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(history rows, `horizon` future rows) of the user's exog columns (no columns when there are none)."""
        if not self.exog_columns:
            return np.empty((len(self.ds_), 0)), np.empty((horizon, 0))
        hist, fut = self.exog_design(self._lag(), horizon)
        return hist.to_numpy(dtype=float), fut.to_numpy(dtype=float)

    def _n_skip(self, user: np.ndarray) -> int:
        """Leading rows whose lagged regressors are not known yet (the lag, indicator warm-up)."""
        bad = np.flatnonzero(~np.isfinite(user).all(axis=1))
        if bad.size and not (bad == np.arange(bad.size)).all():
            row = int(bad[np.argmax(bad != np.arange(bad.size))])
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"exogenous columns {list(self.exog_columns)} have missing values inside the history "
                f"(row {row}, {self.ds_[row].date()}); fill or drop them before fitting",
            )
        return int(bad[-1]) + 1 if bad.size else 0

    # ---- the regression design --------------------------------------------------------------------
    def _dummies(self, ds: pd.DatetimeIndex) -> np.ndarray:
        frame = calendar_dummies(
            self.exchange_, ds, day_of_week=self.day_of_week, month=self.month, holidays=self.holidays
        )
        return frame.reindex(columns=list(self.calendar_columns_), fill_value=0.0).to_numpy(dtype=float)

    def _design(self, ds: pd.DatetimeIndex, user: np.ndarray) -> np.ndarray:
        """Regressors for rows `ds` following the last designed row (advances the trend and running counts)."""
        n = len(ds)
        t = self.t_ + np.arange(1, n + 1, dtype=float)
        dummies = self._dummies(ds)
        if self.d_ == 0:
            parts = [np.ones((n, 1)), t[:, None], dummies]
        else:
            parts = [t[:, None], self.counts_ + np.cumsum(dummies, axis=0)]
        return np.hstack([*parts, user])

    def _advance(self, ds: pd.DatetimeIndex) -> None:
        """Move the trend index and the running dummy counts past rows `ds`."""
        self.t_ += len(ds)
        if self.d_ == 1:
            self.counts_ = self.counts_ + self._dummies(ds).sum(axis=0)

    def _target(self, y: np.ndarray) -> np.ndarray:
        return _SCALE * np.log(y) if self.log else np.asarray(y, dtype=float)

    def _untarget(self, z: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(z, dtype=float) / _SCALE) if self.log else np.asarray(z, dtype=float)

    # ---- contract ---------------------------------------------------------------------------------
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        if self.log and np.any(y <= 0.0):
            first = self.ds_[int(np.flatnonzero(y <= 0.0)[0])].date()
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"{int(np.sum(y <= 0.0))} non-positive values (first {first}) cannot be logged; pass log=False "
                "to model the level",
            )
        user, _ = self._user_design()
        skip = self._n_skip(user)
        ds, y, user = self.ds_[skip:], y[skip:], user[skip:]
        if len(y) < self.min_train_size:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"{len(y)} training sessions after dropping {skip} rows without lagged regressors, needs at "
                f"least {self.min_train_size}; use a longer history or a shorter exog_lag",
            )
        if np.ptp(y) == 0.0:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"constant series (every value {y[0]:g}): no variance to regress; use naive for flat series",
            )
        z = self._target(y)
        raw = calendar_dummies(
            self.exchange_, ds, day_of_week=self.day_of_week, month=self.month, holidays=self.holidays
        )
        self.calendar_columns_ = _identified(raw)
        with single_thread_blas(), quiet_numerics():
            self.t_, self.d_, self.counts_ = 0, 0, np.zeros(len(self.calendar_columns_))
            levels = self._design(ds, user)  # the d = 0 design: what the OLS residuals for "auto" regress on
            self.d_ = self._choose_d(z, levels)
            exog = levels if self.d_ == 0 else self._design(ds, user)
            self.regressors_ = self._names()
            w, Xw = difference(z, self.d_, 0, 1), difference(exog, self.d_, 0, 1)
            space = OrderSpace(int(self.max_p), int(self.max_q), 0, 0, int(self.max_p + self.max_q), False)
            search = stepwise_search(w, Xw, space, stepwise=False)
            best = search.best
            if not np.isfinite(best.aicc):
                raise ModelFitError(
                    self.name,
                    self.unique_id_,
                    f"no ARMA(p<={self.max_p}, q<={self.max_q}) error model had stationary, invertible roots "
                    f"(d={self.d_}); try d=1",
                )
            self.order_ = (best.order[0], self.d_, best.order[1])
            self.css_aicc_ = best.aicc
            self.search_ = {f"{o[0]},{o[1]}": s for o, s in search.tried.items()}
            self.results_ = self._estimate(z, exog, np.array([*best.params, best.sigma2]))
            self._advance(ds)
        self.params_ = np.asarray(self.results_.params, dtype=float)
        k = len(self.regressors_)
        self.coef_ = dict(zip(self.regressors_, self.params_[:k].tolist(), strict=True))

    def _choose_d(self, z: np.ndarray, levels: np.ndarray) -> int:
        """d as given, or 1 when the OLS residuals on the d = 0 design (trend included) fail KPSS at 5%."""
        if self.d != "auto":
            return int(self.d)
        beta = np.linalg.lstsq(levels, z, rcond=None)[0]
        return int(kpss_statistic(z - levels @ beta) >= _KPSS_TREND_CRIT_5PCT)

    def _names(self) -> tuple[str, ...]:
        user = list(self.exog_columns)
        if self.d_ == 0:
            return ("const", "trend", *self.calendar_columns_, *user)
        return ("drift", *self.calendar_columns_, *user)

    def _estimate(self, z: np.ndarray, exog: np.ndarray, start: np.ndarray) -> SARIMAXResults:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        model = SARIMAX(z, exog=exog, order=self.order_, trend="n")
        ok = len(start) == len(model.param_names) and np.all(np.isfinite(start))
        if self.estimator == "css" and ok:
            return model.filter(start)
        return model.fit(start_params=start if ok else None, disp=False)

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        n = len(y_new)
        ds = self.ds_[-n:]  # the base class has appended the new rows already
        user = self._user_design()[0][-n:]
        with single_thread_blas(), quiet_numerics():
            self.results_ = self.results_.extend(self._target(y_new), exog=self._design(ds, user))
        self._advance(ds)

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        _, user = self._user_design(horizon)  # refuses horizon > lag when lagged regressors are used
        exog = self._design(self.future_ds(horizon), user)
        with single_thread_blas(), quiet_numerics():
            fc = self.results_.get_forecast(horizon, exog=exog)
            mean = self._untarget(np.asarray(fc.predicted_mean, dtype=float))
            intervals: Intervals = {}
            for level in (80, 95):
                ci = self._untarget(np.asarray(fc.conf_int(alpha=1.0 - level / 100.0), dtype=float))
                intervals[level] = (ci[:, 0], ci[:, 1])
        return mean, intervals


def _identified(dummies: pd.DataFrame) -> tuple[str, ...]:
    """The dummy columns the regression can identify: non-constant, minus one baseline level per group.

    The baseline (the last level present, e.g. Friday, December) is absorbed by the constant or the drift.
    """
    varying = [c for c in dummies.columns if dummies[c].nunique() > 1]
    keep = []
    for prefix in ("dow_", "month_"):
        group = [c for c in varying if c.startswith(prefix)]
        # All levels present and summing to one: drop the last, else they are collinear with the constant.
        covers = bool(group) and bool((dummies[group].sum(axis=1) == 1.0).all())
        keep += group[:-1] if covers else group
    keep += [c for c in varying if not c.startswith(("dow_", "month_"))]
    return tuple(keep)
