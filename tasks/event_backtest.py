"""Event-backtest tasks: labels + features per ticker, a cached task per (ticker, model), scoring, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_table_artifact,
)

from backtest import units as backtest_units
from backtest.event_live import LiveEventResult, live_event_unit, live_probability_records
from backtest.event_task import (
    EventEvaluation,
    EventResult,
    EventUnitResult,
    evaluate_events,
    event_folds,
    event_frame,
    gather,
)
from backtest.folds import Fold, FoldPlan
from backtest.units import EventUnit
from common.schema import ID
from features.build import FeatureConfig
from outputs.write import event_report_input, save_event_run
from reports.event_report import event_leaderboard_records, event_summary_markdown, event_verdict
from store.results_store import ResultStore
from tasks.backtest import publish_report_link
from tasks.batches import batch_cache_key, batch_run_name, run_batch
from tasks.fingerprint import unit_key
from tasks.results_store import LOCK_RETRIES, results_dir
from tasks.retry_conditions import retry_crashes

LEADERBOARD_KEY = "event-leaderboard"
SUMMARY_KEY = "event-summary"
REPORT_KEY = "event-report"
PROGRESS_KEY = "event-progress"
PROBABILITIES_KEY = "event-probabilities"


@task(name="build-event-data")
def build_event_data(
    panel: pd.DataFrame, threshold: float, lookahead: int, config: FeatureConfig | None = None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Labels and scale-free causal features per ticker (computed once; every fold slices them)."""
    frame, columns = event_frame(panel, threshold=threshold, lookahead=lookahead, config=config)
    return {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby(ID, sort=True)}, columns


@task(name="plan-event-folds")
def plan_event_folds(frames: dict[str, pd.DataFrame], plan: FoldPlan, lookahead: int) -> dict[str, list[Fold]]:
    """One fold plan per ticker on its labelled sessions, shared by every model."""
    return event_folds(pd.concat(frames.values(), ignore_index=True), plan, lookahead=lookahead)


def event_unit_key(unit: EventUnit, series: pd.DataFrame) -> str:
    """An event unit's key (tasks.fingerprint.unit_key; its rows' labels encode the closes after each origin),
    plus the look-ahead, the feature columns and the threshold-choosing tail."""
    extra = {"horizon": unit.lookahead, "columns": list(unit.columns), "tail_fraction": unit.tail_fraction}
    return unit_key("event-unit", unit, series, **extra)


def event_batch_key(context: Any, parameters: dict[str, Any]) -> str:
    return batch_cache_key("event-units", event_unit_key, parameters)


@task(
    name="event-units",
    task_run_name=batch_run_name,
    cache_key_fn=event_batch_key,
    persist_result=True,
    retries=1,  # failures on a fold are recorded already; a retry covers crashes of the worker itself
    retry_condition_fn=retry_crashes,
)
def run_event_units(
    units: list[EventUnit],
    series: dict[str, pd.DataFrame],
    unit_timeout_seconds: float | None = None,
    refresh: bool = False,
) -> list[EventUnitResult]:
    """Backtest a batch of event (ticker, model) units, each cached, timed out and recorded alone (tasks.batches)."""
    return run_batch(
        units,
        series,
        run=backtest_units.run_unit,
        key=event_unit_key,
        storage=results_dir(),
        unit_timeout_seconds=unit_timeout_seconds,
        refresh=refresh,
    )


@task(name="score-events")
def score_events(results: list[EventUnitResult], meta: dict[str, Any]) -> tuple[EventResult, EventEvaluation]:
    """Concatenate the unit tables; metrics, reliability bins, curves and the DM tests against the base rate."""
    result = gather(results, meta=meta)
    return result, evaluate_events(result)


@task(name="write-event-outputs", retries=2, retry_delay_seconds=2)
def write_event_outputs(result: EventResult, evaluation: EventEvaluation, out_dir: str) -> Path:
    """The run's files into out_dir (outputs.write.save_event_run); returns the report path."""
    return save_event_run(result, evaluation, Path(out_dir))


@task(name="publish-event-artifacts")
def publish_event_artifacts(result: EventResult, evaluation: EventEvaluation, report: Path) -> str:
    """Markdown summary, leaderboard table and the report's http link (or where it is) under stable keys; returns
    the verdict sentence."""
    create_markdown_artifact(
        markdown=event_summary_markdown(event_report_input(result, evaluation)),
        key=SUMMARY_KEY,
        description="Event backtest verdict and leaderboard",
    )
    create_table_artifact(
        table=event_leaderboard_records(evaluation.leaderboard), key=LEADERBOARD_KEY, description="Event leaderboard"
    )
    publish_report_link(report, key=REPORT_KEY, title="Event report", description="The run's HTML event report")
    return event_verdict(evaluation.leaderboard, evaluation.significance)


# ---- live step and results store ---------------------------------------------------------------------------
@task(name="event-live", task_run_name="live {unit.model}, {unit.uid}")
def predict_live_event(unit: EventUnit, series: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The unit's model fitted on every labelled session of its ticker: P(event) at the latest session (one row)."""
    return live_event_unit(
        series,
        model=unit.model,
        params=unit.params,
        threshold=threshold,
        lookahead=unit.lookahead,
        columns=list(unit.columns),
        tail_fraction=unit.tail_fraction,
    )


def event_failures(result: EventResult, live: LiveEventResult) -> pd.DataFrame:
    """The backtest's failed folds and the failed live fits (fold -1): the run is partial when any exists."""
    parts = [f for f in (result.failures, live.failures) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else result.failures


@task(name="store-event-backtest", **LOCK_RETRIES)
def store_event_backtest(
    result: EventResult,
    evaluation: EventEvaluation,
    probabilities: pd.DataFrame,
    store_file: str,
    flow_run_id: str,
) -> str:
    """This event run's tables and live probabilities into the results store in one transaction, keyed by the
    flow-run id (`pricecast report RUN` re-renders the run from them)."""
    ResultStore(store_file).write_event_backtest(
        flow_run_id=flow_run_id,
        predictions=result.predictions,
        metrics=evaluation.metrics,
        leaderboard=evaluation.leaderboard,
        meta=result.meta,
        timings=result.timings,
        failures=result.failures,
        probabilities=probabilities,
    )
    return flow_run_id


@task(name="publish-event-probabilities")
def publish_event_probabilities(probabilities: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Today's probabilities, one row per (ticker, model), under a stable key (history across daily runs)."""
    create_table_artifact(
        table=live_probability_records(probabilities),
        key=PROBABILITIES_KEY,
        description=f"P({meta.get('event', 'event')}) at each ticker's latest session",
    )
