"""The typed parameters of every flow: one pydantic model per flow, built once and validated once.

The CLI builds them from its options (one option per field), a deployment from prefect.yaml, the Prefect UI from
its run form (Prefect renders a BaseModel parameter as a nested form). Whoever builds one, the same validators
run, and a bad value raises ConfigError naming the field. The flows read resolved values from them (the fold plan,
the models in the registry's spelling, the source with the sample's default start): nothing is re-validated or
re-derived further down. The refit policy stays `None` ("each model's own default") here and is resolved once per
unit by backtest.units.plan_price_units / plan_event_units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtest.conformal import DEFAULT_WINDOW, window_for
from backtest.folds import FoldPlan
from common.errors import ConfigError
from common.redact import redact
from common.schema import CHAMPION
from ingest.spec import SourceSpec
from models.variants import SEP
from tasks.fitted import MAX_UPDATE_SESSIONS

if TYPE_CHECKING:
    from features.covariates import CovariateConfig

# Every model family on the sample in a few minutes (make run); 'all' adds the slow and seasonal ones.
DEFAULT_MODELS = ("naive", "drift", "moving_average", "ses", "holt", "ets", "arima", "prophet", "lstm", "ensemble")
# Statistical families plus their combination for the daily forecast; the ensemble always runs.
FORECAST_MODELS = ("naive", "drift", "ses", "holt", "ets", "arima", "ensemble")
EVENT_DEFAULT_MODELS = ("base_rate", "logistic", "lstm_event")

PositiveInt = Annotated[int, Field(gt=0)]
REFIT_HELP = "0 = fit once, 1 = every fold, k = every k-th fold"
MODELS_HELP = "Registered models (pricecast models), in the registry's spelling or any case"
MODEL_PARAMS_HELP = 'Constructor parameters per model, e.g. {"ets": {"damped": true}}'
TIMEOUT_HELP = (
    "Seconds one (ticker, model) unit may run before it is stopped and recorded as failed "
    "(a global model's one unit over every ticker: this times the tickers)"
)
COVARIATES_HELP = (
    "Tickers used as inputs, not forecast (indices, commodities, FX), aligned as of each target's close; "
    "models that take exogenous inputs also run as <model>+cov"
)
COVARIATE_LAGS_HELP = "Extra lags (sessions) of every covariate column, e.g. [1, 2]; lag 0 is always there"
TUNE_HELP = "Trials of hyperparameter search per model at each refit (Optuna TPE) on the training window's tail"
INTERVALS_HELP = (
    "native: each model's own prediction intervals, split-conformal ones for models without (the ensemble); "
    "conformal: split-conformal intervals for every model"
)
CALIBRATION_HELP = (
    "Origins before the first fold, forecast only to calibrate conformal intervals (0: calibrate on earlier folds "
    "only, so the first folds have none)"
)
BATCH_HELP = (
    "Tickers per Prefect task, per model; empty: one unit per task up to 8 tickers, else a quarter of the tickers"
)


def _refit_every(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ValueError(f"must be an integer >= 0 ({REFIT_HELP})")
    return value


class ParamsError(ConfigError):
    """Invalid flow parameters: one line for the log, and `problems` (field, reason, value) for a caller that names
    its own spelling of each field (the CLI says --refit-every where the model says refit_every)."""

    def __init__(self, model: str, problems: list[tuple[str, str, Any]]) -> None:
        self.problems = problems
        clauses = [reason if not field else f"{field}: {reason} (got {value!r})" for field, reason, value in problems]
        super().__init__(redact(f"invalid {model}: " + "; ".join(clauses)))


class _Params(BaseModel):
    """Shared behaviour: frozen, unknown fields refused, ConfigError (one line per field) instead of pydantic's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ParamsError(type(self).__name__, _problems(exc)) from None

    @cached_property
    def run_source(self) -> SourceSpec:
        """The source as the run reads it: the sample's default start applied (ingest.sources.sample)."""
        from ingest.sources.sample import default_start

        source: SourceSpec = getattr(self, "source")  # noqa: B009 - every subclass has a `source` field
        return source.model_copy(update={"start": default_start(source.source, source.start)})  # validated already


def _problems(exc: ValidationError) -> list[tuple[str, str, Any]]:
    """(field, reason, value) per invalid field; a nested SourceSpec's own sentence as it is, with no field."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        reason = str(error["msg"]).removeprefix("Value error, ")
        if reason.startswith("invalid SourceSpec: ") or not where:
            problems.append(("", reason, None))
        else:
            problems.append((where, reason, error.get("input")))
    return problems


def _names(
    value: Any,
    *,
    default: tuple[str, ...],
    registry: Mapping[str, Any],
    check: Callable[[str], Any],
    extra: tuple[str, ...] = (),
) -> list[str]:
    """Model names from a list or a CLI string ('default', 'all' or a comma list), in the registry's spelling
    (case-insensitive), duplicates dropped; an unknown name fails with the close matches (`check` raises)."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "default":
            return list(default)
        if key == "all":
            return list(registry)
        value = [part.strip() for part in value.split(",") if part.strip()]
    names = list(dict.fromkeys(_canonical([*extra, *registry], str(n)) for n in value))
    if not names:
        raise ValueError("no models given; pass a comma list, 'default' or 'all'")
    for name in names:
        base = name.split(SEP)[0]
        if base not in extra and base not in registry:
            check(base)  # ConfigError naming the registered models and the close matches
    return names


def _canonical(registry: list[str], name: str) -> str:
    """The registry's spelling of a model name, or of a variant's model ('LSTM+Cov' -> 'lstm+cov')."""
    from models import canonical_name
    from models.variants import parse_variant, variant_name

    if SEP not in name:
        return canonical_name(registry, name)
    variant = parse_variant(name)
    return variant_name(canonical_name(registry, variant.base), cov=variant.cov, tuned=variant.tuned)


class _BacktestRun(_Params):
    """What both backtest flows take: the source, the models, the fold windows, the refit policy and the run's
    limits and output. Subclasses set their own defaults (models, windows, step) and add their task's fields."""

    # Plain (not factory) defaults: Prefect's run form shows them. Pydantic copies a mutable default per instance.
    source: SourceSpec = SourceSpec()
    models: list[str] = Field(default=[], description=MODELS_HELP)
    model_params: dict[str, dict[str, Any]] = Field(default={}, description=MODEL_PARAMS_HELP)
    windows: PositiveInt = Field(default=20, description="Rolling origins (folds) per series")
    step: PositiveInt = Field(default=5, description="Sessions between consecutive origins")
    window_type: Literal["expanding", "sliding"] = "expanding"
    train_size: PositiveInt | None = Field(default=None, description="Sliding-window length in sessions")
    refit_every: int | None = Field(default=None, description=f"{REFIT_HELP}; empty: each model's measured default")
    unit_timeout_seconds: Annotated[float, Field(gt=0)] | None = Field(default=3600.0, description=TIMEOUT_HELP)
    out_dir: str | None = Field(
        default=None, description="Output directory; empty: PRICECAST_HOME/runs/<time>-<run name>"
    )
    refresh_cache: bool = Field(default=False, description="Recompute units even when a cached result has the same key")
    batch_size: PositiveInt | None = Field(default=None, description=BATCH_HELP)

    _refit = field_validator("refit_every")(_refit_every)

    @property
    def plan(self) -> FoldPlan:  # overridden by each flow's parameters
        raise NotImplementedError

    @model_validator(mode="after")
    def _plan_checks(self) -> Self:
        self.plan  # noqa: B018 - the fold plan's own checks (sliding needs train_size) run at construction
        return self

    def params_for(self, name: str) -> dict[str, Any]:
        """Constructor parameters of model `name` in this run (registry defaults apply to the rest)."""
        return dict(self.model_params.get(name, {}))


class BacktestParams(_BacktestRun):
    """backtest_flow: every model on identical rolling-origin folds of every series, scored against naive.

    With `covariates` and/or `tune`, capable models also run as variants on the same folds (models.variants):
    `<model>+cov`, `<model>+tuned`, `<model>+cov+tuned`; `unit_models` is the resolved {name: params} of them all.
    """

    models: list[str] = Field(default=list(DEFAULT_MODELS), description=MODELS_HELP)
    horizon: PositiveInt = Field(default=5, description="Forecast horizon in sessions")
    covariates: list[str] = Field(default=[], description=COVARIATES_HELP)
    covariate_lags: list[PositiveInt] = Field(default=[], description=COVARIATE_LAGS_HELP)
    tune: PositiveInt | None = Field(default=None, description=TUNE_HELP)
    tune_seed: int = Field(default=0, description="Seed of the tuner (Optuna TPE): the same seed, the same choices")
    intervals: Literal["native", "conformal"] = Field(default="native", description=INTERVALS_HELP)
    calibration_windows: Annotated[int, Field(ge=0, le=500)] = Field(
        default=DEFAULT_WINDOW, description=CALIBRATION_HELP
    )

    @field_validator("covariates", mode="before")
    @classmethod
    def _covariates(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return list(dict.fromkeys(str(v).strip() for v in value or [] if str(v).strip()))

    @model_validator(mode="after")
    def _variants(self) -> Self:
        targets = set(self.source.tickers or ())
        both = sorted(targets & set(self.covariates))
        if both:
            raise ValueError(f"{both} named both as tickers to forecast and as covariates; name each once")
        self.unit_models  # noqa: B018 - variant names and options are checked at construction
        return self

    @cached_property
    def ingest_source(self) -> SourceSpec:
        """The source as the run reads it (run_source), asked for the covariates too when it names its tickers."""
        source = self.run_source
        if not self.covariates or source.tickers is None:
            return source
        return source.model_copy(update={"tickers": (*source.tickers, *self.covariates)})

    @property
    def variant_meta(self) -> dict[str, Any]:
        """What the run's metadata says of covariates and tuning (nothing when neither is used)."""
        meta: dict[str, Any] = {}
        if self.covariates:
            meta |= {"covariates": list(self.covariates), "covariate_lags": list(self.covariate_lags)}
        if self.tune:
            meta |= {"tune_trials": self.tune, "tune_seed": self.tune_seed}
        return meta

    @cached_property
    def covariate_config(self) -> CovariateConfig:
        from features.covariates import CovariateConfig

        return CovariateConfig(tickers=tuple(self.covariates), lags=tuple(self.covariate_lags))

    @cached_property
    def unit_models(self) -> dict[str, dict[str, Any]]:
        """{name: constructor params} of every model the run fits: the plain ones and their variants."""
        from models.variants import expand_variants

        plain = {name: self.params_for(name.split(SEP)[0]) for name in self.models}
        return expand_variants(plain, covariates=self.covariate_config or None, trials=self.tune, seed=self.tune_seed)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        from models import REGISTRY, model_class

        return _names(value, default=DEFAULT_MODELS, registry=REGISTRY, check=model_class)

    @property
    def conformal_window(self) -> int:
        """Known scores a conformal band is computed from: the calibration windows, at least the 20 a finite 95%
        band needs (backtest.conformal)."""
        return window_for(self.calibration_windows)

    @cached_property
    def plan(self) -> FoldPlan:
        """The fold plan every model shares."""
        return FoldPlan(
            horizon=self.horizon,
            step=self.step,
            windows=self.windows,
            window_type=self.window_type,
            train_size=self.train_size,
        )


class EventBacktestParams(_BacktestRun):
    """event_backtest_flow: classifiers of "the close rises >= threshold within lookahead sessions" vs the base rate.

    Folds are cut on each series' labelled sessions; each fold scores `origins_per_fold` consecutive origins
    (default: `step`, so the folds' origins tile the test span and every labelled session there is scored once).
    """

    models: list[str] = Field(default=list(EVENT_DEFAULT_MODELS), description="Event models; base_rate is always added")
    windows: PositiveInt = Field(default=50, description="Folds per series, cut on labelled sessions")
    threshold: Annotated[float, Field(gt=-1.0, allow_inf_nan=False)] = Field(
        default=0.05, description="The rise, as a fraction (0.05 = 5%)"
    )
    lookahead: Annotated[int, Field(gt=0, le=260)] = Field(default=10, description="Sessions the rise may take")
    origins_per_fold: PositiveInt | None = Field(default=None, description="Test origins each fold scores; empty: step")
    tail_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.2, description="Share of each training window the decision threshold is chosen on (its tail)"
    )

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        from models import EVENT_REGISTRY, event_model_class

        return _names(value, default=EVENT_DEFAULT_MODELS, registry=EVENT_REGISTRY, check=event_model_class)

    @cached_property
    def plan(self) -> FoldPlan:
        """The fold plan on labelled sessions: `origins_per_fold` test origins per fold."""
        from backtest.event_task import event_fold_plan

        return event_fold_plan(
            origins_per_fold=self.origins_per_fold or self.step,
            step=self.step,
            windows=self.windows,
            window_type=self.window_type,
            train_size=self.train_size,
        )


class ForecastParams(_Params):
    """forecast_flow: every model fitted on each ticker's full history, forecasting the next `horizon` sessions."""

    source: SourceSpec = SourceSpec()
    models: list[str] = Field(
        default=list(FORECAST_MODELS), description="Registered models, or champion (each ticker's stored champion)"
    )
    model_params: dict[str, dict[str, Any]] = Field(default={}, description=MODEL_PARAMS_HELP)
    horizon: Annotated[int, Field(gt=0, le=260)] = 5
    max_update_sessions: Annotated[int, Field(ge=0)] = MAX_UPDATE_SESSIONS

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        from models import REGISTRY, model_class

        names = _names(value, default=FORECAST_MODELS, registry=REGISTRY, check=model_class, extra=(CHAMPION,))
        return list(dict.fromkeys([*names, "ensemble"]))  # the combination always runs

    def params_for(self, name: str) -> dict[str, Any]:
        return dict(self.model_params.get(name, {}))
