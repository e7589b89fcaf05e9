"""Backtest tasks: features per ticker, one cached task per (ticker, model) unit, scoring, outputs, artifacts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from backtest import units as backtest_units
from backtest.audit import AuditResult, audit_leakage
from backtest.engine import LeakageError
from backtest.evaluate import Evaluation, evaluate
from backtest.folds import Fold, FoldPlan, panel_calibration_folds, panel_folds
from backtest.panel import run_panel_unit
from backtest.results import BacktestResult, UnitResult, concat
from backtest.units import PriceUnit
from common.fileio import safe_name
from common.schema import ID
from features.build import FeatureConfig, build_features_for
from features.covariates import CovariateConfig, CovariateSeries, check_known_by, split_covariates, with_covariates
from ingest.quality import CovariateAlignment, QualityReport
from outputs.write import report_input, save_run
from reports.markdown import leaderboard_records, summary_markdown
from reports.server import report_url, unserved_report_markdown
from reports.verdict import verdict
from tasks.batches import batch_cache_key, batch_run_name, run_batch
from tasks.fingerprint import code_version, digest, folds_key, frame_fingerprint, unit_key
from tasks.results_store import results_dir
from tasks.retry_conditions import retry_crashes


@task(name="build-features")
def build_ticker_features(panel: pd.DataFrame, config: FeatureConfig) -> dict[str, pd.DataFrame]:
    """Features computed once per ticker (causal, so every fold can slice them without look-ahead)."""
    frame = build_features_for(panel, config)
    return {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby(ID, sort=True)}


@task(name="split-covariates")
def split_covariate_panel(
    panel: pd.DataFrame, quality: QualityReport, config: CovariateConfig
) -> tuple[pd.DataFrame, list[CovariateSeries]]:
    """The tickers to forecast, and the covariates' series (inputs only, never forecast)."""
    return split_covariates(panel, config, _calendars(quality))


@task(name="align-covariates")
def align_covariates(
    features: dict[str, pd.DataFrame],
    covariates: list[CovariateSeries],
    quality: QualityReport,
    config: CovariateConfig,
    folds: dict[str, list[Fold]],
) -> tuple[dict[str, pd.DataFrame], QualityReport]:
    """Each ticker's features plus its covariate columns as of its closes, and the quality report with the counts."""
    frames, counts = with_covariates(features, covariates, config, _calendars(quality))
    check_known_by(counts, {uid: min(f.cutoff for f in series_folds) for uid, series_folds in folds.items()})
    aligned = [CovariateAlignment(**dataclasses.asdict(a)) for a in counts]
    return frames, quality.model_copy(update={"covariates": aligned})


def _calendars(quality: QualityReport) -> dict[str, str | None]:
    return {uid: q.calendar for uid, q in quality.tickers.items()}


def audit_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """A batch's audit depends on its tickers' prices and folds, the feature config, the covariates and the code."""
    series, folds = parameters["series"], parameters["folds"]
    tickers = sorted(series)
    covariate_config = parameters.get("covariate_config")
    payload = {
        "data": {uid: frame_fingerprint(series[uid]) for uid in tickers},
        "folds": {uid: folds_key(folds[uid]) for uid in tickers},
        "config": parameters["config"].fingerprint(),
        "covariates": covariate_config.fingerprint() if covariate_config else None,
        "covariate_data": [c.fingerprint() for c in parameters.get("covariates") or ()],
        "calendars": {uid: (parameters.get("calendars") or {}).get(uid) for uid in tickers},
        "code": code_version(),
    }
    # A file name: the ticker encoded (fileio.safe_name)
    return f"audit-{safe_name(tickers[0])}-{len(tickers)}-" + digest(payload)


def _audit_run_name() -> str:
    from prefect.runtime import task_run

    tickers = sorted(task_run.parameters["series"])
    return (
        f"audit {tickers[0]}" if len(tickers) == 1 else f"audit {tickers[0]} … {tickers[-1]} ({len(tickers)} tickers)"
    )


@task(name="audit-leakage", task_run_name=_audit_run_name, cache_key_fn=audit_cache_key, persist_result=True)
def audit_fold_leakage(
    series: dict[str, pd.DataFrame],
    *,
    folds: dict[str, list[Fold]],
    config: FeatureConfig,
    covariates: list[CovariateSeries] | None = None,
    covariate_config: CovariateConfig | None = None,
    calendars: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Leakage audit of every fold of a batch of tickers (backtest/audit.py); a failure stops the run before any
    result.

    `series` holds each ticker's feature frame: its price, volume and date columns are the raw data the audit
    recomputes the indicators from, its feature columns what the models saw (with covariates: their columns too,
    recomputed from the `covariates` closes known at each cutoff).
    """
    parts = [
        audit_leakage(
            frame,
            {uid: frame},
            {uid: folds[uid]},
            config,
            covariates=covariates or (),
            covariate_config=covariate_config,
            calendars=calendars,
        ).to_dict()
        for uid, frame in series.items()
    ]
    audit = AuditResult.merge(parts)
    if not audit.passed:
        raise LeakageError(f"leakage audit {audit.summary()}")
    return audit.to_dict()


@task(name="plan-folds")
def plan_folds(panel: pd.DataFrame, plan: FoldPlan) -> dict[str, list[Fold]]:
    """One fold plan per ticker, shared by every model."""
    return panel_folds(panel, plan)


@task(name="plan-calibration")
def plan_calibration(
    panel: pd.DataFrame, folds: dict[str, list[Fold]], plan: FoldPlan, windows: int
) -> dict[str, list[Fold]]:
    """Each ticker's calibration origins before its first fold (conformal intervals), shared by every model."""
    return panel_calibration_folds(panel, folds, plan, windows=windows)


def price_unit_key(unit: PriceUnit, series: pd.DataFrame) -> str:
    """A price unit's cache key: the unit (model config, folds, resolved refit policy, horizon, calendar), its data
    slice and the code version (tasks.fingerprint.unit_key)."""
    # None-valued extras are left out of the key, so units without conformal bands keep their cached results.
    calibration = folds_key(unit.calibration_folds) if unit.calibration_folds else None
    return unit_key(
        "unit",
        unit,
        series,
        horizon=unit.horizon,
        calendar=unit.calendar,
        calibration=calibration,
        conformal_window=unit.conformal_window,
    )


def price_batch_key(context: Any, parameters: dict[str, Any]) -> str:
    return batch_cache_key("units", price_unit_key, parameters)


@task(
    name="backtest-units",
    task_run_name=batch_run_name,
    cache_key_fn=price_batch_key,
    persist_result=True,
    retries=1,  # model failures are already recorded per fold; a retry covers crashes of the worker itself
    retry_condition_fn=retry_crashes,  # never retry pricecast's own errors (leakage, bad config): deterministic
)
def run_units(
    units: list[PriceUnit],
    series: dict[str, pd.DataFrame],
    unit_timeout_seconds: float | None = None,
    refresh: bool = False,
) -> list[UnitResult]:
    """Backtest a batch of (ticker, model) units, each cached, timed out and recorded alone (tasks.batches); a global
    model's units are one panel unit (backtest.panel)."""
    return run_batch(
        units,
        series,
        run=backtest_units.run_unit,
        run_panel=run_panel_unit,
        key=price_unit_key,
        storage=results_dir(),
        unit_timeout_seconds=unit_timeout_seconds,
        refresh=refresh,
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


@task(name="publish-artifacts")
def publish_artifacts(result: BacktestResult, evaluation: Evaluation, report: Path, quality: pd.DataFrame) -> str:
    """Markdown summary, leaderboard table (stable key: history across scheduled runs), the diagnosis of covariate
    and tuning variants (when the run had them) and the report's http link (or, without a report server, where the
    report is and how to serve it).

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
    from reports.diagnosis import diagnosis_markdown, has_diagnosis  # here: this brief owns only this function

    if has_diagnosis(evaluation.diagnosis):  # only runs with covariate or tuning variants
        create_markdown_artifact(
            markdown=diagnosis_markdown(evaluation.diagnosis, leaderboard=evaluation.leaderboard),
            key="backtest-diagnosis",
            description="Did covariates or tuning help? Each variant against its plain model and naive",
        )
    publish_report_link(report, key="backtest-report", title="HTML report", description="The run's HTML report")
    return verdict(evaluation.leaderboard, evaluation.dm, mcs=evaluation.mcs, spa=evaluation.spa)


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
