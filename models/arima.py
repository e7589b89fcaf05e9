"""ARIMA family: AutoARIMA, seasonal SARIMA and ARIMAX, with a hand-written Hyndman-Khandakar order search.

Why hand-written: statsmodels estimates a given order but has no automatic order search; pmdarima's auto_arima
takes 7-22 s per series on this machine (a full state-space MLE per candidate); statsforecast's AutoARIMA is the
peer we benchmark against (benchmarks/bench_models.py) and stays a dev-only dependency.

How (Hyndman & Khandakar 2008, as forecast::auto.arima with approximation=TRUE does for long series):
1. d from repeated KPSS tests at 5 % (level stationarity; short lag truncation trunc(4 (n/100)^0.25) as ndiffs);
   seasonal D (SARIMA only) from the STL seasonal strength > 0.64 (nsdiffs' default "seas" test). KPSS is skipped
   after seasonal differencing decides D=1 only if the result is already stationary.
2. Stepwise search over (p, q[, P, Q]) from (2,2), (0,0), (1,0), (0,1): move +-1 on each order (and on p and q
   together), toggle the constant; score = AICc of a conditional-sum-of-squares (CSS) fit on the differenced
   series. A CSS fit is a Levenberg-Marquardt least-squares over scipy.signal.lfilter residuals: ~1-5 ms for
   2,000 points against 0.2-0.4 s for a state-space MLE, so the whole search costs well under the final fit.
   Every candidate conditions on the same first max lags, so their likelihoods cover identical observations and
   are comparable; candidates with AR/MA roots within 1.01 of the unit circle are rejected (as auto.arima).
3. Only the chosen order is fitted by exact Gaussian MLE (statsmodels ARIMA, state space), started from the CSS
   estimates. That final fit dominates the cost: ~0.1 s for ARIMA(0,1,0)-ARIMA(1,1,1) on 2,000 points, but
   2-7 s when the search picks a large model (ARMA(3,2) + regressors, seasonal terms) whose likelihood has a flat
   ridge of near-cancelling roots. `estimator="css"` keeps the CSS estimates instead (one Kalman pass, as R's
   method="CSS"): the forecasts differ little, fits cost the search alone; use it for many-refit backtests.
A drift (d + D = 1) enters as an explicit time regressor rather than statsmodels' trend="t": results.extend()
(used by update, O(new rows)) restarts statsmodels' own time trend at zero, which shifts the forecast by the
drift times the history length; an exogenous time column is extended correctly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, ModelFitError
from models._stats import (
    SEASONAL_STRENGTH_THRESHOLD,
    normal_intervals,
    quiet_numerics,
    seasonal_strength,
    single_thread_blas,
)
from models.base import Forecaster, Intervals, NewRows
from models.search_space import Int
from models.search_space import SearchSpace as HyperparameterSpace  # SearchSpace here is the order search's

if TYPE_CHECKING:  # annotations only: statsmodels loads on first fit
    from statsmodels.tsa.arima.model import ARIMA, ARIMAResults

log = logging.getLogger(__name__)

# KPSS 5 % critical value for level stationarity (Kwiatkowski et al. 1992, table 1).
_KPSS_CRIT_5PCT = 0.463
_ROOT_MARGIN = 1.01
# Levenberg-Marquardt iterations per CSS fit (each costs k+1 residual evaluations). Well-posed candidates converge
# in < 10; near-cancelling ARMA pairs on white noise would otherwise burn hundreds and are rejected anyway.
_CSS_MAX_ITER = 30
_MAX_STEPS = 60  # stepwise moves before giving up (auto.arima: 94); the search converges in < 10 here

Order = tuple[int, int, int, int, bool]  # p, q, P, Q, constant


# ---- unit-root / seasonal tests -------------------------------------------------------------------------------
def kpss_statistic(x: np.ndarray) -> float:
    """KPSS level-stationarity statistic with a Bartlett long-run variance, lags trunc(4 (n/100)^0.25)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    e = x - x.mean()
    lags = int(4 * (n / 100.0) ** 0.25)
    s = np.cumsum(e)
    lrv = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        lrv += 2.0 * (1.0 - lag / (lags + 1.0)) * float(e[lag:] @ e[:-lag]) / n
    if lrv <= 0.0:
        return 0.0
    return float(s @ s) / (n * n * lrv)


def choose_d(y: np.ndarray, max_d: int) -> int:
    """Smallest d in 0..max_d whose d-th difference passes KPSS at 5 % (as forecast::ndiffs).

    One guard on top: a further difference is only taken if it lowers the standard deviation. KPSS also rejects
    on heteroscedasticity, and price changes have a level-proportional variance, so a geometric random walk's
    first difference fails KPSS on about one series in five; differencing it again doubles the variance
    (the textbook sign of over-differencing) and turns a flat forecast into a trend extrapolation.
    """
    x = np.asarray(y, dtype=float)
    for d in range(max_d + 1):
        if d == max_d or len(x) < 4 or np.ptp(x) == 0.0 or kpss_statistic(x) < _KPSS_CRIT_5PCT:
            return d
        dx = np.diff(x)
        if d >= 1 and np.std(dx) >= np.std(x):
            return d
        x = dx
    return max_d


def choose_seasonal_d(y: np.ndarray, m: int, max_D: int) -> int:
    """D = 1 when the STL seasonal strength exceeds 0.64 (forecast::nsdiffs' default test), else 0."""
    if max_D < 1 or m < 2 or len(y) < 3 * m:
        return 0
    return int(seasonal_strength(y, m) > SEASONAL_STRENGTH_THRESHOLD)


def difference(x: np.ndarray, d: int, D: int, m: int) -> np.ndarray:
    """Apply D seasonal (lag m) then d ordinary differences along axis 0."""
    for _ in range(D):
        x = x[m:] - x[:-m]
    for _ in range(d):
        x = np.diff(x, axis=0)
    return x


# ---- conditional sum of squares ------------------------------------------------------------------------------
@dataclass
class CSSFit:
    """One scored candidate of the order search."""

    order: Order
    aicc: float
    params: np.ndarray  # const?, beta..., phi..., theta..., Phi..., Theta...
    sigma2: float


def _poly(coefs: np.ndarray, sign: float, step: int = 1) -> np.ndarray:
    """Lag polynomial 1 + sign * (c1 B^step + c2 B^2step + ...) as an array of coefficients."""
    out = np.zeros(len(coefs) * step + 1)
    out[0] = 1.0
    out[step::step] = sign * np.asarray(coefs)
    return out


def _polys(params: np.ndarray, order: Order, k_exog: int, m: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(constant, beta, AR polynomial, MA polynomial) with seasonal factors multiplied in."""
    p, q, P, Q, const = order
    i = int(const)
    c = float(params[0]) if const else 0.0
    beta = params[i : i + k_exog]
    i += k_exog
    phi, theta = params[i : i + p], params[i + p : i + p + q]
    i += p + q
    Phi, Theta = params[i : i + P], params[i + P : i + P + Q]
    ar = np.convolve(_poly(phi, -1.0), _poly(Phi, -1.0, m))
    ma = np.convolve(_poly(theta, 1.0), _poly(Theta, 1.0, m))
    return c, beta, ar, ma


def _ma_invert(ma: np.ndarray, u: np.ndarray) -> np.ndarray:
    """e with ma(B) e = u and pre-sample errors zero: an IIR filter.

    Calls the C core of scipy.signal.lfilter directly when available: the public wrapper's array-API checks
    cost ~70 us per call, 3-4x the filtering itself on 2,000 points, and the CSS search makes thousands of calls.
    """
    if len(ma) == 1:
        return u
    if _linear_filter is not None:
        return _linear_filter(np.array([1.0]), ma, u, -1)
    from scipy.signal import lfilter

    return lfilter([1.0], ma, u)


try:  # private but stable since scipy 0.x; the fallback above keeps us correct if it moves
    from scipy.signal._sigtools import _linear_filter
except ImportError:  # pragma: no cover
    _linear_filter = None


def _css_residuals(
    params: np.ndarray, w: np.ndarray, Xw: np.ndarray | None, order: Order, m: int, n_cond: int
) -> np.ndarray:
    k_exog = 0 if Xw is None else Xw.shape[1]
    c, beta, ar, ma = _polys(params, order, k_exog, m)
    x = w - c
    if k_exog:
        x = x - Xw @ beta
    u = np.convolve(x, ar)[n_cond : len(x)]  # exact AR filter once n_cond >= AR degree
    return _ma_invert(ma, u)


def _roots_ok(poly: np.ndarray) -> bool:
    poly = np.trim_zeros(poly, "b")
    if len(poly) <= 1:
        return True
    roots = np.roots(poly[::-1])  # numpy wants the highest power first
    return bool(np.all(np.abs(roots) > _ROOT_MARGIN))


def css_fit(w: np.ndarray, Xw: np.ndarray | None, order: Order, m: int, n_cond: int) -> CSSFit:
    """Fit one ARMA candidate to the differenced series by CSS and score it by AICc (inf if rejected)."""
    from scipy.optimize import least_squares

    p, q, P, Q, const = order
    k_exog = 0 if Xw is None else Xw.shape[1]
    x0 = np.zeros(int(const) + k_exog + p + q + P + Q)
    if Xw is not None and k_exog:  # OLS start for the regression coefficients
        design = np.column_stack([np.ones(len(w)), Xw]) if const else Xw
        coef = np.linalg.lstsq(design, w, rcond=None)[0]
        x0[: int(const) + k_exog] = coef
    elif const:
        x0[0] = float(np.mean(w))
    if len(x0) == 0:
        e = w[n_cond:]
    else:
        budget = _CSS_MAX_ITER * (len(x0) + 1)
        x0 = least_squares(_css_residuals, x0, args=(w, Xw, order, m, n_cond), method="lm", max_nfev=budget).x
        e = _css_residuals(x0, w, Xw, order, m, n_cond)
    n = len(e)
    sse = float(e @ e)
    k = len(x0) + 1  # + sigma^2
    _, _, ar, ma = _polys(x0, order, k_exog, m)
    if sse <= 0.0 or n - k - 1 <= 0 or not (_roots_ok(ar) and _roots_ok(ma)):
        return CSSFit(order, np.inf, x0, np.nan)
    sigma2 = sse / n
    loglik = -0.5 * n * (np.log(2.0 * np.pi * sigma2) + 1.0)
    aicc = -2.0 * loglik + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1)
    return CSSFit(order, float(aicc), x0, sigma2)


@dataclass
class SearchSpace:
    """Bounds of the stepwise order search."""

    max_p: int = 3
    max_q: int = 3
    max_P: int = 0
    max_Q: int = 0
    max_order: int = 5  # p + q + P + Q, as auto.arima
    allow_constant: bool = True
    m: int = 1

    def valid(self, o: Order) -> bool:
        p, q, P, Q, _ = o
        return (
            0 <= p <= self.max_p
            and 0 <= q <= self.max_q
            and 0 <= P <= self.max_P
            and 0 <= Q <= self.max_Q
            and p + q + P + Q <= self.max_order
            and (self.allow_constant or not o[4])
        )


@dataclass
class SearchResult:
    best: CSSFit
    tried: dict[Order, float] = field(default_factory=dict)


def _neighbours(o: Order) -> list[Order]:
    p, q, P, Q, c = o
    moves = [(1, 0, 0, 0), (-1, 0, 0, 0), (0, 1, 0, 0), (0, -1, 0, 0), (1, 1, 0, 0), (-1, -1, 0, 0)]
    moves += [(0, 0, 1, 0), (0, 0, -1, 0), (0, 0, 0, 1), (0, 0, 0, -1), (0, 0, 1, 1), (0, 0, -1, -1)]
    out = [(p + a, q + b, P + s, Q + t, c) for a, b, s, t in moves]
    out.append((p, q, P, Q, not c))
    return out


def stepwise_search(w: np.ndarray, Xw: np.ndarray | None, space: SearchSpace, *, stepwise: bool = True) -> SearchResult:
    """Hyndman-Khandakar stepwise search (or the full grid with stepwise=False) scored by CSS AICc."""
    n_cond = space.max_p + space.m * space.max_P
    tried: dict[Order, CSSFit] = {}

    def score(o: Order) -> CSSFit:
        if o not in tried:
            tried[o] = css_fit(w, Xw, o, space.m, n_cond)
        return tried[o]

    c = space.allow_constant
    seasonal = space.max_P + space.max_Q > 0
    if stepwise:
        starts = [(2, 2, 1, 1, c), (0, 0, 0, 0, c), (1, 0, 1, 0, c), (0, 1, 0, 1, c), (0, 0, 0, 0, False)]
        if not seasonal:
            starts = [(p, q, 0, 0, k) for p, q, _, _, k in starts]
        starts = [_clip(o, space) for o in starts]
        best = min((score(o) for o in dict.fromkeys(starts) if space.valid(o)), key=lambda f: f.aicc)
        for _ in range(_MAX_STEPS):
            candidates = [score(o) for o in _neighbours(best.order) if space.valid(o)]
            better = min(candidates, key=lambda f: f.aicc, default=best)
            if not better.aicc < best.aicc:
                break
            best = better
    else:
        grid = [
            (p, q, P, Q, k)
            for p in range(space.max_p + 1)
            for q in range(space.max_q + 1)
            for P in range(space.max_P + 1)
            for Q in range(space.max_Q + 1)
            for k in ((True, False) if c else (False,))
        ]
        best = min((score(o) for o in grid if space.valid(o)), key=lambda f: f.aicc)
    return SearchResult(best, {o: f.aicc for o, f in tried.items()})


def _clip(o: Order, space: SearchSpace) -> Order:
    p, q, P, Q, c = o
    return (min(p, space.max_p), min(q, space.max_q), min(P, space.max_P), min(Q, space.max_Q), c)


# ---- the forecasters -----------------------------------------------------------------------------------------
class _ARIMAForecaster(Forecaster):
    """Order selection + exact MLE + fixed-parameter updates; subclasses define the search space and exog."""

    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 20
    # The maximum orders the AICc search may reach (arima, sarima, arimax): the validation tail judges whether
    # a richer model forecasts better out of sample than the in-sample criterion says.
    search_space: ClassVar[HyperparameterSpace] = {"max_p": Int(1, 5), "max_q": Int(1, 5)}

    # Set by subclasses' __init__.
    max_p: int
    max_q: int
    max_d: int
    ic: str
    stepwise: bool
    estimator: str

    # -- hooks
    def _seasonal_setup(self, y: np.ndarray) -> tuple[int, int, int, int]:
        """(m, D, max_P, max_Q) for this series; non-seasonal by default."""
        return 1, 0, 0, 0

    def _exog_train(self, skip: int) -> np.ndarray | None:
        return None

    def _n_skip(self) -> int:
        """Leading rows unusable for training (lagged regressors)."""
        return 0

    def _exog_new(self, n_new: int) -> np.ndarray | None:
        return None

    def _exog_future(self, horizon: int) -> np.ndarray | None:
        return None

    # -- contract
    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        if self.ic != "aicc":
            raise ConfigError(f"{self.name}: only ic='aicc' is implemented, got {self.ic!r}")
        if self.estimator not in ("mle", "css"):
            raise ConfigError(f"{self.name}: estimator must be 'mle' or 'css', got {self.estimator!r}")
        skip = self._n_skip()
        y = y[skip:]
        if np.ptp(y) == 0.0:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"constant series (every value {y[0]:g}): ARIMA has no variance to model; use naive for flat series",
            )
        if len(y) < self.min_train_size:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"{len(y)} training sessions after dropping {skip} lagged rows, needs at least {self.min_train_size}",
            )
        exog = self._exog_train(skip)
        with single_thread_blas(), quiet_numerics():
            m, D, max_P, max_Q = self._seasonal_setup(y)
            d = choose_d(difference(y, 0, D, m), int(self.max_d))
            w = difference(y, d, D, m)
            Xw = None if exog is None else difference(exog, d, D, m)
            space = SearchSpace(int(self.max_p), int(self.max_q), max_P, max_Q, allow_constant=d + D <= 1, m=m)
            search = stepwise_search(w, Xw, space, stepwise=bool(self.stepwise))
            if not np.isfinite(search.best.aicc):
                raise ModelFitError(
                    self.name, self.unique_id_, f"no ARIMA candidate had stationary, invertible roots (d={d}, D={D})"
                )
            self.d_, self.D_, self.m_ = d, D, m
            self.order_ = (search.best.order[0], d, search.best.order[1])
            self.seasonal_order_ = (search.best.order[2], D, search.best.order[3], m if D or max_P or max_Q else 0)
            self.drift_ = bool(search.best.order[4]) and d + D == 1
            self.constant_ = bool(search.best.order[4]) and d + D == 0
            self.css_aicc_ = search.best.aicc
            self.search_ = {f"{o[0]},{o[1]},{o[2]},{o[3]},{'c' if o[4] else 'n'}": s for o, s in search.tried.items()}
            self.n_train_ = len(y)
            self.results_ = self._mle(y, exog, search.best)
        self.params_ = np.asarray(self.results_.params, dtype=float)

    def _design(self, exog: np.ndarray | None, t: np.ndarray) -> np.ndarray | None:
        cols = []
        if self.drift_:
            cols.append(t.reshape(-1, 1).astype(float))
        if exog is not None:
            cols.append(np.asarray(exog, dtype=float).reshape(len(t), -1))
        return np.hstack(cols) if cols else None

    def _mle(self, y: np.ndarray, exog: np.ndarray | None, best: CSSFit) -> ARIMAResults:
        from statsmodels.tsa.arima.model import ARIMA

        t = np.arange(1, len(y) + 1)
        model = ARIMA(
            y,
            exog=self._design(exog, t),
            order=self.order_,
            seasonal_order=self.seasonal_order_,
            trend="c" if self.constant_ else "n",
        )
        start = self._start_params(model, best)
        if self.estimator == "css" and start is not None:
            return model.filter(start)  # CSS estimates as final: one Kalman pass instead of an optimisation
        return model.fit(start_params=start)

    def _start_params(self, model: ARIMA, best: CSSFit) -> np.ndarray | None:
        """CSS estimates mapped onto statsmodels' parameter vector (trend, exog, ar, ma, sar, sma, sigma2)."""
        o = best.order
        params = list(best.params)
        if o[4] and not (self.drift_ or self.constant_):  # constant chosen but not representable: drop it
            params = params[1:]
        start = np.array([*params, best.sigma2], dtype=float)
        if len(start) != len(model.param_names) or not np.all(np.isfinite(start)):
            return None
        return start

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        n = self.n_train_
        t = np.arange(n + 1, n + len(y_new) + 1)
        with single_thread_blas(), quiet_numerics():
            self.results_ = self.results_.extend(y_new, exog=self._design(self._exog_new(len(y_new)), t))
        self.n_train_ = n + len(y_new)

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin from ONE Kalman extension over the block: each origin's filtered state, forecast forward.

        The h-step forecast from a filtered state (a, P) of a time-invariant state space model is the recursion
        a <- c + T a, P <- T P T' + R Q R', mean = Z a + d, var = Z P Z' + H: what statsmodels' get_forecast
        computes, done for all origins at once instead of one extend() + get_forecast() per origin (about 8 ms
        each). Models with user exogenous regressors (ARIMAX), or a time-varying system, use the default loop.
        """
        ssm = self.results_.model.ssm
        matrices = {k: np.asarray(ssm[k]) for k in ("design", "transition", "selection", "state_cov", "obs_cov")}
        if self._exog_future(horizon) is not None or any(m.ndim == 3 and m.shape[-1] > 1 for m in matrices.values()):
            return super()._forecast_block(new, counts, horizon)
        Z, T, R, Q, H = (m[..., 0] if m.ndim == 3 else m for m in matrices.values())
        c = np.asarray(ssm["state_intercept"])
        if c.ndim == 2 and not np.allclose(c, c[:, :1]):
            return super()._forecast_block(new, counts, horizon)
        c = c[:, -1] if c.ndim == 2 else c
        states = np.asarray(self.results_.filtered_state)[:, -1:]
        covs = np.asarray(self.results_.filtered_state_cov)[:, :, -1:]
        n0 = self.n_train_
        if len(new):
            t = np.arange(n0 + 1, n0 + len(new) + 1)
            with single_thread_blas(), quiet_numerics():
                self.results_ = self.results_.extend(new.y, exog=self._design(None, t))
            states = np.concatenate([states, np.asarray(self.results_.filtered_state)], axis=1)
            covs = np.concatenate([covs, np.asarray(self.results_.filtered_state_cov)], axis=2)
        self.n_train_ = n0 + len(new)
        self._append_rows(new)
        a = states[:, counts].T  # (origins, k)
        P = np.moveaxis(covs[:, :, counts], 2, 0)  # (origins, k, k)
        RQR = R @ Q @ R.T
        beta = self._trend_coefficients()
        mean = np.empty((len(counts), horizon))
        var = np.empty((len(counts), horizon))
        for j in range(horizon):
            a = a @ T.T + c
            P = T @ P @ T.T + RQR
            t_future = (n0 + counts + j + 1).astype(float)  # each origin's own time index for the drift term
            mean[:, j] = a @ Z[0] + beta[0] + beta[1] * t_future
            var[:, j] = np.einsum("i,nij,j->n", Z[0], P, Z[0]) + H[0, 0]
        return mean, normal_intervals(mean, np.sqrt(np.maximum(var, 0.0)))

    def _trend_coefficients(self) -> tuple[float, float]:
        """(constant, drift slope) of the observation equation: statsmodels names the constant "const" and puts
        the drift column (our only exog here, `_design`) first among its exog coefficients."""
        model = self.results_.model
        named = dict(zip(model.param_names, np.asarray(self.results_.params, dtype=float), strict=True))
        constant = named.get("const", 0.0) if self.constant_ else 0.0
        drift = named[model.exog_names[-1]] if self.drift_ else 0.0
        return float(constant), float(drift)

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        t = np.arange(self.n_train_ + 1, self.n_train_ + horizon + 1)
        exog = self._design(self._exog_future(horizon), t)
        with single_thread_blas(), quiet_numerics():
            fc = self.results_.get_forecast(horizon, exog=exog)
            mean = np.asarray(fc.predicted_mean, dtype=float)
            intervals: Intervals = {}
            for level in (80, 95):
                ci = np.asarray(fc.conf_int(alpha=1.0 - level / 100.0), dtype=float)
                intervals[level] = (ci[:, 0], ci[:, 1])
        return mean, intervals


class AutoARIMA(_ARIMAForecaster):
    """ARIMA(p,d,q) with drift/constant: d by KPSS, (p, q) by a stepwise CSS-AICc search, then exact MLE."""

    default_name: ClassVar[str] = "arima"

    def __init__(
        self,
        *,
        max_p: int = 3,
        max_q: int = 3,
        max_d: int = 2,
        ic: Literal["aicc"] = "aicc",
        stepwise: bool = True,
        estimator: Literal["mle", "css"] = "mle",
    ) -> None:
        _check_orders(self.name, max_p=max_p, max_q=max_q, max_d=max_d)
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.ic = ic
        self.stepwise = stepwise
        self.estimator = estimator


class SARIMA(_ARIMAForecaster):
    """Seasonal ARIMA(p,d,q)(P,D,Q)_m: D by seasonal strength, d by KPSS, all orders by the stepwise search."""

    default_name: ClassVar[str] = "sarima"

    def __init__(
        self,
        *,
        season_length: int = 5,
        max_p: int = 2,
        max_q: int = 2,
        max_d: int = 2,
        max_P: int = 1,
        max_Q: int = 1,
        max_D: int = 1,
        ic: Literal["aicc"] = "aicc",
        stepwise: bool = True,
        estimator: Literal["mle", "css"] = "mle",
    ) -> None:
        _check_orders(self.name, max_p=max_p, max_q=max_q, max_d=max_d, max_P=max_P, max_Q=max_Q, max_D=max_D)
        if int(season_length) != season_length or season_length < 2:
            raise ConfigError(f"sarima: season_length must be an integer >= 2, got {season_length!r}")
        self.season_length = season_length
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.max_P = max_P
        self.max_Q = max_Q
        self.max_D = max_D
        self.ic = ic
        self.stepwise = stepwise
        self.estimator = estimator

    def _seasonal_setup(self, y: np.ndarray) -> tuple[int, int, int, int]:
        m = int(self.season_length)
        if len(y) < 4 * m:  # too short to estimate seasonal terms: behave as AutoARIMA
            return m, 0, 0, 0
        return m, choose_seasonal_d(y, m, int(self.max_D)), int(self.max_P), int(self.max_Q)


class ARIMAX(_ARIMAForecaster):
    """Regression with ARIMA errors on exogenous features known at forecast time.

    Calendar columns (`cal_*`) enter as they are; every other column is lagged by `exog_lag` sessions, so a
    forecast up to `exog_lag` steps ahead only uses values already observed (predict refuses longer horizons).
    `exog_lag=None` (default) lags by the horizon the model is fitted for (requires_horizon_in_fit: the engine
    passes the run's horizon), the shortest lag that keeps every step's features known; 5 when fitted without one.
    The default regressors are yesterday's log return and 20-day volatility, lagged by 5: simple, always present
    in the feature panel, and numeric (a day-of-week code as a number would impose a linear weekday effect).
    As in statsmodels, the regression is in levels: y_t = x_t' beta + n_t with n_t ~ ARIMA(p,d,q); with d = 1 that
    means price changes regress on changes of the lagged features. The first `exog_lag` rows are dropped.
    """

    default_name: ClassVar[str] = "arimax"
    supports_exog: ClassVar[bool] = True
    min_train_size: ClassVar[int] = 25
    requires_horizon_in_fit: ClassVar[bool] = True  # the default lag follows the horizon
    exog_param: ClassVar[str | None] = "exog"
    # Regression with ARIMA(p, d, q) errors differences its regressors with the target (statsmodels' SARIMAX): with
    # d = 1 a covariate's level enters as its change, i.e. its return; a return would enter as a change of returns.
    covariate_kinds: ClassVar[tuple[str, ...]] = ("level",)

    def __init__(
        self,
        *,
        exog: tuple[str, ...] = ("logret_1", "vol_20"),
        exog_lag: int | None = None,
        max_p: int = 3,
        max_q: int = 3,
        max_d: int = 2,
        ic: Literal["aicc"] = "aicc",
        stepwise: bool = True,
        estimator: Literal["mle", "css"] = "mle",
    ) -> None:
        _check_orders(self.name, max_p=max_p, max_q=max_q, max_d=max_d)
        if exog_lag is not None and (int(exog_lag) != exog_lag or exog_lag < 1):
            raise ConfigError(f"arimax: exog_lag must be a positive integer, got {exog_lag!r}")
        if not exog:
            raise ConfigError("arimax: give at least one exogenous column, e.g. exog=('logret_1',); or use arima")
        self.exog = exog
        self.exog_lag = exog_lag
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.ic = ic
        self.stepwise = stepwise
        self.estimator = estimator

    def _lag(self) -> int:
        """The lag in use: exog_lag when given, else the fit horizon (5 when fitted without one)."""
        if self.exog_lag is not None:
            return int(self.exog_lag)
        return int(getattr(self, "fit_horizon_", None) or 5)

    def _n_skip(self) -> int:
        """Leading rows without a complete design: the `exog_lag` shifted rows plus indicator warm-up NaNs."""
        design, _ = self.exog_design(self._lag())
        finite = np.isfinite(design.to_numpy(dtype=float)).all(axis=1)
        bad = np.flatnonzero(~finite)
        skip = int(bad[-1]) + 1 if bad.size else 0
        if bad.size and not (bad == np.arange(bad.size)).all():  # a gap inside the history, not just warm-up
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"exogenous columns {list(self.exog_columns)} have missing values inside the history "
                f"(row {int(bad[np.argmax(bad != np.arange(bad.size))])}); fill or drop them before fitting",
            )
        return skip

    def _exog_train(self, skip: int) -> np.ndarray:
        design, _ = self.exog_design(self._lag())
        return design.to_numpy(dtype=float)[skip:]

    def _exog_new(self, n_new: int) -> np.ndarray:
        design, _ = self.exog_design(self._lag())
        return design.to_numpy(dtype=float)[-n_new:]

    def _exog_future(self, horizon: int) -> np.ndarray:
        _, future = self.exog_design(self._lag(), horizon)
        return future.to_numpy(dtype=float)


def _check_orders(model: str, **orders: Any) -> None:
    for key, value in orders.items():
        if int(value) != value or value < 0:
            raise ConfigError(f"{model}: {key} must be a non-negative integer, got {value!r}")
