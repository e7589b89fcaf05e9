"""How the flows fan out: wait on mapped unit tasks with a live progress artifact, and the run's final state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from uuid import UUID

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Completed, Failed, State

from backtest.audit import AuditResult
from backtest.event_live import LiveEventResult, gather_live, live_failure_row
from backtest.units import EventUnit, PriceUnit, Unit, failed_unit
from common import progress
from common.schema import ID, MODEL
from tasks.batches import UnitsFailed
from tasks.retry_conditions import is_task_timeout

R = TypeVar("R")


def wait_for_units(
    futures: Sequence[PrefectFuture[list[R]]],
    batches: Sequence[Sequence[PriceUnit]] | Sequence[Sequence[EventUnit]],
    series: Mapping[str, pd.DataFrame],
    *,
    stage: str = "backtest",
    key: str = "backtest-progress",
) -> list[R]:
    """Wait for every batch of units in completion order, moving a progress artifact (and the CLI's bar) by units.

    A batch whose task failed after its retries (a crashed worker) has each of its units become
    backtest.units.failed_unit (every fold recorded as failed, with the exception); the others carry on. Returns
    one result per unit, in batch order then unit order (the order the batches were planned from).
    """
    log = get_run_logger()
    artifact = cast(UUID, create_progress_artifact(progress=0.0, key=key, description="Units finished"))  # sync call
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[list[Any]] = [[] for _ in futures]
    total, done = sum(len(batch) for batch in batches), 0
    for future in as_completed(list(futures)):
        i = index[id(future)]
        batch = batches[i]
        try:
            results[i] = list(future.result())
        except UnitsFailed as exc:  # some units raised or timed out: their failure records, the rest as run
            log.error("%s", exc)
            results[i] = list(exc.results)
        except Exception as exc:  # the task failed after its retries: record each of its units, carry on
            if is_task_timeout(exc):
                exc = TimeoutError(f"units timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
            log.error("units %s failed: %s", ", ".join(f"{u.model} on {u.uid}" for u in batch[:3]), exc)
            results[i] = [failed_unit(unit, series[unit.uid], exc) for unit in batch]
        done += len(batch)
        update_progress_artifact(artifact_id=artifact, progress=100.0 * done / total)
        last = batch[-1]
        progress.report(stage, done, total, f"{last.model} on {last.uid}")
    return [result for batch in results for result in batch]


def in_plan_order(units: Sequence[Unit], ran: Sequence[Unit], results: Sequence[R]) -> list[R]:
    """`results` (one per unit of `ran`, in batch order) put back in the order of `units`, the plan's."""
    by_unit = {(unit.uid, unit.model): result for unit, result in zip(ran, results, strict=True)}
    return [by_unit[(unit.uid, unit.model)] for unit in units]


def wait_for_live(futures: Sequence[PrefectFuture[pd.DataFrame]], units: Sequence[EventUnit]) -> LiveEventResult:
    """Wait for the live step's (ticker, model) tasks: a failed or timed-out one becomes its live failure row."""
    rows, failures = [], []
    for future, unit in zip(futures, units, strict=True):
        try:
            rows.append(future.result())
        except Exception as exc:  # the model failed (or hung past the unit timeout) on the full history
            if is_task_timeout(exc):
                exc = TimeoutError(f"live fit timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
            get_run_logger().warning("live %s on %s failed: %s", unit.model, unit.uid, exc)
            failures.append(live_failure_row(unit.uid, unit.model, exc))
    return gather_live(rows, failures)


def run_outcome(failures: pd.DataFrame, n_units: int, report: Path, summary: dict[str, Any], *, done: str) -> State:
    """The flow's final state: Completed only when no unit failed, else Failed naming every failed unit."""
    if len(failures):
        failed = failures.groupby([ID, MODEL]).size()
        what = ", ".join(f"{m} on {u} ({n} folds)" for (u, m), n in failed.items())
        return Failed(message=f"{len(failed)} of {n_units} units had failures: {what}; see {report}", data=summary)
    return Completed(message=f"{n_units} {done}; report at {report}", data=summary)


def merged_audit(futures: Sequence[PrefectFuture[dict[str, Any]]]) -> dict[str, Any]:
    """Wait for the per-ticker leakage audits and merge them; a failed one re-raises its LeakageError."""
    return AuditResult.merge([future.result() for future in futures]).to_dict()
