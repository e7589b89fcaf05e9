"""Results-store tasks: write a backtest run or a live forecast, score live forecasts against new prices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.tasks import exponential_backoff

from backtest.evaluate import Evaluation
from backtest.results import BacktestResult
from pricecast.settings import home
from store.results import ResultStore, score_live_forecasts
from tasks.retry import retry_network_errors

# DuckDB has one writer: another process holding the file lock is the failure worth retrying.
_LOCK_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_network_errors,
}


def results_dir() -> Path:
    """Persisted task results (the cache of backtest units) under PRICECAST_HOME, shared by every run."""
    path = home() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


@task(name="store-backtest", **_LOCK_RETRIES)
def store_backtest(
    result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame, store_file: str, flow_run_id: str
) -> str:
    """Every table of this run into the results store, keyed by the flow-run id (`pricecast report` reads it)."""
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
    )
    return flow_run_id


@task(name="store-live-forecast", **_LOCK_RETRIES)
def store_live_forecast(table: pd.DataFrame, store_file: str, flow_run_id: str) -> int:
    """This run's live forecasts into the results store (re-running the task replaces them)."""
    return ResultStore(store_file).write_live(table, flow_run_id=flow_run_id)


@task(name="score-live-forecasts", **_LOCK_RETRIES)
def score_live(store_file: str) -> int:
    """Score earlier live forecasts whose sessions now have prices; returns rows newly scored."""
    return score_live_forecasts(ResultStore(store_file))
