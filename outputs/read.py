"""Read a finished run back: from a run directory (`backtest --out DIR`) or from the results store, by run id."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from backtest.event_task import EventResult, normalize_predictions
from backtest.results import FAILURE_COLUMNS, FOLD_INFO_COLUMNS, BacktestResult, normalize
from common.errors import PricecastError
from common.schema import BACKTEST_COLUMNS, ID, TIMING_COLUMNS, TUNING_COLUMNS
from store.results_store import ResultStore


def run_from_directory(path: Path) -> tuple[BacktestResult, pd.DataFrame | None]:
    """A run written by `pricecast backtest --out DIR`: its parquet tables, meta.json and quality.csv."""
    meta = path / "meta.json"
    try:  # read first, so a damaged one is named before any table is loaded
        json.loads(meta.read_text()) if meta.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PricecastError(
            f"{meta}: not valid JSON ({getattr(exc, 'msg', exc)}); re-run the backtest into this directory, "
            "or render the stored run with `pricecast report <run id>`"
        ) from None
    result = BacktestResult.load(path)
    quality_file = path / "quality.csv"
    quality = pd.read_csv(quality_file, dtype={ID: str}, keep_default_na=False) if quality_file.exists() else None
    return result, quality


def run_from_store(store: ResultStore, run_id: str) -> tuple[BacktestResult, pd.DataFrame]:
    """A price run's tables from the results store, in the canonical dtypes `evaluate` expects."""
    tables, meta = store.backtest_run(run_id)
    if tables["fold_info"].empty:
        raise PricecastError(
            f"run {run_id} was stored without its fold table (before pricecast 0.1 stored it); "
            "re-run the backtest to render its report"
        )
    result = BacktestResult(
        forecasts=normalize(tables["forecasts"], BACKTEST_COLUMNS),
        timings=normalize(tables["timings"], TIMING_COLUMNS),
        failures=normalize(tables["failures"], FAILURE_COLUMNS),
        fold_info=normalize(tables["fold_info"], FOLD_INFO_COLUMNS),
        meta=meta,
        tuning=normalize(tables["tuning"], TUNING_COLUMNS),
    )
    return result, tables["quality"]


def event_run_from_store(store: ResultStore, run_id: str) -> tuple[EventResult, pd.DataFrame]:
    """An event run's tables from the results store, and its live probabilities."""
    tables, meta = store.event_run(run_id)
    result = EventResult(
        predictions=normalize_predictions(tables["predictions"]),
        timings=normalize(tables["timings"], TIMING_COLUMNS),
        failures=normalize(tables["failures"], FAILURE_COLUMNS),
        meta=meta,
    )
    return result, tables["probabilities"]
