"""The pure orchestrator the Prefect flows and a local run share: (series, model) units, their plan, their run.

A unit is one model on one series with everything it needs except the data: its folds and its RESOLVED refit
policy (plan_*_units resolves and validates it once; the unit is then run as given). The flows fan out one
Prefect task per unit over `run_unit`; `backtest.engine.run_backtest` and `backtest.event_task.run_event_backtest`
run the same units in a loop. A unit whose run crashed outright (a worker died, a timeout) becomes
`failed_unit`: every fold recorded as failed.

Both task types run on the one block loop (backtest.blocks): the price task is backtest.engine.PriceTask, the
event task (EventTask below) fits with backtest.event_task.fit_event_model and predicts a block's origins in ONE
predict_proba call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np
import pandas as pd

from backtest.blocks import BlockRun, LeakageError, check_refit_every, failure_row, resolve_refit_every, run_blocks
from backtest.combine import ENSEMBLE, combine_member_results, reusable_members
from backtest.conformal import DEFAULT_WINDOW, INTERVAL_SOURCES, IntervalSource, conformal_intervals
from backtest.engine import (
    ModelFactory,
    PriceTask,
    calibration_table,
    check_folds,
    fold_info_table,
    prepare_series,
    price_result,
)
from backtest.event_task import (
    EventFactory,
    EventUnitResult,
    empty_predictions,
    fit_event_model,
    normalize_predictions,
    with_lookahead,
)
from backtest.folds import Fold
from backtest.panel import is_global
from backtest.results import UnitResult, empty_table, normalize
from common.errors import ConfigError, DataError
from common.schema import (
    BACKTEST_COLUMNS,
    CUTOFF,
    DS,
    FAILURE_COLUMNS,
    FOLD,
    ID,
    LABEL,
    MESSAGE,
    MODEL,
    THRESHOLD,
    TIMING_COLUMNS,
    H,
    P,
    Y,
)
from common.timing import Stopwatch
from models import REGISTRY, make_event_model, make_model, model_class
from models.variants import SEP, parse_variant

log = logging.getLogger(__name__)

CRASH_MESSAGE_CHARS = 500  # a crashed unit's exception text can carry a whole remote traceback


@dataclass(frozen=True)
class Unit:
    """What every (series, model) unit has: its folds and its RESOLVED refit policy (checked however it is built)."""

    uid: str
    model: str
    params: dict[str, Any]
    folds: tuple[Fold, ...]
    refit_every: int

    def __post_init__(self) -> None:
        check_refit_every(self.refit_every)


@dataclass(frozen=True)
class PriceUnit(Unit):
    """One (series, model) price unit: forecasts `horizon` steps from each origin."""

    horizon: int
    calendar: str | None = None  # the series' trading calendar (None: the ticker's spelling decides)
    # Non-empty for an ensemble whose members are units of the same run with the same parameters and refit policy
    # (backtest.combine.reusable_members): it is combined from their results (`combine_unit`), never fitted.
    members: tuple[str, ...] = ()
    # Origins before fold 0 forecast only to calibrate conformal bands (backtest.folds.calibration_folds).
    calibration_folds: tuple[Fold, ...] = ()
    # None: the model's own intervals (or none); k: split-conformal bands from the k latest known scores.
    conformal_window: int | None = None


@dataclass(frozen=True)
class EventUnit(Unit):
    """One (series, model) event unit: `lookahead` is the event's "within L sessions"."""

    lookahead: int
    columns: tuple[str, ...]
    tail_fraction: float


def plan_price_units(
    uids: Sequence[str],
    *,
    models: Mapping[str, Mapping[str, Any]],
    folds: Mapping[str, Sequence[Fold]],
    horizon: int,
    refit_every: int | None,
    calendars: Mapping[str, str | None] | None = None,
    reuse_members: bool = True,
    intervals: IntervalSource = "native",
    calibration: Mapping[str, Sequence[Fold]] | None = None,
    conformal_window: int = DEFAULT_WINDOW,
) -> list[PriceUnit]:
    """Every (series, model) unit, sorted by uid then models in the given order, each with its refit policy:
    `refit_every`, else the model class's `default_refit_every` (blocks.resolve_refit_every).

    With `reuse_members` (the registry's models; off for a custom factory) an ensemble whose members are all units
    of this run with the same parameters and policy is planned as combined from them (PriceUnit.members).

    Intervals: `intervals="conformal"` gives every model split-conformal bands (backtest.conformal); "native" keeps
    each model's own and gives conformal bands to the models that declare none (`supports_intervals = False`: the
    ensemble). Units with conformal bands, and the members a conformal ensemble is combined from, also forecast
    their series' `calibration` origins (backtest.folds.panel_calibration_folds); without them the first folds'
    bands are empty until enough scored folds have known outcomes.
    """
    if intervals not in INTERVAL_SOURCES:
        raise ConfigError(f"intervals must be one of {list(INTERVAL_SOURCES)}, got {intervals!r}")
    policies = {name: resolve_refit_every(name, refit_every) for name in models}
    members = reusable_members(models[ENSEMBLE], models, policies) if reuse_members and ENSEMBLE in models else None
    conformal = {name: intervals == "conformal" or not native_intervals(name) for name in models}
    calibrated = {name for name in models if conformal[name]}
    if members and conformal[ENSEMBLE]:
        calibrated |= set(members)
    return [
        PriceUnit(
            uid=uid,
            model=name,
            params=dict(models[name]),
            folds=_folds_of(folds, uid),
            refit_every=policies[name],
            horizon=horizon,
            calendar=(calendars or {}).get(uid),
            members=(members or ()) if name == ENSEMBLE else (),
            calibration_folds=tuple((calibration or {}).get(uid, ())) if name in calibrated else (),
            conformal_window=conformal_window if conformal[name] else None,
        )
        for uid in sorted(map(str, uids))
        for name in models
    ]


def native_intervals(name: str) -> bool:
    """Whether registry model `name` (or a variant's model) gives its own intervals; True for names outside the
    registry (a custom factory's models keep whatever they give)."""
    base = parse_variant(name).base if SEP in name else name
    return bool(getattr(model_class(base), "supports_intervals", True)) if base in REGISTRY else True


def with_conformal(unit: PriceUnit, result: UnitResult) -> UnitResult:
    """`result` with split-conformal bands when the unit asks for them (PriceUnit.conformal_window)."""
    if unit.conformal_window is None:
        return result
    bands = conformal_intervals(result.forecasts, result.calibration, window=unit.conformal_window)
    return dataclasses.replace(result, forecasts=bands)


def _ensemble_combine(params: Mapping[str, Any]) -> str:
    """'median' or 'mean': how the ensemble built with `params` combines (its constructor's default applies)."""
    from models.ensemble import Ensemble

    ensemble = make_model(ENSEMBLE, **params)
    if not isinstance(ensemble, Ensemble):  # reusable_members planned it: only the registry's Ensemble is combined
        raise ConfigError(f"{ENSEMBLE}: registered as {type(ensemble).__name__}, which cannot be combined")
    return ensemble.combine


def combined_from(units: Sequence[PriceUnit]) -> dict[str, Any]:
    """Run metadata naming the ensemble's members when it was combined from them: {"ensemble_combined_from": [...]}."""
    members = next((unit.members for unit in units if unit.members), ())
    return {"ensemble_combined_from": list(members)} if members else {}


def interval_meta(units: Sequence[PriceUnit], *, intervals: str, calibration_windows: int) -> dict[str, Any]:
    """Run metadata on the bands: the option, which models have conformal bands, the calibration windows asked for."""
    conformal = sorted({unit.model for unit in units if unit.conformal_window is not None})
    window = next((unit.conformal_window for unit in units if unit.conformal_window is not None), None)
    return {
        "intervals": intervals,
        "conformal_models": conformal,
        "calibration_windows": calibration_windows,
        "conformal_window": window,  # the known scores each band is computed from (None: no conformal model)
    }


def fitted_units(units: Sequence[PriceUnit]) -> list[PriceUnit]:
    """The units that are run (fitted): all but the ensembles combined from their members."""
    return [unit for unit in units if not unit.members]


def combine_units(
    units: Sequence[PriceUnit], fitted: Sequence[PriceUnit], results: Sequence[UnitResult]
) -> list[UnitResult]:
    """Every unit's result in `units` order: the fitted ones' `results` (in `fitted` order) and each combined
    ensemble's, built from its members' results on the same series (backtest.combine), with no refit."""
    done = {(unit.uid, unit.model): result for unit, result in zip(fitted, results, strict=True)}
    out: list[UnitResult] = []
    for unit in units:
        if unit.members:
            combine = _ensemble_combine(unit.params)
            own = {m: done[(unit.uid, m)] for m in unit.members}
            combined = functools.partial(
                combine_member_results, uid=unit.uid, model=unit.model, members=unit.members, combine=combine
            )
            result = combined(results=own, folds=unit.folds)
            if unit.calibration_folds:  # the members forecast them too (plan_price_units): combine them alike
                calibration = {m: dataclasses.replace(r, forecasts=r.calibration) for m, r in own.items()}
                result.calibration = combined(results=calibration, folds=unit.calibration_folds).forecasts
            out.append(with_conformal(unit, result))
            log.info("%s on %s: combined from the run's %s units (no refit)", unit.model, unit.uid, unit.members)
        else:
            out.append(done[(unit.uid, unit.model)])
    return out


def plan_event_units(
    uids: Sequence[str],
    *,
    models: Mapping[str, Mapping[str, Any]],
    folds: Mapping[str, Sequence[Fold]],
    lookahead: int,
    columns: Sequence[str],
    refit_every: int | None,
    tail_fraction: float,
) -> list[EventUnit]:
    """Every (series, model) event unit, in the same order and with the same policy resolution as price units."""
    policies = {name: resolve_refit_every(name, refit_every) for name in models}
    return [
        EventUnit(
            uid=uid,
            model=name,
            params=dict(models[name]),
            folds=_folds_of(folds, uid),
            refit_every=policies[name],
            lookahead=lookahead,
            columns=tuple(columns),
            tail_fraction=tail_fraction,
        )
        for uid in sorted(map(str, uids))
        for name in models
    ]


@overload
def run_unit(unit: PriceUnit, series: pd.DataFrame, *, factory: ModelFactory | None = None) -> UnitResult: ...
@overload
def run_unit(unit: EventUnit, series: pd.DataFrame, *, factory: ModelFactory | None = None) -> EventUnitResult: ...
def run_unit(
    unit: PriceUnit | EventUnit, series: pd.DataFrame, *, factory: ModelFactory | None = None
) -> UnitResult | EventUnitResult:
    """Run one unit on its series (a price unit: the series' long frame; an event unit: its event_frame slice).

    A model failing on a fold is recorded and the unit carries on; LeakageError and bad folds or data raise.
    `factory` builds models from (name, **params): make_model / make_event_model by default.
    """
    if isinstance(unit, PriceUnit):
        return _run_price(unit, series, factory or make_model)
    return _run_event(unit, series, factory or make_event_model)


@overload
def failed_unit(unit: PriceUnit, series: pd.DataFrame, exc: BaseException) -> UnitResult: ...
@overload
def failed_unit(unit: EventUnit, series: pd.DataFrame, exc: BaseException) -> EventUnitResult: ...
def failed_unit(unit: PriceUnit | EventUnit, series: pd.DataFrame, exc: BaseException) -> UnitResult | EventUnitResult:
    """A unit whose run crashed outright (after its retries): every fold recorded as failed with `exc`.

    LeakageError is re-raised (blocks.failure_row): a leak is a bug, never a recorded failure.
    """
    rows = [failure_row(unit.uid, unit.model, fold, exc) for fold in unit.folds]
    failures = pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))
    failures[MESSAGE] = failures[MESSAGE].str.slice(0, CRASH_MESSAGE_CHARS)
    if isinstance(unit, PriceUnit):
        return UnitResult(
            forecasts=empty_table(BACKTEST_COLUMNS),
            timings=empty_table(TIMING_COLUMNS),
            failures=normalize(failures, FAILURE_COLUMNS),
            fold_info=fold_info_table(series, unit.folds),
        )
    return EventUnitResult(
        predictions=empty_predictions(), timings=pd.DataFrame(columns=list(TIMING_COLUMNS)), failures=failures
    )


def _folds_of(folds: Mapping[str, Sequence[Fold]], uid: str) -> tuple[Fold, ...]:
    if uid not in folds:
        raise ConfigError(f"{uid}: no fold plan for this series; plan folds for every series you pass")
    return tuple(folds[uid])


def _check_series(frame: pd.DataFrame, unit: PriceUnit | EventUnit) -> None:
    ids = sorted(frame[ID].astype(str).unique())
    if ids != [unit.uid]:
        raise DataError(f"the unit {unit.model} on {unit.uid} was given the series {ids[:5]}; pass that one series")


# ---- the price task ------------------------------------------------------------------------------------------
def _run_price(unit: PriceUnit, series: pd.DataFrame, factory: ModelFactory) -> UnitResult:
    frame = prepare_series(series)
    _check_series(frame, unit)
    check_folds(frame, unit.folds, horizon=unit.horizon, unique_id=unit.uid)
    task = PriceTask(frame=frame, model=unit.model, params=unit.params, factory=factory, calendar=unit.calendar)
    name = f"{unit.model} on {unit.uid}"
    run = run_blocks(unit.folds, task, refit_every=unit.refit_every, name=name)
    result = price_result(frame, unit.folds, run, model=unit.model)
    if unit.calibration_folds:
        check_folds(frame, unit.calibration_folds, horizon=unit.horizon, unique_id=unit.uid)
        # Their own blocks, under the unit's refit policy: the scored folds refit where they would without them,
        # so a model's point forecasts never depend on the interval option.
        with Stopwatch() as watch:
            run = run_blocks(unit.calibration_folds, task, refit_every=unit.refit_every, name=f"{name} (calibration)")
        result.calibration = calibration_table(run, uid=unit.uid, model=unit.model)
        result.calibration_seconds = watch.seconds
    return with_conformal(unit, result)


# ---- the event task ------------------------------------------------------------------------------------------
def _run_event(unit: EventUnit, series: pd.DataFrame, factory: EventFactory) -> EventUnitResult:
    frame = series.sort_values(DS, kind="stable").reset_index(drop=True)
    _check_series(frame, unit)
    task = EventTask(
        frame=frame,
        model=unit.model,
        params=with_lookahead(unit.model, dict(unit.params), unit.lookahead, factory),
        columns=unit.columns,
        folds=unit.folds,
        lookahead=unit.lookahead,
        tail_fraction=unit.tail_fraction,
        factory=factory,
    )
    run = run_blocks(unit.folds, task, refit_every=unit.refit_every, name=f"{unit.model} on {unit.uid}")
    return _event_result(run, uid=unit.uid, model=unit.model, n_folds=len(unit.folds))


@dataclass(frozen=True)
class EventFit:
    """A fitted classifier, its decision threshold and the row its training window starts at."""

    model: Any
    threshold: float
    start: int


@dataclass(eq=False)
class EventTask:
    """The event task of the block loop over one series (an event_frame slice sorted by ds).

    Every fold is located on the series before any fit: a fold whose sessions are not the series' own raises
    DataError, one whose training does not end at its cutoff before its first origin LeakageError.
    """

    frame: pd.DataFrame
    model: str
    params: Mapping[str, Any]
    columns: Sequence[str]
    folds: Sequence[Fold]
    lookahead: int
    tail_fraction: float
    factory: EventFactory = make_event_model
    _rows: dict[int, tuple[int, int, np.ndarray]] = field(init=False, repr=False)  # fold -> start, cutoff, origins

    def __post_init__(self) -> None:
        self.uid = str(self.frame[ID].iloc[0])
        self.ds = pd.DatetimeIndex(self.frame[DS])
        self.X = self.frame[list(self.columns)].to_numpy(dtype=float)
        self.labels = self.frame[LABEL].to_numpy(dtype=float)
        self._rows = {}
        for fold in self.folds:
            start, cutoff = _position(self.ds, fold.train_start, self.uid), _position(self.ds, fold.cutoff, self.uid)
            _check_fold(fold)
            self._rows[fold.fold] = (start, cutoff, _origins(self.ds, fold, self.uid))

    def build(self) -> Any:
        return self.factory(self.model, **self.params)

    def fit(self, model: Any, fold: Fold) -> EventFit:
        start, cutoff, _ = self._rows[fold.fold]
        window = {"start": start, "cutoff": cutoff, "lookahead": self.lookahead}
        instance, threshold = fit_event_model(model, self.X, self.labels, **window, tail_fraction=self.tail_fraction)
        return EventFit(instance, threshold, start)

    def unscorable(self, fold: Fold) -> Exception | None:
        return _origin_problem(self.uid, fold, self._rows[fold.fold][2], self.X, self.labels, self.columns, self.ds)

    def predict(self, fitted: EventFit, folds: Sequence[Fold]) -> dict[int, np.ndarray]:
        """ONE predict_proba for every origin of `folds`, on features from the training start to the last origin."""
        origins = [self._rows[fold.fold][2] for fold in folds]
        every = np.concatenate(origins)
        p = fitted.model.predict_proba(self.X[fitted.start : every.max() + 1], every - fitted.start)
        bounds = np.cumsum([0, *(o.size for o in origins)])
        return {fold.fold: p[bounds[k] : bounds[k + 1]] for k, fold in enumerate(folds)}

    def score(self, fitted: EventFit, fold: Fold, batch: dict[int, np.ndarray]) -> pd.DataFrame:
        origins = self._rows[fold.fold][2]
        return pd.DataFrame(
            {
                ID: self.uid,
                MODEL: self.model,
                FOLD: fold.fold,
                CUTOFF: fold.cutoff,
                DS: pd.DatetimeIndex(self.ds[origins]),
                H: self.lookahead,  # the predictions' h column is the event's lookahead
                Y: self.labels[origins],
                P: batch[fold.fold],
                THRESHOLD: fitted.threshold,
            }
        )


def _event_result(run: BlockRun[pd.DataFrame], *, uid: str, model: str, n_folds: int) -> EventUnitResult:
    if run.failed:
        log.warning("%s on %s: %d of %d folds failed", model, uid, len(run.failed), n_folds)
    parts = [d.output for d in run.done]
    timings = [(uid, model, d.fold.fold, d.fit_seconds, d.predict_seconds, d.refit) for d in run.done]
    failures = [failure_row(uid, model, fold, exc) for fold, exc in run.failed]
    return EventUnitResult(
        predictions=normalize_predictions(pd.concat(parts, ignore_index=True)) if parts else empty_predictions(),
        timings=pd.DataFrame(timings, columns=list(TIMING_COLUMNS)),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
    )


def _origin_problem(
    uid: str,
    fold: Fold,
    origins: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    columns: Sequence[str],
    ds: pd.DatetimeIndex,
) -> DataError | None:
    """Why a fold's origins cannot be scored (no known outcome, NaN features), or None."""
    if not np.all(np.isfinite(labels[origins])):
        first = ds[origins[~np.isfinite(labels[origins])][0]].date()
        return DataError(f"{uid}: fold {fold.fold} has test origins without a known outcome, first {first}")
    finite = np.isfinite(X[origins])
    if not finite.all():
        col = int(np.flatnonzero(~finite.all(axis=0))[0])
        row = origins[~finite[:, col]]
        return DataError(
            f"{uid}: column {columns[col]} is NaN at {row.size} test origin(s) of fold {fold.fold}, first "
            f"{ds[row[0]].date()} (indicator warm-up); start the folds later (min_train_size) or use shorter windows"
        )
    return None


def _position(ds: pd.DatetimeIndex, when: pd.Timestamp, uid: str) -> int:
    pos = ds.get_indexer([pd.Timestamp(when)])[0]
    if pos < 0:
        raise DataError(f"{uid}: fold session {pd.Timestamp(when).date()} is not a session of the series")
    return int(pos)


def _origins(ds: pd.DatetimeIndex, fold: Fold, uid: str) -> np.ndarray:
    pos = ds.get_indexer(pd.DatetimeIndex(fold.test_ds))
    if (pos < 0).any():
        raise DataError(f"{uid}: fold {fold.fold} tests on sessions missing from the series")
    return pos.astype(np.int64)


def _check_fold(fold: Fold) -> None:
    if fold.train_end != fold.cutoff or not fold.test_ds or fold.test_ds[0] <= fold.cutoff:
        raise LeakageError(
            f"fold {fold.fold}: training ends {fold.train_end.date()}, cutoff {fold.cutoff.date()}, first test "
            f"origin {fold.test_ds[0].date() if fold.test_ds else None}; training must end at the cutoff"
        )


# ---- batches: fewer, larger orchestration units for a wide universe -------------------------------------------
# A Prefect task run costs about 200 ms of flow-process and API-server CPU (benchmarks/bench_flow.py). One per
# (ticker, model) unit is fine for a handful of tickers, and shows each unit in the UI; a 500-ticker universe would
# spend minutes orchestrating. Up to SMALL_UNIVERSE tickers a batch is one unit; above, each model's tickers are cut
# into BATCHES_PER_MODEL batches: enough tasks to keep a few workers busy and balance slow models against fast ones.
SMALL_UNIVERSE = 8
BATCHES_PER_MODEL = 4

U = TypeVar("U", bound=Unit)


def tickers_per_batch(n_tickers: int, batch_size: int | None = None) -> int:
    """How many tickers one task runs per model: `batch_size` when given, else the rule above."""
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer (tickers per task), got {batch_size!r}")
        return batch_size
    return 1 if n_tickers <= SMALL_UNIVERSE else math.ceil(n_tickers / BATCHES_PER_MODEL)


def batch_units(units: Sequence[U], *, batch_size: int | None = None) -> list[tuple[U, ...]]:
    """`units` grouped into batches of one model and up to tickers_per_batch tickers (plan order within a model;
    models in their first-seen order); a global model's units are one batch whatever the size, since they run as
    one panel unit (backtest.panel). Every unit is in exactly one batch."""
    by_model: dict[str, list[U]] = {}
    for unit in units:
        by_model.setdefault(unit.model, []).append(unit)
    size = tickers_per_batch(len({unit.uid for unit in units}), batch_size)
    batches = []
    for model, group in by_model.items():
        step = len(group) if is_global(model) else size  # a global model's units are ONE unit (backtest.panel)
        batches += [tuple(group[i : i + step]) for i in range(0, len(group), step)]
    return batches
