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
from backtest.units import EventUnit, PriceUnit, failed_unit
from common import progress
from common.schema import ID, MODEL
from tasks.retry_conditions import is_task_timeout

R = TypeVar("R")


def wait_for_units(
    futures: Sequence[PrefectFuture[R]],
    units: Sequence[PriceUnit] | Sequence[EventUnit],
    series: Mapping[str, pd.DataFrame],
    *,
    stage: str = "backtest",
    key: str = "backtest-progress",
) -> list[R]:
    """Wait for every (ticker, model) unit in completion order, moving a progress artifact (and the CLI's bar).

    A unit whose task failed after its retries becomes backtest.units.failed_unit (every fold recorded as failed,
    with the exception); the others carry on. Results come back in the order of `futures`.
    """
    log = get_run_logger()
    artifact = cast(UUID, create_progress_artifact(progress=0.0, key=key, description="Units finished"))  # sync call
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, future in enumerate(as_completed(list(futures)), start=1):
        i = index[id(future)]
        unit = units[i]
        try:
            results[i] = future.result()
        except Exception as exc:  # the task failed after its retries: record it, carry on
            if is_task_timeout(exc):
                exc = TimeoutError(f"unit timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
            log.error("unit %s on %s failed: %s", unit.model, unit.uid, exc)
            results[i] = failed_unit(unit, series[unit.uid], exc)
        update_progress_artifact(artifact_id=artifact, progress=100.0 * done / len(futures))
        progress.report(stage, done, len(futures), f"{unit.model} on {unit.uid}")
    return results


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
