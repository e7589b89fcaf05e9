"""The one block loop every backtest task runs: fit at a refit, ONE batched predict per block, failures per fold.

Refit policy `refit_every=k` (folds are processed in blocks that start with a refit):
    k = 1   refit on every fold's own training window;
    k > 1   refit on the first fold of each block of k folds; every scorable fold of the block is predicted in
            ONE call with parameters fixed (conditioned on data up to each origin), so batched models (Keras)
            predict all origins of a block at once;
    k = 0   fit once on the first fold's training window, then predict every remaining fold in one call.
After a failed fold the next fold starts a new block (it refits from scratch). A refit builds a fresh model
(`BlockTask.build`), unless the previous model has a truthy `warm_start` attribute: then the same instance is
fitted again and the model decides how to reuse its state.

When the batched call (or scoring its output) fails for a block of several folds, the block is replayed fold by
fold from a fresh fit to find the failing fold, so the folds before it keep their output.

Timing: `fit_seconds` is the fit of a block's first fold (0 for the other folds); `predict_seconds` is the batched
call's time divided evenly over the folds it predicted (a batched call has no per-fold split). Building a model
(construction, on-demand imports) and scoring are not timed, and neither is waiting for a lock another unit holds
(Keras training is serialised in-process; common.timing.Stopwatch leaves such waits out).

A task plugs in through `BlockTask`: price forecasting (backtest.engine.PriceTask) and the event task
(backtest.units.EventTask). This module also holds what every task shares: the refit-policy resolution and
its validation, the failure record and the `models` argument parser.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from backtest.folds import Fold
from common.errors import ConfigError, DataError, ModelFitError
from common.schema import ERROR_TYPE, FOLD, ID, MESSAGE, MODEL
from common.timing import Stopwatch
from models import EVENT_REGISTRY, REGISTRY, event_model_class, model_class
from models.variants import SEP, parse_variant

log = logging.getLogger(__name__)

# The policy of a model that declares none (a class without `default_refit_every`, or a name outside both
# registries: a test's or a user's own factory). Refitting on every fold assumes nothing about the model. Every
# registered class declares its own, measured policy (models.base.Forecaster: 10, models.classifiers: 1).
DEFAULT_REFIT_EVERY = 1

FitT = TypeVar("FitT")  # what a task's fit returns (the fitted model, plus what the task derives at the fit)
BatchT = TypeVar("BatchT")  # what one batched predict call returns
OutT = TypeVar("OutT")  # one fold's scored output
OutT_co = TypeVar("OutT_co", covariant=True)


class LeakageError(DataError):
    """A fold would train on data at or after its test window: a bug in the fold plan or engine, never ignored."""


class BlockTask(Protocol[FitT, BatchT, OutT_co]):
    """What a task type plugs into `run_blocks`; any exception but LeakageError is recorded as a failed fold."""

    def build(self) -> Any:
        """A fresh unfitted model (not timed: construction and on-demand imports are not fitting)."""
        ...

    def fit(self, model: Any, fold: Fold) -> FitT:
        """Fit `model` on `fold`'s training window (timed as the fold's fit_seconds)."""
        ...

    def unscorable(self, fold: Fold) -> Exception | None:
        """Why `fold` cannot be predicted at all (recorded as its failure, the block goes on), or None."""
        ...

    def predict(self, fitted: FitT, folds: Sequence[Fold]) -> BatchT:
        """ONE call predicting every origin of `folds` with the parameters fitted at the block's refit (timed)."""
        ...

    def score(self, fitted: FitT, fold: Fold, batch: BatchT) -> OutT_co:
        """`fold`'s output from the batched prediction (not timed); raising replays the block fold by fold."""
        ...


@dataclass(frozen=True)
class FoldDone(Generic[OutT]):
    """One fold that produced output, with its timings."""

    fold: Fold
    output: OutT
    fit_seconds: float
    predict_seconds: float
    refit: bool


@dataclass
class BlockRun(Generic[OutT]):
    """Every fold of a unit either done (in fold order) or failed with its exception (in fold order)."""

    done: list[FoldDone[OutT]] = field(default_factory=list)
    failed: list[tuple[Fold, BaseException]] = field(default_factory=list)


@dataclass
class _Block(Generic[OutT]):
    done: list[FoldDone[OutT]] = field(default_factory=list)
    failed: list[tuple[Fold, BaseException]] = field(default_factory=list)
    consumed: int = 0  # folds of the block this pass settled; the next block starts after them
    model: Any = None  # the fitted model a warm start may reuse; None after a failure (the next fold refits)


def run_blocks(
    folds: Sequence[Fold],
    task: BlockTask[FitT, BatchT, OutT],
    *,
    refit_every: int,
    replay: bool = True,
    name: str = "model",
) -> BlockRun[OutT]:
    """Run `task` over `folds` under the refit policy `refit_every` (see module docstring), taken as given: it was
    resolved and validated once, when the unit was planned (backtest.units.PriceUnit / EventUnit check it).

    replay=False records every fold of a failed batched call as failed instead of replaying the block.
    `name` labels the log lines ("ets on AAPL").
    """
    run: BlockRun[OutT] = BlockRun()
    previous: Any = None
    i = 0
    while i < len(folds):
        size = len(folds) - i if refit_every == 0 else refit_every
        outcome = _run_block(task, list(folds[i : i + size]), previous, replay=replay, name=name)
        run.done.extend(outcome.done)
        run.failed.extend(outcome.failed)
        previous, i = outcome.model, i + outcome.consumed
    return run


def _run_block(
    task: BlockTask[FitT, BatchT, OutT], block: list[Fold], previous: Any, *, replay: bool, name: str
) -> _Block[OutT]:
    """Fit on block[0]'s window and predict every scorable fold of the block in one call."""
    try:
        model = previous if previous is not None and getattr(previous, "warm_start", False) else task.build()
        with Stopwatch() as watch:
            fitted = task.fit(model, block[0])
        fit_s = watch.seconds
    except LeakageError:
        raise
    except Exception as exc:  # models raise anything; recorded as a failure of this fold
        return _Block(failed=[(block[0], exc)], consumed=1)
    problems = {fold.fold: task.unscorable(fold) for fold in block}
    scorable = [fold for fold in block if problems[fold.fold] is None]
    try:
        done = _predict(task, fitted, scorable, first=block[0], fit_s=fit_s)
        return _settle(block, problems, done, failed={}, consumed=len(block), model=model)
    except LeakageError:
        raise
    except Exception as exc:
        if replay and len(scorable) > 1:
            log.info("%s: batched forecast of %d origins failed (%s); replaying fold by fold", name, len(scorable), exc)
            return _replay(task, block, problems)
        failed: dict[int, BaseException] = {fold.fold: exc for fold in scorable}
        return _settle(block, problems, [], failed=failed, consumed=len(block), model=None)


def _replay(
    task: BlockTask[FitT, BatchT, OutT], block: list[Fold], problems: dict[int, Exception | None]
) -> _Block[OutT]:
    """Fold-by-fold version of a block from a fresh fit: stops at the first failing fold."""
    try:
        model = task.build()
        with Stopwatch() as watch:
            fitted = task.fit(model, block[0])
        fit_s = watch.seconds
    except LeakageError:
        raise
    except Exception as exc:
        return _Block(failed=[(block[0], exc)], consumed=1)
    done: list[FoldDone[OutT]] = []
    for k, fold in enumerate(block):
        if problems[fold.fold] is not None:
            continue
        try:
            done += _predict(task, fitted, [fold], first=block[0], fit_s=fit_s)
        except LeakageError:
            raise
        except Exception as exc:
            return _settle(block[: k + 1], problems, done, failed={fold.fold: exc}, consumed=k + 1, model=None)
    return _settle(block, problems, done, failed={}, consumed=len(block), model=model)


def _predict(
    task: BlockTask[FitT, BatchT, OutT], fitted: FitT, folds: list[Fold], *, first: Fold, fit_s: float
) -> list[FoldDone[OutT]]:
    """One batched predict for `folds`, then each fold's output; the block's first fold carries the fit time."""
    if not folds:
        return []
    with Stopwatch() as watch:
        batch = task.predict(fitted, folds)
    per_fold = watch.seconds / len(folds)
    return [
        FoldDone(fold, task.score(fitted, fold, batch), fit_s if fold is first else 0.0, per_fold, fold is first)
        for fold in folds
    ]


def _settle(
    folds: list[Fold],
    problems: dict[int, Exception | None],
    done: list[FoldDone[OutT]],
    *,
    failed: dict[int, BaseException],
    consumed: int,
    model: Any,
) -> _Block[OutT]:
    """The block's outcome with failures in fold order: unscorable folds and failed predictions together."""
    reasons: dict[int, BaseException] = {k: v for k, v in problems.items() if v is not None} | failed
    settled = [(f, reasons[f.fold]) for f in folds[:consumed] if f.fold in reasons]
    return _Block(done=done, failed=settled, consumed=consumed, model=model)


# ---- what every task shares ------------------------------------------------------------------------------------
def failure_row(uid: str, model: str, fold: Fold | int, exc: BaseException) -> dict[str, Any]:
    """One failure record; anything that is not a ModelFitError is wrapped so the message names model and series.

    LeakageError is re-raised: it is a bug in the fold plan or engine, never a model failure.
    """
    if isinstance(exc, LeakageError):
        raise exc
    wrapped = exc if isinstance(exc, ModelFitError) else ModelFitError(model, uid, f"{type(exc).__name__}: {exc}")
    if wrapped.model == "?" or wrapped.unique_id == "?":  # raised by a task's own output checks
        wrapped = ModelFitError(model, uid, wrapped.reason)
    number = fold.fold if isinstance(fold, Fold) else int(fold)
    return {ID: uid, MODEL: model, FOLD: number, ERROR_TYPE: type(exc).__name__, MESSAGE: str(wrapped)}


def check_refit_every(refit_every: object) -> None:
    """ConfigError unless `refit_every` is an integer >= 0."""
    if not isinstance(refit_every, int) or isinstance(refit_every, bool) or refit_every < 0:
        raise ConfigError(
            f"refit_every must be an integer >= 0 (0 = fit once, 1 = every fold, k = every k-th), got {refit_every!r}"
        )


def resolve_refit_every(model: str | type, refit_every: int | None) -> int:
    """The policy for `model` (a registry name of either registry, or a class): the one asked for, else the class's
    measured `default_refit_every`, else DEFAULT_REFIT_EVERY. Validation is the units' (PriceUnit/EventUnit check
    their policy however they are built) and, before that, the flow parameters' (flows.params)."""
    if refit_every is not None:
        return refit_every
    if isinstance(model, str) and SEP in model:  # a variant (lstm+cov, arima+tuned) refits as its model does
        model = parse_variant(model).base
    if isinstance(model, type):
        cls: type | None = model
    elif model in REGISTRY:
        cls = model_class(model)
    elif model in EVENT_REGISTRY:
        cls = event_model_class(model)
    else:
        cls = None
    return int(getattr(cls, "default_refit_every", DEFAULT_REFIT_EVERY))


def model_specs(
    models: Mapping[str, Mapping[str, Any] | None] | Sequence[str] | str,
    *,
    kind: str = "models",
    example: str = "['naive', 'ets']",
) -> dict[str, dict[str, Any]]:
    """{name: params} from a list of names or a {name: params} mapping; duplicates and an empty list fail."""
    if isinstance(models, str):
        models = [models]
    if isinstance(models, Mapping):
        specs = {str(k): dict(v or {}) for k, v in models.items()}
    else:
        names = [str(m) for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{kind} listed more than once: {dupes}; list each model once")
        specs = {n: {} for n in names}
    if not specs:
        raise ConfigError(f"no {kind} to backtest; pass e.g. models={example}")
    return specs
