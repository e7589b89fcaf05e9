"""What a run records about itself (the report header, meta.json, the results store): where its output goes,
its source and coverage, fold plan, the refit policy each model ran with, versions and the git commit."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.context import get_run_context

from backtest.evaluate import TRADING_COST_BPS
from backtest.event_task import event_meta
from backtest.folds import FoldPlan
from backtest.units import EventUnit, PriceUnit
from common.redact import redact
from common.schema import DS, ID
from common.settings import runs_dir
from ingest.spec import SourceSpec

_VERSIONED = ("pricecast", "prefect", "pandas", "numpy", "statsmodels", "prophet", "tensorflow-cpu", "keras")


def run_out_dir(out_dir: str | None) -> Path:
    """The run's output directory: the one given, or runs/<UTC time>-<flow run name> under PRICECAST_HOME."""
    if out_dir:
        return Path(out_dir).expanduser().resolve()
    try:
        name = get_run_context().flow_run.name  # type: ignore[union-attr]  # a task context has no flow_run
    except Exception:  # outside a flow run
        name = "local"
    return runs_dir() / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{name}"


def refit_policies(units: Sequence[PriceUnit] | Sequence[EventUnit]) -> dict[str, int]:
    """The refit policy each model ran with, as its units carry it (resolved once, by plan_*_units)."""
    return {unit.model: unit.refit_every for unit in units}


def run_meta(
    *,
    spec: SourceSpec,
    plan: FoldPlan,
    refit_every: dict[str, int],
    models: dict[str, dict[str, Any]],
    panel: pd.DataFrame,
    started: datetime,
    audit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the report header shows: source, coverage, plan, refit policy, versions, git commit."""
    coverage = panel.groupby(ID)[DS].agg(["min", "max", "size"])
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
        "refit_every": refit_every,
        "trading_cost_bps": TRADING_COST_BPS,
        "leakage_audit": audit,
        "models": models,
        "versions": {name: _version(name) for name in _VERSIONED},
        "git_commit": _git_commit(),
        "flow_run_id": flow_run_id(),
        "created_at": started.isoformat(timespec="seconds"),
        "elapsed_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
    }


def flow_run_id() -> str | None:
    """The current flow run's id, or None outside one."""
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:
        return None


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


def event_run_meta(
    *,
    spec: SourceSpec,
    plan: FoldPlan,
    panel: pd.DataFrame,
    frames: dict[str, pd.DataFrame],
    columns: list[str],
    threshold: float,
    lookahead: int,
    models: dict[str, dict[str, Any]],
    refit_every: dict[str, int],
    tail_fraction: float,
    started: datetime,
) -> dict[str, Any]:
    """Report-header metadata of an event run: run_meta's source, coverage, versions and run id, plus the event
    task's own (backtest.event_task.event_meta: the event, look-ahead, features, event rates)."""
    meta = run_meta(spec=spec, plan=plan, refit_every=refit_every, models={}, panel=panel, started=started)
    own = event_meta(
        threshold=threshold,
        lookahead=lookahead,
        plan=plan,
        models=models,
        refit_every=refit_every,
        columns=columns,
        frame=pd.concat(frames.values(), ignore_index=True),
        tail_fraction=tail_fraction,
    )
    return {**meta, **own, "created_at": meta["created_at"], "elapsed_seconds": meta["elapsed_seconds"]}
