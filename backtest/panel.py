"""A unit that spans series: a global model (one network over every series of a run) run as ONE unit.

A global model (a class declaring `global_model = True`: models.global_rnn) is planned like any model, one
PriceUnit per (series, model) with that series' folds, calendar and calibration origins, so everything after the
run (the ensemble's combination, conformal bands, metrics, reports, the results store) sees per-series results.
Only the RUN differs: every unit of a global model is gathered into one PanelUnit (`panel_units`), and
`run_panel_unit` runs it on the block loop (backtest.blocks) with one fit per refit across every series:

    panel fold k   = fold k of every member that has one;
    its cutoff T_k = the EARLIEST member cutoff of fold k.

A refit at panel fold k trains on every member's training window cut at T_k, so no series' forecast rests on
parameters that saw another series past its own cutoff (cross-series look-ahead: two correlated tickers on
different calendars would otherwise teach the network tomorrow's move). A member whose cutoff is later than T_k
(another exchange's calendar, a series that ends later) is forecast from its own cutoff with the parameters fixed,
as every model is between refits: its windows read its own rows up to its own cutoff only. A panel whose series end
at very different dates therefore gets stale parameters for the later ones; the spread is logged.

Failures: a refit or a batched forecast that fails is a failure of every member's fold; a problem of one series
(too short for a window, a price <= 0) is that member's fold failure only (the model returns it per series).
Timings: a panel refit's seconds are shared evenly by the members it was fitted for, and so is a batched
forecast's, so the time table sums to the run's real cost.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from backtest.blocks import BlockRun, FoldDone, LeakageError, run_blocks
from backtest.engine import (
    FoldForecast,
    ModelFactory,
    calibration_table,
    check_folds,
    fold_steps,
    prepare_series,
    price_result,
    score_fold,
    training_frame,
)
from backtest.folds import Fold
from backtest.results import UnitResult
from common.errors import ConfigError, DataError
from common.schema import CUTOFF, DS
from common.timing import Stopwatch
from models import REGISTRY, make_model, model_class
from models.variants import SEP, parse_variant

log = logging.getLogger(__name__)

PanelOutput = dict[str, FoldForecast | Exception]  # one panel fold's output: each member's forecast or its problem
PanelBatch = dict[str, Any]  # uid -> OriginForecasts or the Exception the model returned for that series


def is_global(name: str) -> bool:
    """Whether registry model `name` (or a variant's model) is one model across every series (`global_model`)."""
    base = parse_variant(name).base if SEP in name else name
    return base in REGISTRY and bool(getattr(model_class(base), "global_model", False))


@dataclass(frozen=True)
class PanelUnit:
    """Every (series, model) unit of one global model: run together, one result per member."""

    members: tuple[Any, ...]  # backtest.units.PriceUnit, sorted by uid (units imports us: typed loosely here)

    def __post_init__(self) -> None:
        models = {unit.model for unit in self.members}
        if len(models) != 1 or not self.members:
            raise ConfigError(f"a panel unit holds the units of one model, got {sorted(models)}")
        first = self.members[0]
        for unit in self.members:
            if (unit.params, unit.refit_every, unit.horizon, unit.conformal_window) != (
                first.params,
                first.refit_every,
                first.horizon,
                first.conformal_window,
            ):
                raise ConfigError(f"{first.model}: the units of a panel must share parameters, policy and horizon")

    @property
    def model(self) -> str:
        return str(self.members[0].model)

    @property
    def uids(self) -> tuple[str, ...]:
        return tuple(unit.uid for unit in self.members)


def global_meta(units: Sequence[Any]) -> dict[str, Any]:
    """Run metadata naming the global models of a run, {"global_models": [...]}; empty when there are none."""
    names = sorted({unit.model for unit in units if is_global(unit.model)})
    return {"global_models": names} if names else {}


def panel_units(units: Sequence[Any]) -> list[Any]:
    """`units` with every global model's units gathered into one PanelUnit (at its first unit's place)."""
    groups: dict[str, list[Any]] = {}
    out: list[Any] = []
    for unit in units:
        if is_global(unit.model):
            if unit.model not in groups:
                groups[unit.model] = []
                out.append(unit.model)  # placeholder, replaced below
            groups[unit.model].append(unit)
        else:
            out.append(unit)
    return [PanelUnit(tuple(sorted(groups[u], key=lambda m: m.uid))) if isinstance(u, str) else u for u in out]


def run_panel_unit(
    panel: PanelUnit, series: Mapping[str, pd.DataFrame], *, factory: ModelFactory = make_model
) -> list[UnitResult]:
    """Run a global model's panel unit on every member's series; one UnitResult per member, in member order.

    Bad folds or data raise as run_unit's do; model failures are recorded per member fold (module docstring).
    """
    from backtest.units import with_conformal  # units imports us

    frames = {unit.uid: prepare_series(series[unit.uid]) for unit in panel.members}
    for unit in panel.members:
        check_folds(frames[unit.uid], unit.folds, horizon=unit.horizon, unique_id=unit.uid)
        if unit.calibration_folds:
            check_folds(frames[unit.uid], unit.calibration_folds, horizon=unit.horizon, unique_id=unit.uid)
    first = panel.members[0]
    name = f"{panel.model} on {len(panel.members)} series"
    task = PanelTask(frames=frames, members=panel.members, model=panel.model, params=first.params, factory=factory)
    scored = _panel_folds({unit.uid: unit.folds for unit in panel.members})
    runs = _member_runs(run_blocks(scored, task, refit_every=first.refit_every, name=name), task)
    results = [price_result(frames[unit.uid], unit.folds, runs[unit.uid], model=panel.model) for unit in panel.members]
    if any(unit.calibration_folds for unit in panel.members):
        calibration = _panel_folds({unit.uid: unit.calibration_folds for unit in panel.members})
        with Stopwatch() as watch:
            cal_run = run_blocks(calibration, task, refit_every=first.refit_every, name=f"{name} (calibration)")
        cal_runs = _member_runs(cal_run, task)
        share = watch.seconds / len(panel.members)
        for unit, result in zip(panel.members, results, strict=True):
            if unit.calibration_folds:
                result.calibration = calibration_table(cal_runs[unit.uid], uid=unit.uid, model=panel.model)
                result.calibration_seconds = share
    return [with_conformal(unit, result) for unit, result in zip(panel.members, results, strict=True)]


def _panel_folds(folds: Mapping[str, Sequence[Fold]]) -> list[Fold]:
    """One carrier Fold per fold number: numbered as the members' folds, cut at their earliest cutoff."""
    numbers = sorted({fold.fold for own in folds.values() for fold in own})
    out = []
    for number in numbers:
        at = [fold for own in folds.values() for fold in own if fold.fold == number]
        earliest = min(at, key=lambda f: f.cutoff)
        spread = max(f.cutoff for f in at) - earliest.cutoff
        if spread > pd.Timedelta(days=7):
            log.info(
                "panel fold %d: member cutoffs span %s to %s; the later members are forecast with parameters "
                "fitted up to the earliest (no cross-series look-ahead)",
                number,
                earliest.cutoff.date(),
                max(f.cutoff for f in at).date(),
            )
        out.append(dataclasses.replace(earliest, train_start=min(f.train_start for f in at)))
    return out


@dataclass(eq=False)
class PanelTask:
    """The price task of the block loop over every member series of a global model (the BlockTask protocol)."""

    frames: Mapping[str, pd.DataFrame]
    members: Sequence[Any]  # PriceUnit
    model: str
    params: Mapping[str, Any]
    factory: ModelFactory = make_model
    at: dict[int, dict[str, Fold]] = field(init=False)  # fold number -> {uid: that member's fold}
    calendars: dict[str, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.at = {}
        for unit in self.members:
            for fold in (*unit.calibration_folds, *unit.folds):
                self.at.setdefault(fold.fold, {})[unit.uid] = fold
        self.calendars = {unit.uid: unit.calendar for unit in self.members}

    def build(self) -> Any:
        return self.factory(self.model, **self.params)

    def fit(self, model: Any, fold: Fold) -> Any:
        """Fit on every member's training window of this fold number, cut at the panel cutoff `fold.cutoff`."""
        parts = []
        for uid, own in self.at[fold.fold].items():
            train = training_frame(self.frames[uid], own)  # LeakageError if the member's own window passes its cutoff
            parts.append(train.loc[pd.DatetimeIndex(train[DS]) <= fold.cutoff])
        model.fit_panel(pd.concat(parts, ignore_index=True), horizon=fold_steps(fold), calendars=self.calendars)
        return model

    def unscorable(self, fold: Fold) -> Exception | None:
        return None  # check_folds vetted every member's folds before the loop

    def predict(self, fitted: Any, folds: Sequence[Fold]) -> PanelBatch:
        """ONE predict_panel_origins call for every member's origins in `folds`."""
        cutoffs: dict[str, list[pd.Timestamp]] = {}
        for fold in folds:
            for uid, own in self.at[fold.fold].items():
                cutoffs.setdefault(uid, []).append(own.cutoff)
        history = pd.concat(
            [
                self.frames[uid].loc[pd.DatetimeIndex(self.frames[uid][DS]) <= max(cuts)]
                for uid, cuts in cutoffs.items()
            ],
            ignore_index=True,
        )
        batch = fitted.predict_panel_origins(history, cutoffs, fold_steps(folds[0]))
        return dict(batch)

    def score(self, fitted: Any, fold: Fold, batch: PanelBatch) -> PanelOutput:
        out: PanelOutput = {}
        for uid, own in self.at[fold.fold].items():
            forecasts = batch.get(uid)
            if forecasts is None:
                out[uid] = DataError(f"{self.model}: no forecast for {uid} at fold {own.fold}")
            elif isinstance(forecasts, Exception):
                out[uid] = forecasts
            else:
                try:
                    out[uid] = score_fold(self.frames[uid], own, forecasts)
                except LeakageError:
                    raise
                except Exception as exc:  # that member's fold fails; the others are scored
                    out[uid] = exc
        return out


def _member_runs(run: BlockRun[PanelOutput], task: PanelTask) -> dict[str, BlockRun[FoldForecast]]:
    """Each member's own BlockRun from the panel's: its folds done or failed, with its share of the timings."""
    runs: dict[str, BlockRun[FoldForecast]] = {unit.uid: BlockRun() for unit in task.members}
    for done in run.done:
        share = len(done.output) or 1
        for uid, output in done.output.items():
            own = task.at[done.fold.fold][uid]
            if isinstance(output, Exception):
                runs[uid].failed.append((own, output))
            else:
                runs[uid].done.append(
                    FoldDone(own, output, done.fit_seconds / share, done.predict_seconds / share, done.refit)
                )
    for fold, exc in run.failed:
        for uid, own in task.at[fold.fold].items():
            runs[uid].failed.append((own, exc))
    for member in runs.values():
        member.failed.sort(key=lambda pair: pair[0].fold)
    return runs


def live_panel_forecasts(
    series: Mapping[str, pd.DataFrame],
    *,
    model: str,
    params: Mapping[str, Any],
    horizon: int,
    calendars: Mapping[str, str | None] | None = None,
    factory: ModelFactory = make_model,
) -> dict[str, pd.DataFrame | Exception]:
    """A global model fitted once on every series' full history, then each series' next `horizon` sessions
    (unique_id, ds, h, yhat [, bands]); a series the model could not forecast maps to its exception."""
    frames = {uid: prepare_series(frame) for uid, frame in series.items()}
    history = pd.concat(frames.values(), ignore_index=True)
    fitted = factory(model, **params)
    fitted.fit_panel(history, horizon=horizon, calendars=calendars)
    last = {uid: [pd.Timestamp(frame[DS].iloc[-1])] for uid, frame in frames.items()}
    batch = fitted.predict_panel_origins(history, last, horizon)
    out: dict[str, pd.DataFrame | Exception] = {}
    for uid in frames:
        forecasts = batch.get(uid, DataError(f"{model}: no forecast for {uid}"))
        out[uid] = forecasts if isinstance(forecasts, Exception) else forecasts.to_frame().drop(columns=[CUTOFF])
    return out
