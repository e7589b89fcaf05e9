"""Run a batch of (ticker, model) units inside ONE Prefect task, each unit still cached, timed out and logged alone.

A task run costs about 200 ms of orchestration (backtest.units: SMALL_UNIVERSE, BATCHES_PER_MODEL), so a wide
universe runs batches of one model on many tickers (backtest.units.batch_units). Inside a batch each unit keeps
what a task per unit gave it:
- its own cache entry, under the unit's own key (tasks.fingerprint.unit_key) in the same result storage as the task
  cache: a batch whose tickers partly changed reruns only the changed units, and a batch that crashed part-way
  keeps the units it finished;
- its own time limit (`unit_timeout_seconds`): a hung model is stopped and recorded as failed, the batch goes on;
- its own failure record: a unit that raises becomes `failed_unit` (every fold failed with the reason), except a
  LeakageError, which stops the run; the batch then ends Failed (UnitsFailed, carrying every unit's result), so
  it is not cached as a whole and the failed units run again next time;
- a log line as it finishes (the task's logs in the UI show the batch's progress).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pandas as pd
from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.utilities.timeout import timeout

from backtest.blocks import LeakageError
from backtest.panel import PanelUnit, is_global
from backtest.units import Unit, failed_unit
from common.errors import PricecastError
from tasks.fingerprint import digest

U = TypeVar("U", bound=Unit)
R = TypeVar("R")

UnitKey = Callable[[Any, pd.DataFrame], str]  # (unit, its series) -> the unit's cache key


class UnitsFailed(PricecastError):
    """Some units of a batch raised or timed out: the batch task fails (so it is neither cached nor shown as
    Completed) and carries every unit's result, the failed ones as failure records (flows.fanout reads them)."""

    def __init__(self, message: str, results: list[Any]) -> None:
        super().__init__(message)
        self.results = results

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (Dask workers) with its results
        return (type(self), (str(self), self.results))


def batch_cache_key(prefix: str, key: UnitKey, parameters: dict[str, Any]) -> str:
    """A batch task's cache key from its units' keys: reused whole only when every unit would be."""
    keys = [key(unit, parameters["series"][unit.uid]) for unit in parameters["units"]]
    return f"units-{keys[0]}" if len(keys) == 1 else f"{prefix}-" + digest({"units": keys})


def batch_run_name() -> str:
    """A batch task's run name (Prefect calls it with the run's parameters in prefect.runtime)."""
    from prefect.runtime import task_run

    return batch_name(task_run.parameters["units"])


def batch_name(units: Sequence[Unit]) -> str:
    """A batch's task-run name: "ets on AAPL" for one unit, "ets on S0001 … S0125 (125 tickers)" for more."""
    if len(units) == 1:
        return f"{units[0].model} on {units[0].uid}"
    return f"{units[0].model} on {units[0].uid} … {units[-1].uid} ({len(units)} tickers)"


def run_batch(
    units: Sequence[U],
    series: Mapping[str, pd.DataFrame],
    *,
    run: Callable[[U, pd.DataFrame], R],
    key: UnitKey,
    storage: Path,
    unit_timeout_seconds: float | None,
    refresh: bool = False,
    run_panel: Callable[[PanelUnit, Mapping[str, pd.DataFrame]], list[R]] | None = None,
) -> list[R]:
    """`run(unit, series[unit.uid])` for every unit, in order, each read from / written to its own cache entry.

    A batch of a global model's units (backtest.panel) is ONE unit: `run_panel(PanelUnit, series)` runs it, under
    one cache entry keyed on every member's key (so on every member's data fingerprint) and a time limit of
    `unit_timeout_seconds` per member series.
    refresh=True recomputes every unit (and overwrites its entry), as the flows' refresh_cache does for tasks.
    """
    log = _logger()
    store = ResultStore(result_storage=LocalFileSystem(basepath=str(storage)), cache_result_in_memory=False)
    if run_panel is not None and units and is_global(units[0].model):
        return _run_panel_batch(units, series, run_panel, key, store, unit_timeout_seconds, refresh=refresh)
    results: list[R] = []
    failed: list[str] = []
    started = time.perf_counter()
    for done, unit in enumerate(units, start=1):
        frame = series[unit.uid]
        unit_key = key(unit, frame)
        if not refresh and store.exists(unit_key):
            results.append(store.read(unit_key).result)
            how = "cached"
        else:
            result, finished = _run_one(unit, frame, run, unit_timeout_seconds)
            results.append(result)
            how = "ran" if finished else "failed"
            if finished:  # a unit that raised or timed out is tried again next run, as a failed task was
                store.write(result, key=unit_key)
            else:
                failed.append(f"{unit.model} on {unit.uid}")
        if len(units) > 1:
            log.info("%d/%d %s on %s: %s (%.0f s)", done, len(units), unit.model, unit.uid, how, _since(started))
    if failed:
        raise UnitsFailed(f"{len(failed)} of {len(units)} units failed: {', '.join(failed[:5])}", results)
    return results


def panel_key(key: UnitKey, units: Sequence[Unit], series: Mapping[str, pd.DataFrame]) -> str:
    """A panel unit's cache key: every member unit's key (model config, folds, policy, its data fingerprint)."""
    keys = [key(unit, series[unit.uid]) for unit in units]
    return f"panel-{units[0].model}-{len(keys)}-" + digest({"members": keys})


def _run_panel_batch(
    units: Sequence[U],
    series: Mapping[str, pd.DataFrame],
    run_panel: Callable[[PanelUnit, Mapping[str, pd.DataFrame]], list[R]],
    key: UnitKey,
    store: ResultStore,
    seconds: float | None,
    *,
    refresh: bool,
) -> list[R]:
    """A global model's units as one panel unit: cached whole, timed out whole, failed whole (every member)."""
    log = _logger()
    panel = PanelUnit(tuple(units))
    entry = panel_key(key, units, series)
    if not refresh and store.exists(entry):
        log.info("%s on %d series: cached", panel.model, len(units))
        return list(store.read(entry).result)
    started = time.perf_counter()
    try:
        with timeout(seconds=None if seconds is None else seconds * len(units)):
            results = run_panel(panel, series)
    except LeakageError:
        raise
    except Exception as exc:  # the panel raised or timed out: every member recorded as failed, tried again next run
        if isinstance(exc, TimeoutError):
            exc = TimeoutError(f"panel unit timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
        log.error("%s on %d series failed: %s", panel.model, len(units), exc)
        failed = [_failed(unit, series[unit.uid], exc) for unit in units]
        raise UnitsFailed(f"{panel.model} on {len(units)} series failed: {exc}", failed) from exc
    store.write(results, key=entry)
    log.info("%s on %d series: ran as one panel unit (%.0f s)", panel.model, len(units), _since(started))
    return results


def _run_one(
    unit: U, frame: pd.DataFrame, run: Callable[[U, pd.DataFrame], R], seconds: float | None
) -> tuple[R, bool]:
    """One unit under its time limit, and whether it finished; a unit that raised (but for a leak) or timed out
    becomes its failure record."""
    try:
        with timeout(seconds=seconds):
            return run(unit, frame), True
    except LeakageError:
        raise
    except TimeoutError as exc:
        reason = TimeoutError(f"unit timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
        _logger().error("unit %s on %s failed: %s", unit.model, unit.uid, reason)
        return _failed(unit, frame, reason), False
    except Exception as exc:  # a unit that raised outright (bad folds or data): recorded, the batch goes on
        _logger().error("unit %s on %s failed: %s", unit.model, unit.uid, exc)
        return _failed(unit, frame, exc), False


def _failed(unit: Unit, frame: pd.DataFrame, exc: BaseException) -> Any:
    """failed_unit of a price or an event unit (its overloads need the concrete type)."""
    return failed_unit(cast(Any, unit), frame, exc)


def _logger() -> Any:
    """The task run's logger (its lines show in the UI), or this module's when called outside a run (`.fn`)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _since(started: float) -> float:
    return time.perf_counter() - started
