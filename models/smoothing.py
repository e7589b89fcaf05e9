"""Exponential smoothing on statsmodels' ETSModel: SES, Holt, Holt-Winters and an AICc-selected AutoETS.

Design choices (why, not what):
- One engine for all four: the classical methods are the additive-error ETS models (SES = ETS(A,N,N),
  Holt = ETS(A,A,N)/(A,Ad,N), Holt-Winters = ETS(A,{N,A,Ad},{A,M})), so every model has a likelihood, an AICc
  and the same update path. statsmodels' `ExponentialSmoothing` (holtwinters) has neither intervals nor a
  fixed-parameter filter.
- `update` conditions on new rows with parameters fixed and costs O(new rows): the ETS state recursion runs
  from the last filtered state over the new rows only (`filter_state`, a few lines of numpy). It equals
  statsmodels smoothing the whole history with the fitted parameters (tested to 1e-10). Building a short
  ETSModel with "known" initial states instead is 100x slower per update and mis-updates the trend when given
  a single observation (statsmodels 0.15).
- Intervals keep the scale sigma^2 estimated at fit (a parameter, like the smoothing weights):
  * additive error, additive/no season: exact, Var_h = sigma^2 (1 + sum_{j<h} c_j^2) with
    c_j = alpha + beta (phi + ... + phi^j) + gamma 1[j mod m == 0] (Hyndman et al. 2008, class 1);
  * multiplicative error, additive/no season: the same c_j with the relative scale, times the point forecast.
    This is the first-order (small sigma) approximation of the class-2 variance; daily relative errors are about
    1-2 %, so the neglected terms are ~sigma^2 = 1e-4 relative;
  * multiplicative season (Holt-Winters seasonal="mul"): quantiles of 500 simulated paths with a fixed seed.
- All statsmodels work runs with one BLAS thread (`single_thread_blas`): 3-10x faster on small optimisations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.errors import ConfigError, ModelFitError
from models._stats import (
    SEASONAL_STRENGTH_THRESHOLD,
    MinTrainSize,
    normal_intervals,
    quiet_numerics,
    seasonal_strength,
    single_thread_blas,
)
from models.base import Forecaster, Intervals, NewRows
from models.search_space import Choice, SearchSpace

if TYPE_CHECKING:  # annotations only: statsmodels loads on first fit
    from statsmodels.tsa.exponential_smoothing.ets import ETSResults

_SIM_REPETITIONS = 500
_SIM_SEED = 20240601
_SMOOTHING_NAMES = ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")


@dataclass(frozen=True)
class ETSSpec:
    """One ETS model form: error, trend, damping and season (period m)."""

    error: Literal["add", "mul"] = "add"
    trend: Literal["add"] | None = None
    damped: bool = False
    seasonal: Literal["add", "mul"] | None = None
    period: int = 1

    @property
    def short_name(self) -> str:
        """Hyndman's label, e.g. "MAdN"."""
        letter = {"add": "A", "mul": "M", None: "N"}
        trend = letter[self.trend] + ("d" if self.damped else "")
        return f"{letter[self.error]}{trend}{letter[self.seasonal]}"

    @property
    def n_params(self) -> int:
        """Estimated parameters incl. initial states and sigma (what AICc counts)."""
        k = 3  # alpha, l0, sigma
        if self.trend:
            k += 2 + int(self.damped)
        if self.seasonal:
            k += self.period  # gamma + m - 1 free initial seasonal states
        return k

    @property
    def needs_positive(self) -> bool:
        return self.error == "mul" or self.seasonal == "mul"

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"error": self.error, "trend": self.trend, "damped_trend": self.damped}
        if self.seasonal:
            kw.update(seasonal=self.seasonal, seasonal_periods=self.period)
        return kw


@dataclass(frozen=True)
class _State:
    """The filtered state after the last observation: what conditioning on new rows starts from."""

    level: float
    trend: float | None
    season: np.ndarray | None  # the last m seasonal states, oldest first

    def seasonal_states(self) -> np.ndarray:
        """The last m seasonal states (oldest first); empty for a model without a season."""
        return np.empty(0) if self.season is None else self.season


def _fit_spec(y: np.ndarray, spec: ETSSpec) -> ETSResults:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(y, **spec.kwargs()).fit(disp=False)


def _final_state(results: ETSResults, spec: ETSSpec) -> _State:
    """The state after the last observation of a statsmodels ETS fit."""
    states = np.asarray(results.states, dtype=float)
    col = 1 + int(spec.trend is not None)
    season = states[-spec.period :, col].copy() if spec.seasonal else None
    return _State(float(states[-1, 0]), float(states[-1, 1]) if spec.trend else None, season)


def relative_variance(spec: ETSSpec, params: dict[str, float], horizon: int) -> np.ndarray:
    """1 + sum_{j<h} c_j^2 for h = 1..horizon: the h-step error variance in units of sigma^2 (linear models)."""
    alpha = params["smoothing_level"]
    j = np.arange(1, horizon, dtype=float)
    c = np.full(j.shape, alpha)
    if spec.trend:
        beta = params["smoothing_trend"]
        phi = params.get("damping_trend", 1.0) if spec.damped else 1.0
        c += beta * (j if phi == 1.0 else phi * (1.0 - phi**j) / (1.0 - phi))
    if spec.seasonal:
        c += params["smoothing_seasonal"] * (j % spec.period == 0)
    return np.concatenate([[1.0], 1.0 + np.cumsum(c * c)])


def _damped_sums(spec: ETSSpec, params: dict[str, float], horizon: int) -> np.ndarray:
    """phi + phi^2 + ... + phi^h for h = 1..horizon (h itself when undamped)."""
    if not spec.damped:
        return np.arange(1, horizon + 1, dtype=float)
    return np.cumsum(params["damping_trend"] ** np.arange(1, horizon + 1, dtype=float))


def forecast_mean(spec: ETSSpec, params: dict[str, float], state: _State, horizon: int) -> np.ndarray:
    """Point forecasts from the filtered state (Hyndman et al. 2008 table 2.1).

    Computed here rather than by statsmodels' results.forecast, which fails on a conditioning run shorter than
    one season (an update with fewer than m new rows).
    """
    base = np.full(horizon, state.level)
    if spec.trend:
        base = base + _damped_sums(spec, params, horizon) * state.trend
    if not spec.seasonal:
        return base
    season = state.seasonal_states()[np.arange(horizon) % spec.period]  # s_{T+h-m(k+1)}, season holds s_{T-m+1..T}
    return base + season if spec.seasonal == "add" else base * season


def _coefficients(spec: ETSSpec, params: dict[str, float]) -> tuple[float, float, float, float]:
    alpha = params["smoothing_level"]
    beta = params.get("smoothing_trend", 0.0) if spec.trend else 0.0
    gamma = params.get("smoothing_seasonal", 0.0) if spec.seasonal else 0.0
    phi = params.get("damping_trend", 1.0) if spec.damped else 1.0
    return alpha, beta, gamma, phi


# A state value: a float while filtering, an array of simulated paths in simulate_paths.
StateValue = float | np.ndarray


def _step(
    spec: ETSSpec,
    coefs: tuple[float, float, float, float],
    level: StateValue,
    trend: StateValue,
    s: StateValue,
    y: StateValue,
) -> tuple[StateValue, StateValue, StateValue, StateValue]:
    """One ETS transition given the observation y: returns (mu, level, trend, new seasonal state).

    Written in terms of the raw error y - mu, the state update is the same for additive and multiplicative
    errors (Hyndman et al. 2008 tables 2.2/2.3: e.g. (l+b)(1 + alpha eps) = l + b + alpha (y - mu)); the error
    type only changes the likelihood and the intervals. Works on scalars and on arrays of simulated paths.
    """
    alpha, beta, gamma, phi = coefs
    base = level + phi * trend
    if spec.seasonal == "mul":
        mu = base * s
        e = y - mu
        return mu, base + alpha * e / s, phi * trend + beta * e / s, s + gamma * e / base
    mu = base + s
    e = y - mu
    return mu, base + alpha * e, phi * trend + beta * e, s + gamma * e


def filter_state(spec: ETSSpec, params: dict[str, float], state: _State, y: np.ndarray) -> _State:
    """Condition the state on new observations with fixed parameters: O(len(y)), no model construction."""
    return filter_states(spec, params, state, y).at(len(y))


@dataclass(frozen=True)
class _StatePath:
    """The filtered states after 0, 1, ..., n new observations (row k: after the first k)."""

    level: np.ndarray  # (n + 1,)
    trend: np.ndarray | None  # (n + 1,)
    season: np.ndarray | None  # (n + m,): the m states before the first observation, then one per observation

    def at(self, k: int) -> _State:
        season = None if self.season is None else self.season[k : k + len(self.season) - len(self.level) + 1].copy()
        return _State(float(self.level[k]), None if self.trend is None else float(self.trend[k]), season)


def filter_states(spec: ETSSpec, params: dict[str, float], state: _State, y: np.ndarray) -> _StatePath:
    """filter_state recording the state after every observation: one pass serves every origin of a block."""
    coefs = _coefficients(spec, params)
    y = np.asarray(y, dtype=float)
    levels, trends = np.empty(len(y) + 1), np.empty(len(y) + 1)
    level: StateValue = state.level
    trend: StateValue = state.trend or 0.0
    season: list[StateValue] = list(state.seasonal_states()) if spec.seasonal else []
    levels[0], trends[0] = level, trend
    m = len(season)
    for t, obs in enumerate(y):
        s = season[t] if spec.seasonal else 0.0  # s_{t-m}: the oldest of the last m seasonal states
        _, level, trend, s_new = _step(spec, coefs, level, trend, s, obs)
        levels[t + 1], trends[t + 1] = level, trend
        if spec.seasonal:
            season.append(s_new)
    return _StatePath(
        levels, trends if spec.trend else None, np.asarray(season, dtype=float) if spec.seasonal and m else None
    )


def simulate_paths(spec: ETSSpec, params: dict[str, float], state: _State, eps: np.ndarray) -> np.ndarray:
    """Sample paths (horizon x repetitions) of an additive-error ETS model from `state` with errors `eps`."""
    coefs = _coefficients(spec, params)
    reps = eps.shape[1]
    level: StateValue = np.full(reps, state.level)
    trend: StateValue = np.full(reps, state.trend or 0.0)
    season: list[StateValue] = [np.full(reps, v) for v in state.seasonal_states()] if spec.seasonal else []
    paths = np.empty_like(eps)
    for h in range(eps.shape[0]):
        s = season[h] if spec.seasonal else 0.0  # season grows by one row per step: row h is s_{T+h+1-m}
        base = level + coefs[3] * trend
        mu = base * s if spec.seasonal == "mul" else base + s
        paths[h] = mu + eps[h]
        _, level, trend, s_new = _step(spec, coefs, level, trend, s, paths[h])
        if spec.seasonal:
            season.append(s_new)
    return paths


class _ETSForecaster(Forecaster):
    """Shared fit/update/predict for every ETS-based model; subclasses only say which candidates to fit."""

    supports_exog: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True

    def _candidates(self, y: np.ndarray) -> list[ETSSpec]:
        raise NotImplementedError

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        if np.ptp(y) == 0.0:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"constant series (every value {y[0]:g}): there is no error variance to estimate; "
                "use naive for flat series",
            )
        candidates = self._candidates(y)
        scores: dict[str, float] = {}
        best = None
        with single_thread_blas(), quiet_numerics():
            for spec in candidates:
                results = _fit_spec(y, spec)
                score = float(getattr(results, self._ic))
                scores[spec.short_name] = score
                if np.isfinite(score) and (best is None or score < best[0]):
                    best = (score, spec, results)
        if best is None:
            raise ModelFitError(self.name, self.unique_id_, f"no ETS candidate gave a finite {self._ic}: {scores}")
        self.ic_scores_ = scores
        self._adopt(best[1], best[2])

    def _adopt(self, spec: ETSSpec, results: ETSResults) -> None:
        """Keep the chosen model: its form, smoothing parameters, scale and final state."""
        named = dict(zip(results.model.param_names, np.asarray(results.params, dtype=float), strict=True))
        self.spec_ = spec
        self.params_ = {k: v for k, v in named.items() if k in _SMOOTHING_NAMES}
        self.sigma2_ = float(results.scale)
        self.results_ = results
        self.state_ = _final_state(results, spec)

    @property
    def _ic(self) -> str:
        return "aicc"

    def _update(self, y_new: np.ndarray, X_new: pd.DataFrame | None) -> None:
        self.state_ = filter_state(self.spec_, self.params_, self.state_, y_new)

    def _predict(self, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        mean = forecast_mean(self.spec_, self.params_, self.state_, horizon)
        if self.spec_.seasonal == "mul":
            return mean, self._simulated_intervals(horizon)
        sd = np.sqrt(self.sigma2_ * relative_variance(self.spec_, self.params_, horizon))
        if self.spec_.error == "mul":
            sd = sd * np.abs(mean)
        return mean, normal_intervals(mean, sd)

    def _forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        """Every origin from ONE filter pass over the block: the state at each origin, the forecasts vectorised.

        A multiplicative season simulates its intervals per origin (the default loop).
        """
        if self.spec_.seasonal == "mul":
            return super()._forecast_block(new, counts, horizon)
        spec, params = self.spec_, self.params_
        path = filter_states(spec, params, self.state_, new.y)
        mean = path.level[counts][:, None] + np.zeros(horizon)
        if spec.trend and path.trend is not None:
            mean = mean + path.trend[counts][:, None] * _damped_sums(spec, params, horizon)[None, :]
        if spec.seasonal and path.season is not None:  # additive: season row k holds s_{T-m+1..T} at origin k
            idx = counts[:, None] + (np.arange(horizon) % spec.period)[None, :]
            mean = mean + path.season[idx]
        sd = np.sqrt(self.sigma2_ * relative_variance(spec, params, horizon))[None, :] + np.zeros_like(mean)
        if spec.error == "mul":
            sd = sd * np.abs(mean)
        self._append_rows(new)
        self.state_ = path.at(len(new))
        return mean, normal_intervals(mean, sd)

    def _simulated_intervals(self, horizon: int) -> Intervals:
        rng = np.random.default_rng(_SIM_SEED)  # fixed seed: identical intervals on every call
        eps = rng.standard_normal((horizon, _SIM_REPETITIONS)) * np.sqrt(self.sigma2_)
        paths = simulate_paths(self.spec_, self.params_, self.state_, eps)
        out: Intervals = {}
        for level in (80, 95):
            tail = (100 - level) / 200.0
            lo, hi = np.quantile(paths, [tail, 1.0 - tail], axis=1)
            out[level] = (lo, hi)
        return out

    def _require_length(self, y: np.ndarray, spec: ETSSpec) -> None:
        need = spec.n_params + 2
        if len(y) < need:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"{len(y)} training sessions, needs at least {need} for ETS({spec.short_name}); use a longer history",
            )

    def _require_positive(self, y: np.ndarray, spec: ETSSpec) -> None:
        if spec.needs_positive and np.min(y) <= 0.0:
            raise ModelFitError(
                self.name,
                self.unique_id_,
                f"ETS({spec.short_name}) is multiplicative and needs strictly positive data, min is {np.min(y):g}; "
                "use an additive season",
            )


class SES(_ETSForecaster):
    """Simple exponential smoothing = ETS(A,N,N): a flat forecast at the smoothed level."""

    default_name: ClassVar[str] = "ses"
    min_train_size: ClassVar[int] = ETSSpec().n_params + 2

    def _candidates(self, y: np.ndarray) -> list[ETSSpec]:
        spec = ETSSpec()
        self._require_length(y, spec)
        return [spec]


class Holt(_ETSForecaster):
    """Holt's linear trend = ETS(A,A,N), or ETS(A,Ad,N) with `damped=True`."""

    default_name: ClassVar[str] = "holt"
    min_train_size: ClassVar[int] = ETSSpec(trend="add", damped=True).n_params + 2
    search_space: ClassVar[SearchSpace] = {"damped": Choice(False, True)}

    def __init__(self, *, damped: bool = False) -> None:
        self.damped = damped

    def _candidates(self, y: np.ndarray) -> list[ETSSpec]:
        spec = ETSSpec(trend="add", damped=bool(self.damped))
        self._require_length(y, spec)
        return [spec]


class HoltWinters(_ETSForecaster):
    """Holt-Winters = ETS(A, trend, season) with period `season_length` (5 sessions = one trading week)."""

    default_name: ClassVar[str] = "holt_winters"
    min_train_size = MinTrainSize(
        ETSSpec(seasonal="add", period=5).n_params + 2, lambda self: self._spec().n_params + 2
    )

    def __init__(
        self,
        *,
        season_length: int = 5,
        seasonal: Literal["add", "mul"] = "add",
        trend: Literal["add"] | None = None,
        damped: bool = False,
    ) -> None:
        if int(season_length) != season_length or season_length < 2:
            raise ConfigError(f"holt_winters: season_length must be an integer >= 2, got {season_length!r}")
        if seasonal not in ("add", "mul"):
            raise ConfigError(f"holt_winters: seasonal must be 'add' or 'mul', got {seasonal!r}")
        if trend not in (None, "add"):
            raise ConfigError(f"holt_winters: trend must be None or 'add', got {trend!r}")
        if damped and trend is None:
            raise ConfigError("holt_winters: damped=True needs trend='add'")
        self.season_length = season_length
        self.seasonal = seasonal
        self.trend = trend
        self.damped = damped

    def _spec(self) -> ETSSpec:
        return ETSSpec(
            trend=self.trend, damped=bool(self.damped), seasonal=self.seasonal, period=int(self.season_length)
        )

    def _candidates(self, y: np.ndarray) -> list[ETSSpec]:
        spec = self._spec()
        self._require_length(y, spec)
        self._require_positive(y, spec)
        return [spec]


class AutoETS(_ETSForecaster):
    """ETS chosen by AICc among ANN, AAN, AAdN (+ MNN, MAN, MAdN for positive data) and, when the series shows
    a real season, the additive-season version of the best of those.

    Seasonal candidates are only fitted when the STL seasonal strength of the series exceeds 0.64 (the nsdiffs
    threshold): a seasonal ETS fit costs 5-10x a non-seasonal one, and daily prices almost never have a weekly
    season, so fitting it blindly would triple the time for nothing. Only additive seasons are tried, which keeps
    every candidate's intervals analytic. Candidates with too few observations for their parameters are skipped.
    """

    default_name: ClassVar[str] = "ets"
    min_train_size: ClassVar[int] = ETSSpec().n_params + 2
    # Whether damped trends are candidates: AICc picks among the candidates in-sample, the tail judges out of it.
    search_space: ClassVar[SearchSpace] = {"damped": Choice(True, False)}

    def __init__(
        self,
        *,
        season_length: int = 5,
        multiplicative: bool = True,
        damped: bool = True,
        ic: Literal["aicc", "aic", "bic"] = "aicc",
    ) -> None:
        if int(season_length) != season_length or season_length < 1:
            raise ConfigError(f"ets: season_length must be a positive integer, got {season_length!r}")
        if ic not in ("aicc", "aic", "bic"):
            raise ConfigError(f"ets: ic must be 'aicc', 'aic' or 'bic', got {ic!r}")
        self.season_length = season_length
        self.multiplicative = multiplicative
        self.damped = damped
        self.ic = ic

    @property
    def _ic(self) -> str:
        return self.ic

    def _candidates(self, y: np.ndarray) -> list[ETSSpec]:
        errors: list[Literal["add", "mul"]] = ["add"]
        if self.multiplicative and np.min(y) > 0.0:
            errors.append("mul")
        trends: list[tuple[Literal["add"] | None, bool]] = [(None, False), ("add", False)]
        if self.damped:
            trends.append(("add", True))
        specs = [ETSSpec(error=e, trend=t, damped=d) for e in errors for t, d in trends]
        usable = [s for s in specs if len(y) >= s.n_params + 2]
        if not usable:
            self._require_length(y, specs[0])
        return usable

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        super()._fit(y, X)
        m = int(self.season_length)
        seasonal = ETSSpec(self.spec_.error, self.spec_.trend, self.spec_.damped, "add", m)
        if m < 2 or len(y) < max(seasonal.n_params + 2, 3 * m):
            return
        self.seasonal_strength_ = seasonal_strength(y, m)
        if self.seasonal_strength_ <= SEASONAL_STRENGTH_THRESHOLD:
            return
        best_score = self.ic_scores_[self.spec_.short_name]
        with single_thread_blas(), quiet_numerics():
            results = _fit_spec(y, seasonal)
        score = float(getattr(results, self._ic))
        self.ic_scores_[seasonal.short_name] = score
        if np.isfinite(score) and score < best_score:
            self._adopt(seasonal, results)
