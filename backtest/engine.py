"""Backtest engine: runs every (series, model) unit over its folds under a refit policy, into tidy tables.

Refit policy `refit_every=k` (folds are processed in blocks that start with a refit):
    k = 1   refit on every fold's own training window;
    k > 1   refit on the first fold of each block of k folds; the other folds of the block are forecast with
            `Forecaster.forecast_origins` (parameters fixed, conditioned on data up to each cutoff), ONE call
            per block so batched models (Keras) predict all origins of a block at once;
    k = 0   fit once on the first fold's training window, then forecast_origins for all remaining folds.
After a failed fold the next fold starts a new block (it refits). A refit builds a fresh model with the
factory (`make_model`), unless the previous instance has a truthy `warm_start` attribute: then the same
instance is fitted again and the model decides how to reuse its state. With a sliding window and k != 1 the
window only slides at refits; in between, the model is conditioned on the new sessions as they arrive.

Leakage guard: a fold's training frame is the rows with ds in [train_start, train_end] only, and the engine
raises LeakageError (never recorded as a model failure) if any training row lies after the cutoff.

Dates: a model dates its forecasts from the exchange calendar, the truth comes from the data. Rows are
aligned by step `h`; the output `ds` is the data's test session and disagreements are counted and logged.

Timing: `fit_seconds` is the fit of a refit fold (0 for conditioned folds); `predict_seconds` is the
forecast_origins time of a block divided evenly over its folds (a batched call has no per-fold split).
Timings only cover folds that produced forecasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

import numpy as np
import pandas as pd

from backtest.folds import Fold, FoldPlan, panel_folds
from backtest.results import (
    ERROR_TYPE,
    FAILURE_COLUMNS,
    FOLD_INFO_COLUMNS,
    LAST_Y,
    MESSAGE,
    SCALE_MAE,
    SCALE_MSE,
    TRAIN_END,
    TRAIN_START,
    BacktestResult,
    UnitResult,
    concat,
    normalize,
)
from common.errors import ConfigError, DataError, ModelFitError
from common.schema import BACKTEST_COLUMNS, CUTOFF, DS, FOLD, ID, INTERVAL_COLUMNS, MODEL, TIMING_COLUMNS, YHAT, H, Y
from models import REGISTRY, make_model, model_class
from models.base import fit_model

log = logging.getLogger(__name__)

# Used only for models that declare no policy of their own. Each model class sets `default_refit_every`, the
# fastest policy that kept accuracy in benchmarks/bench_backtest.py --part refit (see README, "Refit policy").
DEFAULT_REFIT_EVERY = 10

ModelFactory = Callable[..., Any]  # (name, **params) -> unfitted Forecaster; make_model by default
Progress = Callable[[int, int, str, str], None]  # (units done, units total, unique_id, model)


class LeakageError(DataError):
    """A fold would train on data at or after its test window: a bug in the fold plan or engine, never ignored."""


@dataclass
class _FoldOutput:
    fold: Fold
    forecast: pd.DataFrame
    fit_seconds: float
    predict_seconds: float
    refit: bool
    mismatches: int


@dataclass
class _BlockOutcome:
    done: list[_FoldOutput] = field(default_factory=list)
    failed: tuple[Fold, BaseException] | None = None
    model: Any = None


def backtest_unit(
    series: pd.DataFrame,
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    folds: Sequence[Fold],
    refit_every: int | None = None,
    horizon: int,
    factory: ModelFactory = make_model,
    calendar: str | None = None,
) -> UnitResult:
    """Backtest one model on one series over `folds`: the unit the Prefect flow maps over.

    refit_every=None uses the model's own measured default (`default_refit_every`); `calendar` is the series'
    trading calendar (None: the ticker's spelling decides, features.calendar).
    """
    refit_every = resolve_refit_every(model, refit_every)
    _check_refit_every(refit_every)
    frame = _prepare_series(series)
    uid = str(frame[ID].iloc[0])
    _check_folds(frame, folds, horizon=horizon, unique_id=uid)
    params = dict(params or {})
    outputs: list[_FoldOutput] = []
    failures: list[dict[str, Any]] = []
    instance, i = None, 0
    while i < len(folds):
        size = len(folds) - i if refit_every == 0 else refit_every
        block = list(folds[i : i + size])
        outcome = _run_block(
            frame, block, model=model, params=params, previous=instance, factory=factory, calendar=calendar
        )
        outputs.extend(outcome.done)
        i += len(outcome.done)
        instance = outcome.model
        if outcome.failed is not None:
            fold, exc = outcome.failed
            failures.append(_failure_row(uid, model, fold, exc))
            instance, i = None, i + 1  # the next fold refits from scratch
    mismatches = sum(o.mismatches for o in outputs)
    if mismatches:
        log.info("%s on %s: %d model forecast dates differ from the data's test sessions", model, uid, mismatches)
    if failures:
        log.warning("%s on %s: %d of %d folds failed", model, uid, len(failures), len(folds))
    return UnitResult(
        forecasts=_forecast_table(outputs, uid, model),
        timings=_timing_table(outputs, uid, model),
        failures=normalize(pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)), FAILURE_COLUMNS),
        fold_info=fold_info_table(frame, folds),
        date_mismatches=int(mismatches),
    )


def run_backtest(
    panel: pd.DataFrame,
    *,
    models: Mapping[str, Mapping[str, Any]] | Sequence[str],
    plan: FoldPlan,
    refit_every: int | None = None,
    n_jobs: int = 1,
    progress: Progress | None = None,
    factory: ModelFactory = make_model,
) -> BacktestResult:
    """Backtest every model on every series of a long panel; same folds for all models, deterministic order.

    `models` maps registry names to constructor parameters (or lists names for defaults). With n_jobs > 1
    units run in a forkserver process pool (safe with TensorFlow threads); tables are identical to n_jobs=1
    except the measured seconds. `progress(done, total, unique_id, model)` is called after each unit.
    """
    specs = model_specs(models)
    if refit_every is not None:
        _check_refit_every(refit_every)
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ConfigError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    _check_models(specs, factory)
    panel = prepare_panel(panel)
    folds = panel_folds(panel, plan)
    frames = {str(uid): g.reset_index(drop=True) for uid, g in panel.groupby(ID, sort=True)}
    units = [(uid, name) for uid in sorted(frames) for name in specs]
    kwargs = {uid: {"folds": folds[uid], "horizon": plan.horizon, "refit_every": refit_every} for uid in frames}
    started = time.perf_counter()
    results = _run_units(units, frames, specs, kwargs, n_jobs=n_jobs, progress=progress, factory=factory)
    meta = {
        "plan": plan.to_dict(),
        "plan_fingerprint": plan.fingerprint(),
        "refit_every": {name: resolve_refit_every(name, refit_every) for name in specs},
        "models": {name: dict(p) for name, p in specs.items()},
        "n_series": len(frames),
        "n_units": len(units),
        "n_jobs": n_jobs,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    result = concat(results, meta=meta)
    result.meta["n_failures"] = len(result.failures)
    log.info("backtest done: %s", result.summary())
    return result


def fold_info_table(series: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
    """Per fold: last training value and the in-sample one-step naive MAE/MSE of that fold's training window."""
    frame = _prepare_series(series)
    uid = str(frame[ID].iloc[0])
    ds = pd.DatetimeIndex(frame[DS])
    y = frame[Y].to_numpy(dtype=float)
    rows = []
    for fold in folds:
        train = y[(ds >= fold.train_start) & (ds <= fold.train_end)]
        diffs = np.diff(train)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing scale is inf: metrics make it NaN, counted
            scale_mae = np.mean(np.abs(diffs)) if diffs.size else np.nan
            scale_mse = np.mean(diffs**2) if diffs.size else np.nan
        rows.append(
            {
                ID: uid,
                FOLD: fold.fold,
                CUTOFF: fold.cutoff,
                TRAIN_START: fold.train_start,
                TRAIN_END: fold.train_end,
                LAST_Y: train[-1] if train.size else np.nan,
                SCALE_MAE: scale_mae,
                SCALE_MSE: scale_mse,
            }
        )
    return normalize(pd.DataFrame(rows, columns=list(FOLD_INFO_COLUMNS)), FOLD_INFO_COLUMNS)


def training_frame(series: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    """Rows of `series` with ds in [train_start, train_end]; raises LeakageError if anything passes the cutoff."""
    ds = pd.DatetimeIndex(series[DS])
    train = series.loc[(ds >= fold.train_start) & (ds <= fold.train_end)]
    last = pd.Timestamp(train[DS].max()) if len(train) else None
    if fold.train_end != fold.cutoff or (last is not None and last > fold.cutoff) or fold.test_ds[0] <= fold.cutoff:
        raise LeakageError(
            f"fold {fold.fold}: training rows up to {last}, cutoff {fold.cutoff.date()}, first test session "
            f"{fold.test_ds[0].date()}; training must end at the cutoff, before every test session"
        )
    return train


# ---- one block: (re)fit on its first fold, forecast all its origins ----------------------------------------
def _run_block(
    frame: pd.DataFrame,
    block: list[Fold],
    *,
    model: str,
    params: dict[str, Any],
    previous: Any,
    factory: ModelFactory,
    calendar: str | None = None,
) -> _BlockOutcome:
    """Fit on block[0]'s window and forecast every origin of the block in one forecast_origins call.

    If the batched call fails, the block is replayed fold by fold from a fresh fit to find the failing fold,
    so folds before it keep their forecasts.
    """
    train = training_frame(frame, block[0])  # outside the try: leakage is a bug, not a model failure
    steps = block[0].gap + len(block[0].test_ds)  # what each origin forecasts: the horizon a model is fitted for
    try:
        instance, fit_s = _fit(
            previous, train, model=model, params=params, factory=factory, horizon=steps, calendar=calendar
        )
    except Exception as exc:  # models raise anything; recorded as a failure of this fold
        return _BlockOutcome(failed=(block[0], exc))
    history = _history(frame, block)
    try:
        started = time.perf_counter()
        stacked = instance.forecast_origins(history, [f.cutoff for f in block], steps)
        per_fold = (time.perf_counter() - started) / len(block)
        done = [
            _score(frame, fold, _origin(stacked, fold), fit_s if k == 0 else 0.0, per_fold, refit=k == 0)
            for k, fold in enumerate(block)
        ]
        return _BlockOutcome(done=done, model=instance)
    except Exception as exc:
        if len(block) == 1:
            return _BlockOutcome(failed=(block[0], exc))
        log.info("%s: batched forecast of %d origins failed (%s); replaying fold by fold", model, len(block), exc)
    return _replay(frame, block, model=model, params=params, factory=factory, calendar=calendar)


def _replay(
    frame: pd.DataFrame,
    block: list[Fold],
    *,
    model: str,
    params: dict[str, Any],
    factory: ModelFactory,
    calendar: str | None = None,
) -> _BlockOutcome:
    """Fold-by-fold version of a block: stops at the first failing fold."""
    outcome = _BlockOutcome()
    steps = block[0].gap + len(block[0].test_ds)
    try:
        train = training_frame(frame, block[0])
        instance, fit_s = _fit(
            None, train, model=model, params=params, factory=factory, horizon=steps, calendar=calendar
        )
    except Exception as exc:
        outcome.failed = (block[0], exc)
        return outcome
    history = _history(frame, block)
    for k, fold in enumerate(block):
        try:
            started = time.perf_counter()
            stacked = instance.forecast_origins(history, [fold.cutoff], steps)
            pred_s = time.perf_counter() - started
            outcome.done.append(_score(frame, fold, _origin(stacked, fold), fit_s if k == 0 else 0.0, pred_s, k == 0))
        except Exception as exc:
            outcome.failed = (fold, exc)
            return outcome
    outcome.model = instance
    return outcome


def _fit(
    previous: Any,
    train: pd.DataFrame,
    *,
    model: str,
    params: dict,
    factory: ModelFactory,
    horizon: int,
    calendar: str | None = None,
) -> tuple[Any, float]:
    """A fitted instance and its fit time; warm-start-capable instances are refitted in place.

    Models that declare requires_horizon_in_fit are fitted for `horizon` steps (see models.base.fit_model).
    """
    instance = previous if previous is not None and getattr(previous, "warm_start", False) else None
    instance = instance if instance is not None else factory(model, **params)
    started = time.perf_counter()
    fit_model(instance, train, horizon, calendar=calendar)
    return instance, time.perf_counter() - started


def _history(frame: pd.DataFrame, block: list[Fold]) -> pd.DataFrame:
    """Rows from the block's training start up to its LAST cutoff: everything its origins may condition on."""
    ds = pd.DatetimeIndex(frame[DS])
    return frame.loc[(ds >= block[0].train_start) & (ds <= block[-1].cutoff)]


def _origin(stacked: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    if CUTOFF not in stacked.columns:
        raise ModelFitError("?", "?", f"forecast_origins returned no {CUTOFF!r} column")
    return stacked.loc[pd.DatetimeIndex(stacked[CUTOFF]) == fold.cutoff]


def _score(
    frame: pd.DataFrame, fold: Fold, forecast: pd.DataFrame, fit_s: float, pred_s: float, refit: bool
) -> _FoldOutput:
    """Keep the last `horizon` steps of a forecast, aligned by h to the data's test sessions."""
    steps = fold.gap + len(fold.test_ds)
    forecast = forecast.sort_values(H)
    if forecast[H].tolist() != list(range(1, steps + 1)):
        raise ModelFitError("?", str(frame[ID].iloc[0]), f"fold {fold.fold}: expected h = 1..{steps} from the model")
    scored = forecast.iloc[fold.gap :].reset_index(drop=True)
    yhat = scored[YHAT].to_numpy(dtype=float)
    if not np.all(np.isfinite(yhat)):  # models that override forecast_origins skip Forecaster.predict's check
        bad = int(np.sum(~np.isfinite(yhat)))
        raise ModelFitError(
            "?", str(frame[ID].iloc[0]), f"fold {fold.fold}: {bad} of {len(yhat)} forecasts are not finite"
        )
    test_ds = pd.DatetimeIndex(fold.test_ds)
    truth = frame.set_index(DS)[Y].reindex(test_ds).to_numpy(dtype=float)
    mismatches = int(np.sum(pd.DatetimeIndex(scored[DS]) != test_ds))
    out = pd.DataFrame(
        {
            FOLD: fold.fold,
            CUTOFF: fold.cutoff,
            DS: test_ds,
            H: np.arange(1, len(test_ds) + 1),
            Y: truth,
            YHAT: yhat,
        }
    )
    for col in INTERVAL_COLUMNS:
        out[col] = scored[col].to_numpy(dtype=float) if col in scored.columns else np.nan
    return _FoldOutput(fold, out, fit_s, pred_s, refit, mismatches)


# ---- tables -------------------------------------------------------------------------------------------------
def _forecast_table(outputs: list[_FoldOutput], uid: str, model: str) -> pd.DataFrame:
    if not outputs:
        return normalize(pd.DataFrame(columns=list(BACKTEST_COLUMNS)), BACKTEST_COLUMNS)
    table = pd.concat([o.forecast for o in outputs], ignore_index=True)
    table[ID], table[MODEL] = uid, model
    return normalize(table, BACKTEST_COLUMNS).sort_values([FOLD, H], kind="stable").reset_index(drop=True)


def _timing_table(outputs: list[_FoldOutput], uid: str, model: str) -> pd.DataFrame:
    rows = [(uid, model, o.fold.fold, o.fit_seconds, o.predict_seconds, o.refit) for o in outputs]
    return normalize(pd.DataFrame(rows, columns=list(TIMING_COLUMNS)), TIMING_COLUMNS)


def _failure_row(uid: str, model: str, fold: Fold, exc: BaseException) -> dict[str, Any]:
    """One failure row; anything that is not a ModelFitError is wrapped so the message names model and series."""
    wrapped = exc if isinstance(exc, ModelFitError) else ModelFitError(model, uid, f"{type(exc).__name__}: {exc}")
    if wrapped.model == "?":  # raised by the engine's own output checks
        wrapped = ModelFitError(model, uid, wrapped.reason)
    return {ID: uid, MODEL: model, FOLD: fold.fold, ERROR_TYPE: type(exc).__name__, MESSAGE: str(wrapped)}


# ---- running many units --------------------------------------------------------------------------------------
def _run_units(
    units: list[tuple[str, str]],
    frames: dict[str, pd.DataFrame],
    specs: dict[str, dict[str, Any]],
    kwargs: dict[str, dict[str, Any]],
    *,
    n_jobs: int,
    progress: Progress | None,
    factory: ModelFactory,
) -> list[UnitResult]:
    """Run units serially or in a process pool; results come back in `units` order either way."""
    results: list[UnitResult | None] = [None] * len(units)

    def call(uid: str, name: str) -> dict[str, Any]:
        return {"model": name, "params": specs[name], "factory": factory, **kwargs[uid]}

    if n_jobs == 1:
        for k, (uid, name) in enumerate(units):
            results[k] = backtest_unit(frames[uid], **call(uid, name))
            if progress:
                progress(k + 1, len(units), uid, name)
        return results  # type: ignore[return-value]
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=_pool_context()) as pool:
        futures = {pool.submit(backtest_unit, frames[uid], **call(uid, name)): k for k, (uid, name) in enumerate(units)}
        for done, future in enumerate(as_completed(futures), start=1):
            k = futures[future]
            results[k] = future.result()
            if progress:
                progress(done, len(units), *units[k])
    return results  # type: ignore[return-value]


def _pool_context():
    """forkserver: workers fork from a clean single-threaded server that imported pandas and the engine once.

    Plain fork is unsafe once the parent runs TensorFlow/BLAS threads; spawn re-imports pandas per worker.
    """
    context = get_context("forkserver")
    context.set_forkserver_preload(["backtest.engine"])
    return context


# ---- validation ----------------------------------------------------------------------------------------------
def model_specs(
    models: Mapping[str, Mapping[str, Any]] | Sequence[str], *, kind: str = "models", example: str = "['naive', 'ets']"
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


def _check_models(specs: dict[str, dict[str, Any]], factory: ModelFactory) -> None:
    """Fail before any work on unknown model names (make_model's error lists the registry and close matches)."""
    if factory is not make_model:
        return
    for name in specs:
        if name not in REGISTRY:
            make_model(name)  # raises ConfigError with suggestions


def resolve_refit_every(model: str, refit_every: int | None) -> int:
    """The policy for `model`: the one asked for, else the model class's measured default."""
    if refit_every is not None:
        return refit_every
    cls = model_class(model) if model in REGISTRY else None
    return int(getattr(cls, "default_refit_every", DEFAULT_REFIT_EVERY))


def _check_refit_every(refit_every: int) -> None:
    if not isinstance(refit_every, int) or isinstance(refit_every, bool) or refit_every < 0:
        raise ConfigError(
            f"refit_every must be an integer >= 0 (0 = fit once, 1 = every fold, k = every k-th), got {refit_every!r}"
        )


def prepare_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """A long unique_id, ds, y frame with string ids and datetime ds, sorted; missing columns or duplicate
    (unique_id, ds) rows raise DataError naming them."""
    missing = [c for c in (ID, DS, Y) if c not in panel.columns]
    if missing:
        raise DataError(f"panel lacks column(s) {missing}; expected a long frame unique_id, ds, y")
    panel = panel.copy()
    panel[ID] = panel[ID].astype(str)
    panel[DS] = pd.to_datetime(panel[DS])
    dupes = panel.duplicated([ID, DS])
    if dupes.any():
        first = panel.loc[dupes].iloc[0]
        raise DataError(
            f"{int(dupes.sum())} duplicate (unique_id, ds) rows, first {first[ID]} {first[DS].date()}; deduplicate"
        )
    return panel.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def _prepare_series(series: pd.DataFrame) -> pd.DataFrame:
    frame = prepare_panel(series)
    ids = frame[ID].unique()
    if len(ids) != 1:
        raise DataError(f"a backtest unit takes one series, got {len(ids)} ({list(ids)[:5]}); split the panel first")
    return frame


def _check_folds(frame: pd.DataFrame, folds: Sequence[Fold], *, horizon: int, unique_id: str) -> None:
    if not folds:
        raise ConfigError(f"{unique_id}: no folds to run; build them with make_folds(ds, plan)")
    ds = pd.DatetimeIndex(frame[DS])
    for fold in folds:
        if len(fold.test_ds) != horizon:
            raise ConfigError(
                f"{unique_id}: fold {fold.fold} has {len(fold.test_ds)} test sessions but horizon={horizon}; "
                "build folds and run with the same plan"
            )
        absent = pd.DatetimeIndex(fold.test_ds).difference(ds)
        if len(absent):
            raise DataError(
                f"{unique_id}: fold {fold.fold} tests on sessions missing from the series, first {absent[0].date()}; "
                "folds must be cut from this series' own sessions"
            )
