"""`<model>+tuned`: a registry model whose declared hyperparameters are searched inside each training window.

At every fit the last V = max(H, round(validation_fraction * n)) sessions of the training window are a
time-ordered validation tail: each trial fits the model on the rows before it and forecasts the tail from
origins every H sessions (each origin's H steps inside the window), scored by MAE. The search is Optuna's TPE,
seeded, one trial at a time; trial 0 is the plain model's own values, so tuning never picks a model worse than
the plain one on validation. The winner is refitted on the whole training window and does all the forecasting.
Nothing after the training window is read, so the test window of a fold is never seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError, ModelFitError, NotFittedError
from models.base import Forecaster, Intervals, NewRows, OriginForecasts, fit_model
from models.search_space import Choice, Float, Int, SearchSpace
from models.variants import variant_name

if TYPE_CHECKING:  # annotations only: optuna loads on the first tuned fit
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)


def tunable_models() -> list[str]:
    """Registry names whose class declares a non-empty search space, in registry order."""
    from models import REGISTRY, model_class  # local: models/__init__ imports nothing eagerly, keep it that way

    return [name for name in REGISTRY if model_class(name).search_space]


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """One trial's values: each dimension of `space` as the matching Optuna suggestion."""
    values: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Int):
            values[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, Float):
            values[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        else:
            values[name] = trial.suggest_categorical(name, dim.values)
    return values


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """`space` as Optuna distributions (to record a trial the search did not suggest, trial 0)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, BaseDistribution] = {}
    for name, dim in space.items():
        if isinstance(dim, Int):
            out[name] = IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        elif isinstance(dim, Float):
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = CategoricalDistribution(dim.values)
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as the python value it holds (best_params_ are stored with the results as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


class Tuned(Forecaster):
    """The registry model `model` built with `params`, its `search_space` searched by `trials` seeded TPE trials
    on a validation tail inside each training window, then refitted with the best values on the whole window.

    Forecasts, intervals, updates and persistence are the refitted model's. Fitted state: `model_`,
    `best_params_` (searched keys only), `validation_mae_`, `trials_` (trials run) and `failed_trials_`.
    """

    requires_horizon_in_fit: ClassVar[bool] = True  # the tail and its origins are sized by the run's horizon

    def __init__(
        self,
        *,
        model: str,
        params: Mapping[str, Any] | None = None,
        trials: int = 20,
        seed: int = 0,
        validation_fraction: float = 0.2,
    ) -> None:
        from models import model_class

        cls = model_class(model)  # an unknown name is a ConfigError with close matches
        if not cls.search_space:
            raise ConfigError(f"`{model}` has no search space; tunable models: {', '.join(tunable_models())}")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ConfigError(f"{model}: tuning needs trials >= 1 (an integer), got {trials!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{model}: the tuning seed must be an integer, got {seed!r}")
        if not 0.0 < float(validation_fraction) < 0.9:
            raise ConfigError(f"{model}: validation_fraction must be in (0, 0.9), got {validation_fraction!r}")
        self.model = model
        self.params = dict(params or {})
        self.trials = trials
        self.seed = seed
        self.validation_fraction = float(validation_fraction)
        self._build({})  # bad params fail here, at construction, not at the first fit of a run

    # ---- what the wrapped model declares ------------------------------------------------------------------
    @property
    def default_name(self) -> str:
        return variant_name(self.model, tuned=True)

    def space(self) -> SearchSpace:
        """The wrapped class's search space (Tuned itself declares none: it is not tunable twice)."""
        from models import model_class

        return model_class(self.model).search_space

    @property
    def supports_exog(self) -> bool:  # type: ignore[override]  # the wrapped model's, per instance
        return self._build({}).supports_exog

    @property
    def supports_intervals(self) -> bool:  # type: ignore[override]  # the wrapped model's, per instance
        return self._build({}).supports_intervals

    @property
    def exog_columns(self) -> tuple[str, ...]:
        return self._build({}).exog_columns

    def needs_horizon(self) -> bool:
        return True

    def _build(self, values: Mapping[str, Any]) -> Forecaster:
        from models import make_model

        return make_model(self.model, **{**self.params, **values})

    # ---- fit: the search, then the refit on the whole window --------------------------------------------
    def fit(self, train: pd.DataFrame, *, horizon: int | None = None, calendar: str | None = None) -> Self:
        """Search on the training window's validation tail, then refit the best on all of `train`."""
        if horizon is None:
            raise DataError(f"{self.name}: tuning sizes its validation tail by the horizon; call fit(train, horizon=h)")
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon <= 0:
            raise DataError(f"{self.name}: fit horizon must be a positive integer, got {horizon!r}")
        H = int(horizon)
        uid, ds, y, _ = self._split(train, first=True)
        train = train.reset_index(drop=True)
        plain = self._build({})
        n = len(y)
        tail = max(H, int(round(self.validation_fraction * n)))
        need = tail + int(plain.min_train_size)
        if n < need:
            raise ModelFitError(
                self.name,
                uid,
                f"{n} training sessions, tuning needs at least {need} ({plain.min_train_size} for {self.model} plus "
                f"a validation tail of {tail}); use a longer history, a smaller horizon or validation_fraction",
            )
        head = train.iloc[: n - tail]
        origins = (n - tail - 1) + H * np.arange(tail // H)  # row of each origin; its H steps end inside train
        actual = y[origins[:, None] + np.arange(1, H + 1)]
        cutoffs = list(ds[origins])

        scores: dict[tuple, float] = {}  # TPE can repeat a point (small integer spaces): score it once
        reasons: list[str] = []

        def score(values: dict[str, Any]) -> float:
            key = tuple(sorted(values.items()))
            if key not in scores:
                try:
                    model = fit_model(self._build(values), head, H, calendar=calendar)
                    fc = model.predict_origins(train, cutoffs, H)
                    mae = float(np.mean(np.abs(fc.mean - actual)))
                    scores[key] = mae if math.isfinite(mae) else math.inf
                except Exception as exc:  # any model failure is a failed trial; the search goes on
                    reasons.append(f"{type(exc).__name__}: {exc}")
                    scores[key] = math.inf
            return scores[key]

        space = self.space()
        defaults = {k: _plain(getattr(plain, k)) for k in space}
        tried: list[tuple[dict[str, Any], float]] = [(defaults, score(defaults))]
        failed = int(not math.isfinite(tried[0][1]))
        if self.trials > 1:
            study = self._study(space, defaults, tried[0][1])

            def objective(trial: optuna.Trial) -> float:
                nonlocal failed
                values = suggest(trial, space)
                value = score(values)
                failed += int(not math.isfinite(value))
                tried.append((values, value))
                return value

            study.optimize(objective, n_trials=self.trials - 1, n_jobs=1)
        best_values, best = min(tried, key=lambda t: t[1])  # first of equals: trial 0 wins ties
        if not math.isfinite(best):
            raise ModelFitError(
                self.name,
                uid,
                f"all {len(tried)} tuning trials of {self.model} failed; first: {reasons[0] if reasons else '?'}",
            )
        log.debug("%s on %s: best %s, validation MAE %.6g, %d failed", self.name, uid, best_values, best, failed)
        self.unique_id_ = uid
        self.fit_horizon_ = H
        self.best_params_ = {k: _plain(v) for k, v in best_values.items()}
        self.validation_mae_ = best
        self.trials_ = len(tried)
        self.failed_trials_ = failed
        self.model_ = fit_model(self._build(self.best_params_), train, H, calendar=calendar)
        self.is_fitted_ = True
        return self

    def _study(self, space: SearchSpace, defaults: dict[str, Any], baseline: float) -> optuna.Study:
        """A seeded TPE study that already knows trial 0 (when the plain values lie inside the space)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        if math.isfinite(baseline) and all(dim.contains(defaults[k]) for k, dim in space.items()):
            study.add_trial(
                optuna.trial.create_trial(params=defaults, distributions=distributions(space), value=baseline)
            )
        return study

    # ---- everything else is the refitted model's -------------------------------------------------------
    def _fitted(self) -> Forecaster:
        model = getattr(self, "model_", None)
        if model is None:
            raise NotFittedError(f"{self.name}: call fit() before predict()/update()")
        return model

    def update(self, new: pd.DataFrame) -> Self:
        self._fitted().update(new)
        return self

    def predict(self, horizon: int) -> pd.DataFrame:
        return self._fitted().predict(horizon)

    def predict_origins(self, history: pd.DataFrame, cutoffs: Sequence[pd.Timestamp], horizon: int) -> OriginForecasts:
        return self._fitted().predict_origins(history, cutoffs, horizon)

    def forecast_block(self, new: NewRows, counts: np.ndarray, horizon: int) -> tuple[np.ndarray, Intervals | None]:
        return self._fitted().forecast_block(new, counts, horizon)
