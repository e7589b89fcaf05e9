"""Write a finished run into its directory: tables as parquet + CSV, quality.csv and report.html, each atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backtest.evaluate import Evaluation
from backtest.event_task import EventEvaluation, EventResult
from backtest.results import BacktestResult
from common.fileio import write_table
from reports.data import ReportInput
from reports.event_report import EventReportInput, render_event_html
from reports.html import render_html


def save_run(result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame, out: Path) -> Path:
    """A price run's tables, quality.csv and report.html into `out`; returns the report path."""
    result.save(out)
    evaluation.save(out)
    write_table(quality, out, "quality", parquet=False)
    return render_html(report_input(result, evaluation, quality), out / "report.html")


def report_input(result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame) -> ReportInput:
    """The tables the price report renders, from a run's result and its evaluation."""
    return ReportInput(
        forecasts=result.forecasts,
        timings=result.timings,
        failures=result.failures,
        fold_info=result.fold_info,
        metrics=evaluation.metrics,
        leaderboard=evaluation.leaderboard,
        per_series=evaluation.per_series,
        dm=evaluation.dm,
        dm_pairwise=evaluation.dm_pairwise,
        trading=evaluation.trading,
        equity=evaluation.equity,
        quality=quality,
        meta=result.meta,
        diagnosis=evaluation.diagnosis,
        tuning=result.tuning,
        mcs=evaluation.mcs,
        spa=evaluation.spa,
        interval_tests=evaluation.interval_tests,
    )


def save_event_run(result: EventResult, evaluation: EventEvaluation, out: Path) -> Path:
    """An event run's predictions/metrics parquet + CSV, leaderboard/calibration/significance CSV and report.html."""
    result.save(out)
    evaluation.save(out)
    return render_event_html(event_report_input(result, evaluation), out / "report.html")


def event_report_input(result: EventResult, evaluation: EventEvaluation) -> EventReportInput:
    """The tables the event report renders, from a run's result and its evaluation."""
    return EventReportInput(
        leaderboard=evaluation.leaderboard,
        predictions=result.predictions,
        per_series=evaluation.per_series,
        metrics=evaluation.metrics,
        significance=evaluation.significance,
        calibration=evaluation.calibration,
        curves=evaluation.curves,
        failures=result.failures,
        timings=result.timings,
        meta=result.meta,
    )
