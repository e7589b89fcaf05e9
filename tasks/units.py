"""Flow plumbing that is not a task: waiting on unit futures with a live progress artifact, run metadata."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import get_run_context
from prefect.futures import as_completed
from prefect.states import Completed, Failed, State

from backtest.audit import AuditResult
from backtest.engine import resolve_refit_every
from backtest.evaluate import TRADING_COST_BPS
from backtest.folds import Fold, FoldPlan
from backtest.results import UnitResult
from common import progress
from common.redact import redact
from common.schema import DS, ID, MODEL
from common.settings import runs_dir
from ingest.spec import SourceSpec
from tasks.backtest import failed_unit
from tasks.retry import is_task_timeout

_VERSIONED = ("pricecast", "prefect", "pandas", "numpy", "statsmodels", "prophet", "tensorflow-cpu", "keras")


def wait_for_units(
    futures: list,
    units: list[tuple[str, str]],
    on_failure: Callable[[str, str, BaseException], Any],
    *,
    stage: str = "backtest",
    key: str = "backtest-progress",
) -> list:
    """Wait for every (ticker, model) unit in completion order, moving a progress artifact (and the CLI's bar).

    A unit whose task failed after its retries becomes `on_failure(uid, model, exc)` (its failures, recorded);
    the others carry on. Results come back in the order of `futures`.
    """
    log = get_run_logger()
    artifact = create_progress_artifact(progress=0.0, key=key, description="Units finished")
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, future in enumerate(as_completed(futures), start=1):
        i = index[id(future)]
        uid, model = units[i]
        try:
            results[i] = future.result()
        except Exception as exc:  # the task failed after its retries: record it, carry on
            if is_task_timeout(exc):
                exc = TimeoutError(f"unit timed out ({exc}); raise unit_timeout_seconds if the model is just slow")
            log.error("unit %s on %s failed: %s", model, uid, exc)
            results[i] = on_failure(uid, model, exc)
        update_progress_artifact(artifact_id=artifact, progress=100.0 * done / len(futures))
        progress.report(stage, done, len(futures), f"{model} on {uid}")
    return results


def collect_units(
    futures: list, units: list[tuple[str, str]], features: dict[str, pd.DataFrame], folds: dict[str, list[Fold]]
) -> list[UnitResult]:
    """Wait for every backtest unit; a crashed unit becomes recorded failures on every fold."""
    return wait_for_units(futures, units, lambda uid, model, exc: failed_unit(features[uid], model, folds[uid], exc))


def run_outcome(failures: pd.DataFrame, n_units: int, report: Path, summary: dict[str, Any], *, done: str) -> State:
    """The flow's final state: Completed only when no unit failed, else Failed naming every failed unit."""
    if len(failures):
        failed = failures.groupby([ID, MODEL]).size()
        what = ", ".join(f"{m} on {u} ({n} folds)" for (u, m), n in failed.items())
        return Failed(message=f"{len(failed)} of {n_units} units had failures: {what}; see {report}", data=summary)
    return Completed(message=f"{n_units} {done}; report at {report}", data=summary)


def merged_audit(futures: list) -> dict[str, Any]:
    """Wait for the per-ticker leakage audits and merge them; a failed one re-raises its LeakageError."""
    return AuditResult.merge([future.result() for future in futures]).to_dict()


def run_out_dir(out_dir: str | None) -> Path:
    """The run's output directory: the one given, or runs/<UTC time>-<flow run name> under PRICECAST_HOME."""
    if out_dir:
        return Path(out_dir).expanduser().resolve()
    try:
        name = get_run_context().flow_run.name
    except Exception:  # outside a flow run
        name = "local"
    return runs_dir() / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{name}"


def run_meta(
    *,
    spec: SourceSpec,
    plan: FoldPlan,
    refit_every: int | None,
    models: dict[str, dict],
    panel: pd.DataFrame,
    started: datetime,
    audit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the report header shows: source, coverage, plan, refit policy, versions, git commit."""
    coverage = panel.groupby(ID)[DS].agg(["min", "max", "size"])
    try:
        flow_run_id = str(get_run_context().flow_run.id)
    except Exception:
        flow_run_id = None
    return {
        "source": spec.source,
        "path": redact(str(spec.path)) if spec.path else None,  # a URL may carry a password
        "tickers": sorted(map(str, coverage.index)),
        "sessions": {
            str(uid): {"first": str(r["min"].date()), "last": str(r["max"].date()), "n": int(r["size"])}
            for uid, r in coverage.iterrows()
        },
        "plan": plan.to_dict(),
        "plan_fingerprint": plan.fingerprint(),
        "refit_every": {name: resolve_refit_every(name, refit_every) for name in models},
        "trading_cost_bps": TRADING_COST_BPS,
        "leakage_audit": audit,
        "models": models,
        "versions": {name: _version(name) for name in _VERSIONED},
        "git_commit": _git_commit(),
        "flow_run_id": flow_run_id,
        "created_at": started.isoformat(timespec="seconds"),
        "elapsed_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None
