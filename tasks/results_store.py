"""Results-store tasks: write a backtest run or a live forecast, score live forecasts against new prices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from backtest.champion import champions_from_backtest
from backtest.evaluate import REFERENCE, Evaluation
from backtest.results import BacktestResult
from common.schema import ID, MODEL
from common.settings import home
from models import REGISTRY
from store.results_store import ResultStore, score_live_forecasts
from tasks.retry_conditions import retry_network_errors

# DuckDB has one writer: another process holding the file lock is the failure worth retrying.
LOCK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_network_errors,
}


def results_dir() -> Path:
    """Persisted task results (the cache of backtest units) under PRICECAST_HOME, shared by every run."""
    path = home() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


@task(name="store-backtest", **LOCK_RETRIES)
def store_backtest(
    result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame, store_file: str, flow_run_id: str
) -> str:
    """Every table of this run into the results store, keyed by the flow-run id (`pricecast report` reads it),
    with each ticker's champion (backtest.champion) in the same transaction."""
    champions = champions_from_backtest(result, evaluation)
    for row in champions.to_dict("records"):
        get_run_logger().info("champion of %s: %s, %s", row[ID], row[MODEL], row["reason"])
    ResultStore(store_file).write_backtest(
        flow_run_id=flow_run_id,
        forecasts=result.forecasts,
        metrics=evaluation.metrics,
        leaderboard=evaluation.leaderboard,
        meta=result.meta,
        n_failures=len(result.failures),
        timings=result.timings,
        failures=result.failures,
        fold_info=result.fold_info,
        quality=quality,
        champions=champions,
        tuning=result.tuning,
    )
    return flow_run_id


@task(name="store-live-forecast", **LOCK_RETRIES)
def store_live_forecast(table: pd.DataFrame, store_file: str, flow_run_id: str) -> int:
    """This run's live forecasts into the results store (re-running the task replaces them)."""
    return ResultStore(store_file).write_live(table, flow_run_id=flow_run_id)


@task(name="score-live-forecasts", **LOCK_RETRIES)
def score_live(store_file: str) -> int:
    """Score earlier live forecasts whose sessions now have prices; returns rows newly scored."""
    return score_live_forecasts(ResultStore(store_file))


@task(name="resolve-champions", **LOCK_RETRIES)
def resolve_champions(store_file: str, tickers: list[str]) -> dict[str, dict[str, Any]]:
    """{ticker: {"model", "params"}}: each ticker's newest stored champion with the parameters it was backtested
    with; naive (with a warning) for a ticker without one, or whose champion is no longer registered."""
    log = get_run_logger()
    stored = ResultStore(store_file).champions(latest=True).set_index(ID)
    resolved = {}
    for uid in tickers:
        row = stored.loc[uid] if uid in stored.index else None
        if row is not None and row[MODEL] in REGISTRY:
            resolved[uid] = {"model": str(row[MODEL]), "params": json.loads(row["params"] or "{}")}
            log.info("champion of %s: %s (backtest %s: %s)", uid, row[MODEL], row["flow_run_id"], row["reason"])
            continue
        why = "no stored champion" if row is None else f"stored champion {row[MODEL]!r} is not a registered model"
        log.warning("%s for %s: forecasting it with %s; the weekly backtest chooses champions", why, uid, REFERENCE)
        resolved[uid] = {"model": REFERENCE, "params": {}}
    return resolved
