"""Model zoo behind one Forecaster contract; `make_model(name, **params)` imports each family on demand.

`import models` loads neither TensorFlow nor Prophet: the registry holds import paths, not classes.
Adding a model = one module + one REGISTRY line; tests/models/test_contract.py picks it up.
Each entry's `summary` is the model's one description, and each instance made here is named after its key
(`make_model("lstm").name == "lstm"`, though one class serves rnn, lstm and gru; see models/naming.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

from common.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing models.base at run time would load pandas and the calendars
    from models.base import Forecaster
    from models.classifiers import EventClassifier

_T = TypeVar("_T")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: where the class lives, the one description of the model, and its default arguments.

    `summary` is the only description a model has (`pricecast models` prints it); classes carry none, since one
    class can serve several entries (rnn/lstm/gru) and listing models must not import their modules.
    """

    target: str  # "module:Class"
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    family: str = "statistical"  # statistical | prophet | neural | ml | ensemble


REGISTRY: dict[str, ModelSpec] = {
    "naive": ModelSpec("models.baselines:Naive", "random walk: the last observed value, the benchmark to beat"),
    "seasonal_naive": ModelSpec("models.baselines:SeasonalNaive", "the value one season (m sessions) ago"),
    "drift": ModelSpec("models.baselines:Drift", "random walk with drift: the line through first and last value"),
    "moving_average": ModelSpec("models.baselines:MovingAverage", "mean of the last k sessions"),
    "ses": ModelSpec("models.smoothing:SES", "simple exponential smoothing (level only)"),
    "holt": ModelSpec("models.smoothing:Holt", "Holt's linear trend, optionally damped"),
    "holt_winters": ModelSpec("models.smoothing:HoltWinters", "Holt-Winters with additive or multiplicative season"),
    "ets": ModelSpec("models.smoothing:AutoETS", "ETS state-space model, chosen among candidates by AICc"),
    "arima": ModelSpec("models.arima:AutoARIMA", "ARIMA, order chosen by unit-root test + stepwise AICc search"),
    "sarima": ModelSpec("models.arima:SARIMA", "seasonal ARIMA with period m, orders chosen automatically"),
    "arimax": ModelSpec("models.arima:ARIMAX", "ARIMA with exogenous features known at forecast time"),
    "ts_regression": ModelSpec(
        "models.ts_regression:TSRegression",
        "regression of log price on trend, calendar terms and covariates, with ARMA(p, q) errors",
    ),
    "prophet": ModelSpec(
        "models.prophet_model:ProphetForecaster",
        "Prophet: trend + weekly/yearly seasonality + market holidays",
        family="prophet",
    ),
    "rnn": ModelSpec(
        "models.rnn:RecurrentForecaster",
        "Keras SimpleRNN, direct multi-step",
        {"cell": "rnn"},
        "neural",
    ),
    "lstm": ModelSpec(
        "models.rnn:RecurrentForecaster",
        "Keras LSTM, direct multi-step",
        {"cell": "lstm"},
        "neural",
    ),
    "gru": ModelSpec("models.rnn:RecurrentForecaster", "Keras GRU, direct multi-step", {"cell": "gru"}, "neural"),
    "global_lstm": ModelSpec(
        "models.global_rnn:GlobalRecurrentForecaster",
        "one Keras LSTM trained across every series of the run (per-series scaling), direct multi-step",
        {"cell": "lstm"},
        "neural",
    ),
    "global_gru": ModelSpec(
        "models.global_rnn:GlobalRecurrentForecaster",
        "one Keras GRU trained across every series of the run (per-series scaling), direct multi-step",
        {"cell": "gru"},
        "neural",
    ),
    "random_forest": ModelSpec(
        "models.regressors:RandomForestForecaster", "random forest on lagged returns, direct multi-step", family="ml"
    ),
    "gradient_boosting": ModelSpec(
        "models.regressors:GradientBoostingForecaster",
        "histogram gradient boosting on lagged returns, direct multi-step",
        family="ml",
    ),
    "svr": ModelSpec(
        "models.regressors:SVRForecaster",
        "RBF support vector regression on lagged returns, direct multi-step",
        family="ml",
    ),
    "ensemble": ModelSpec("models.ensemble:Ensemble", "mean or median of member models' forecasts", family="ensemble"),
}


def model_class(name: str) -> type[Forecaster]:
    """The class registered under `name` (imports its module)."""
    from models.base import Forecaster

    return _load_class(_spec(name)[1], Forecaster)


def make_model(name: str, **params: Any) -> Forecaster:
    """A new unfitted model named `name` (its registry spelling): registry defaults overridden by `params`.

    A variant name (models.variants: `lstm+cov`, `arima+tuned`) builds its registry model with the variant's
    parameters (models.variants.expand_variants makes them): `+cov` carries its covariate columns as the model's
    exogenous inputs, `+tuned` is a models.tuning.Tuned around the registry model.
    """
    from models.variants import SEP, parse_variant, variant_name

    if SEP in str(name):
        variant = parse_variant(name)
        key, spec = _spec(variant.base)
        full = variant_name(key, cov=variant.cov, tuned=variant.tuned)
        if variant.tuned:
            from models.tuning import Tuned

            return Tuned(**params).named(full)
        return model_class(key)(**{**spec.defaults, **params}).named(full)
    key, spec = _spec(name)
    return model_class(key)(**{**spec.defaults, **params}).named(key)


def model_names(family: str | None = None) -> list[str]:
    return [n for n, s in REGISTRY.items() if family is None or s.family == family]


def _lookup(registry: dict[str, ModelSpec], name: str, kind: str, tail: str = "") -> tuple[str, ModelSpec]:
    """(registered key, spec) for `name` (case-insensitive: 'NAIVE' is naive), or a ConfigError naming the
    closest registered names."""
    key = canonical_name(registry, name)
    if key in registry:
        return key, registry[key]
    import difflib

    close = difflib.get_close_matches(name, registry, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown {kind} {name!r}{hint}; registered {kind}s: {', '.join(registry)}{tail}")


def _load_class(spec: ModelSpec, base: type[_T]) -> type[_T]:
    """Import `spec.target` ("module:Class") and check it implements the registry's contract `base`."""
    module, _, attr = spec.target.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"registry entry {spec.target} is not a {base.__name__} subclass; fix models/__init__.py")
    return cls


def canonical_name(registry: Collection[str], name: str) -> str:
    """The registered spelling of `name`, matched case-insensitively ('Lstm' -> 'lstm'); `name` when none matches."""
    if name in registry:
        return name
    return {key.lower(): key for key in registry}.get(str(name).strip().lower(), name)


def _spec(name: str) -> tuple[str, ModelSpec]:
    return _lookup(REGISTRY, name, "model", " (see `pricecast models`)")


# ---- event classifiers ("will the close rise >= x% within h sessions?") ---------------------------------------
# A different contract (models/classifiers.py: fit(features, labels) / predict_proba(features, rows)), hence its own
# registry; REGISTRY above stays the Forecaster zoo. `pricecast backtest --task event` lists and picks from here.
EVENT_REGISTRY: dict[str, ModelSpec] = {
    "base_rate": ModelSpec("models.classifiers:BaseRate", "climatology: the training event rate", family="event"),
    "logistic": ModelSpec(
        "models.classifiers:LogisticEvent", "logistic regression on standardised features", family="event"
    ),
    "rnn_event": ModelSpec(
        "models.event_rnn:RecurrentEventClassifier", "Keras SimpleRNN classifier", {"cell": "rnn"}, "event"
    ),
    "lstm_event": ModelSpec(
        "models.event_rnn:RecurrentEventClassifier", "Keras LSTM classifier", {"cell": "lstm"}, "event"
    ),
    "gru_event": ModelSpec(
        "models.event_rnn:RecurrentEventClassifier", "Keras GRU classifier", {"cell": "gru"}, "event"
    ),
}


def event_model_class(name: str) -> type[EventClassifier]:
    """The event classifier class registered under `name` (imports its module)."""
    from models.classifiers import EventClassifier

    return _load_class(_event_spec(name)[1], EventClassifier)


def make_event_model(name: str, **params: Any) -> EventClassifier:
    """A new unfitted event classifier named `name` (its registry spelling): registry defaults overridden by
    `params`."""
    key, spec = _event_spec(name)
    return event_model_class(key)(**{**spec.defaults, **params}).named(key)


def event_model_names() -> list[str]:
    return list(EVENT_REGISTRY)


def _event_spec(name: str) -> tuple[str, ModelSpec]:
    return _lookup(EVENT_REGISTRY, name, "event model")
