"""Backtest tasks: features per ticker, one cached task per (ticker, model) unit, scoring, outputs, artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from backtest.audit import audit_leakage
from backtest.engine import LeakageError, backtest_unit, fold_info_table
from backtest.evaluate import Evaluation, evaluate
from backtest.folds import Fold, FoldPlan, panel_folds
from backtest.results import FAILURE_COLUMNS, BacktestResult, UnitResult, concat
from common.fileio import safe_name, write_table
from common.schema import ID
from features.build import FeatureConfig, build_features_for
from reports.data import ReportInput
from reports.html import render_html
from reports.markdown import leaderboard_records, summary_markdown
from reports.server import report_url, unserved_report_markdown
from reports.verdict import verdict
from tasks.fingerprint import code_version, digest, folds_key, frame_fingerprint, unit_key
from tasks.retry import retry_crashes


@task(name="build-features")
def build_ticker_features(panel: pd.DataFrame, config: FeatureConfig) -> dict[str, pd.DataFrame]:
    """Features computed once per ticker (causal, so every fold can slice them without look-ahead)."""
    frame = build_features_for(panel, config)
    return {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby(ID, sort=True)}


def audit_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """A ticker's audit depends on its prices, its folds, the feature config and the code: nothing else."""
    return f"audit-{safe_name(parameters['uid'])}-" + digest(  # a file name: the ticker encoded (fileio.safe_name)
        {
            "data": frame_fingerprint(parameters["series"]),
            "folds": folds_key(parameters["folds"]),
            "config": parameters["config"].fingerprint(),
            "code": code_version(),
        }
    )


@task(name="audit-leakage", task_run_name="audit {uid}", cache_key_fn=audit_cache_key, persist_result=True)
def audit_fold_leakage(series: pd.DataFrame, *, uid: str, folds: list[Fold], config: FeatureConfig) -> dict[str, Any]:
    """Leakage audit of every fold of one ticker (backtest/audit.py); a failure stops the run before any result.

    `series` is the ticker's feature frame: its price, volume and date columns are the raw data the audit
    recomputes the indicators from, its feature columns what the models saw.
    """
    audit = audit_leakage(series, {uid: series}, {uid: folds}, config)
    if not audit.passed:
        raise LeakageError(f"leakage audit {audit.summary()}")
    return audit.to_dict()


@task(name="plan-folds")
def plan_folds(panel: pd.DataFrame, plan: FoldPlan) -> dict[str, list[Fold]]:
    """One fold plan per ticker, shared by every model."""
    return panel_folds(panel, plan)


def unit_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Explicit key: model config, folds, refit policy, the unit's data slice and the code version."""
    return unit_key("unit", parameters)


@task(
    name="backtest-unit",
    task_run_name="{model} on {uid}",
    cache_key_fn=unit_cache_key,
    persist_result=True,
    retries=1,  # model failures are already recorded per fold; a retry covers crashes of the worker itself
    retry_condition_fn=retry_crashes,  # never retry pricecast's own errors (leakage, bad config): deterministic
)
def run_unit(
    series: pd.DataFrame,
    *,
    uid: str,
    model: str,
    params: dict[str, Any],
    folds: list[Fold],
    refit_every: int | None,
    horizon: int,
    calendar: str | None = None,
) -> UnitResult:
    """Backtest one model on one ticker over its folds (failures on a fold are recorded, not raised)."""
    return backtest_unit(
        series, model=model, params=params, folds=folds, refit_every=refit_every, horizon=horizon, calendar=calendar
    )


def crash_failures(uid: str, model: str, folds: list[Fold], exc: BaseException) -> pd.DataFrame:
    """A unit task that crashed after its retries: every fold recorded as failed with the exception."""
    rows = [[uid, model, f.fold, type(exc).__name__, str(exc)[:500]] for f in folds]
    return pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))


def failed_unit(series: pd.DataFrame, model: str, folds: list[Fold], exc: BaseException) -> UnitResult:
    """A unit whose task crashed after its retries: every fold recorded as failed, the run carries on."""
    from backtest.results import empty_table, normalize
    from common.schema import BACKTEST_COLUMNS, TIMING_COLUMNS

    return UnitResult(
        forecasts=empty_table(BACKTEST_COLUMNS),
        timings=empty_table(TIMING_COLUMNS),
        failures=normalize(crash_failures(str(series[ID].iloc[0]), model, folds, exc), FAILURE_COLUMNS),
        fold_info=fold_info_table(series, folds),
    )


@task(name="gather")
def gather(units: list[UnitResult], meta: dict[str, Any]) -> BacktestResult:
    """Concatenate the unit tables into the run's tidy tables."""
    return concat(units, meta=meta)


def score_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Same forecasts, folds, failures and scoring settings give the same scores (a cached rerun skips them)."""
    result: BacktestResult = parameters["result"]
    return "score-" + digest(
        {
            "forecasts": frame_fingerprint(result.forecasts),
            "fold_info": frame_fingerprint(result.fold_info),
            "failures": frame_fingerprint(result.failures),
            "step": (result.meta.get("plan") or {}).get("step"),
            "cost_bps": result.meta.get("trading_cost_bps"),
            "code": code_version(),
        }
    )


@task(name="score", cache_key_fn=score_cache_key, persist_result=True)
def score(result: BacktestResult) -> Evaluation:
    """Metrics, Diebold-Mariano tests and trading figures of the run's forecasts."""
    return evaluate(result)


@task(name="write-outputs", retries=2, retry_delay_seconds=2)
def write_outputs(result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame, out_dir: str) -> Path:
    """forecasts/timings/metrics parquet + CSV, leaderboard.csv and report.html, each written atomically."""
    return save_run(result, evaluation, quality, Path(out_dir))


def save_run(result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame, out: Path) -> Path:
    """Write a run's tables, quality.csv and report.html into `out`; returns the report path.

    Plain function (not a task) so `pricecast report` re-renders a stored run exactly as the flow wrote it.
    """
    result.save(out)
    evaluation.save(out)
    write_table(quality, out, "quality", parquet=False)
    return render_html(report_input(result, evaluation, quality), out / "report.html")


def report_input(result: BacktestResult, evaluation: Evaluation, quality: pd.DataFrame) -> ReportInput:
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
    )


@task(name="publish-artifacts")
def publish_artifacts(result: BacktestResult, evaluation: Evaluation, report: Path, quality: pd.DataFrame) -> str:
    """Markdown summary, leaderboard table (stable key: history across scheduled runs) and the report's http link
    (or, without a report server, where the report is and how to serve it).

    Returns the one-sentence verdict (best model, margin over naive, significance) for the caller to show.
    """
    create_markdown_artifact(
        markdown=summary_markdown(report_input(result, evaluation, quality)),
        key="backtest-summary",
        description="Backtest verdict and leaderboard",
    )
    create_table_artifact(
        table=leaderboard_records(evaluation.leaderboard), key="backtest-leaderboard", description="Leaderboard"
    )
    publish_report_link(report, key="backtest-report", title="HTML report", description="The run's HTML report")
    return verdict(evaluation.leaderboard, evaluation.dm)


def publish_report_link(report: Path, *, key: str, title: str, description: str) -> None:
    """The report's http link while a report server serves it; else a note saying where it is and how to serve it.

    Never a file:// link: browsers refuse those from the http Prefect UI ("Not allowed to load local resource").
    """
    description = f"{description}: {report.resolve()}"
    if url := report_url(report):
        create_link_artifact(link=url, link_text=title, key=key, description=description)
    else:
        markdown = unserved_report_markdown(report, title=title)
        create_markdown_artifact(markdown=markdown, key=key, description=description)
