"""Model variants: `<model>+cov`, `<model>+tuned`, `<model>+cov+tuned`, run on the same folds as `<model>`.

A variant is a registry model with covariate columns added to its exogenous inputs (`+cov`: the class names the
constructor argument that takes them, `exog_param`) and/or its hyperparameters searched at every refit inside the
training window (`+tuned`: models.tuning.Tuned, over the class's declared `search_space`). The suffixes are fixed
and ordered so every run, table and report spells a variant one way; the diagnosis (backtest.diagnosis) pairs each
variant with its plain model by `parse_variant(name).base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError

if TYPE_CHECKING:
    from features.covariates import CovariateConfig
    from models.base import Forecaster

COV = "cov"
TUNED = "tuned"
SEP = "+"
# The four cells of the diagnosis table, in display order.
KINDS = ("plain", f"{SEP}{COV}", f"{SEP}{TUNED}", f"{SEP}{COV}{SEP}{TUNED}")


@dataclass(frozen=True)
class Variant:
    """A parsed model name: the registry model and which of the two treatments it gets."""

    base: str
    cov: bool = False
    tuned: bool = False

    @property
    def name(self) -> str:
        return variant_name(self.base, cov=self.cov, tuned=self.tuned)

    @property
    def kind(self) -> str:
        """'plain', '+cov', '+tuned' or '+cov+tuned'."""
        return self.name[len(self.base) :] or "plain"

    @property
    def is_plain(self) -> bool:
        return not (self.cov or self.tuned)


def is_cov(name: str) -> bool:
    """Whether the model `name` is a `+cov` variant (it reads the covariate columns)."""
    return SEP in str(name) and parse_variant(name).cov


def variant_name(base: str, *, cov: bool = False, tuned: bool = False) -> str:
    """The one spelling of a variant: base, then +cov, then +tuned."""
    return base + (f"{SEP}{COV}" if cov else "") + (f"{SEP}{TUNED}" if tuned else "")


def parse_variant(name: str) -> Variant:
    """'lstm+cov+tuned' -> Variant('lstm', cov=True, tuned=True); a plain name is its own base.

    Suffixes may come in either order and any case; anything else after a '+' is a ConfigError naming it.
    """
    base, *suffixes = str(name).split(SEP)
    flags = [s.strip().lower() for s in suffixes]
    unknown = [s for s in flags if s not in (COV, TUNED)]
    if unknown or len(set(flags)) != len(flags) or (suffixes and not base.strip()):
        raise ConfigError(
            f"model variant {name!r}: after the model name only '+{COV}' and '+{TUNED}' may follow, each once "
            f"(e.g. lstm+{COV}+{TUNED})"
        )
    return Variant(base.strip(), cov=COV in flags, tuned=TUNED in flags)


def expand_variants(
    models: Mapping[str, Mapping[str, Any]],
    *,
    covariates: CovariateConfig | None = None,
    trials: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """{name: constructor params} of every unit model of a run: each plain model, then its variants.

    With `covariates` (features.covariates) every model whose class takes exogenous inputs
    (`exog_param`) also runs as `<model>+cov`: its own exogenous columns plus the covariate columns of the kinds it
    declares (`covariate_kinds`). With `trials` every model with a search space also runs as `<model>+tuned` (and
    `<model>+cov+tuned`): models.tuning.Tuned's arguments. A name given as a variant (`lstm+cov`) runs as only that
    variant; it needs the treatment's option, and a model that cannot take it is refused, naming those that can.
    """
    from models import canonical_name, model_class, model_names

    out: dict[str, dict[str, Any]] = {}
    for name, params in models.items():
        variant = parse_variant(name)
        base = canonical_name(model_names(), variant.base)
        cls = model_class(base)
        wanted = [variant] if not variant.is_plain else [Variant(base)]
        if variant.is_plain:
            if covariates and cls.exog_param:
                wanted.append(Variant(base, cov=True))
            if trials and cls.search_space:
                wanted.append(Variant(base, tuned=True))
                if covariates and cls.exog_param:
                    wanted.append(Variant(base, cov=True, tuned=True))
        for v in wanted:
            v = Variant(base, cov=v.cov, tuned=v.tuned)
            out[v.name] = _variant_params(v, cls, dict(params), covariates=covariates, trials=trials, seed=seed)
    if trials and not any(parse_variant(n).tuned for n in out):
        from models.tuning import tunable_models

        raise ConfigError(
            f"--tune: none of the models {list(models)} has a search space; "
            f"tunable models: {', '.join(tunable_models())}"
        )
    return out


def _variant_params(
    variant: Variant,
    cls: type[Forecaster],
    params: dict[str, Any],
    *,
    covariates: CovariateConfig | None,
    trials: int | None,
    seed: int,
) -> dict[str, Any]:
    from models import model_class, model_names

    if variant.cov:
        if not cls.exog_param:
            takers = [n for n in model_names() if model_class(n).exog_param]
            raise ConfigError(
                f"{variant.name}: {variant.base} takes no exogenous inputs; models that take covariates: "
                f"{', '.join(takers)}"
            )
        if not covariates:
            raise ConfigError(f"{variant.name}: name the covariates with --covariates TICKERS (covariates=[...])")
        kinds = cls.covariate_kinds
        own = tuple(params.get(cls.exog_param, _default(cls, cls.exog_param)) or ())
        chosen = tuple(covariates.columns(kinds))
        params = {**params, cls.exog_param: tuple(dict.fromkeys((*own, *chosen)))}
    if variant.tuned:
        if not cls.search_space:
            from models.tuning import tunable_models

            raise ConfigError(
                f"{variant.name}: {variant.base} has no search space; tunable models: {', '.join(tunable_models())}"
            )
        if not trials:
            raise ConfigError(f"{variant.name}: give the number of trials with --tune N (tune=N)")
        return {"model": variant.base, "params": params, "trials": int(trials), "seed": int(seed)}
    return params


def _default(cls: type, param: str) -> Any:
    """The constructor's default of `param` (the model's own exogenous columns when the user gave none)."""
    import inspect

    parameter = inspect.signature(cls).parameters.get(param)
    return () if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default
