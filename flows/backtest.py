"""backtest_flow: every model on identical rolling-origin folds, scored against the naive random walk.

Composition only: ingest -> features per ticker -> fold plan -> leakage audit -> one cached task per (ticker, model) ->
gather, score, report -> results store -> artifacts. The maths lives in backtest/, models/ and features/.

Caching: a unit's key (tasks.backtest.unit_cache_key) covers the model config, its folds, the refit policy,
the data slice it reads and the code version; results persist under PRICECAST_HOME/results, so any run on
this machine (CLI, deployment, serve) reuses them. What "only what changed" means with the statsforecast
fold convention (the last fold ends at the last session): a ticker that gets one new session gets new
cutoffs for every fold, so all of its units rerun; units of tickers whose data did not change stay cached,
and so do finished units of a run that crashed or failed part-way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, unmapped
from pydantic import Field

from backtest.folds import FoldPlan
from common.settings import store_path
from features.build import FeatureConfig
from flows import enable_package_logs
from flows.runners import task_runner
from ingest.spec import SourceSpec
from models import REGISTRY, make_model
from tasks.backtest import (
    audit_fold_leakage,
    build_ticker_features,
    gather,
    plan_folds,
    publish_artifacts,
    run_unit,
    score,
    write_outputs,
)
from tasks.ingest import ingest_prices, publish_quality
from tasks.results_store import results_dir, store_backtest
from tasks.units import collect_units, merged_audit, run_meta, run_out_dir, run_outcome

DEFAULT_MODELS = ["naive", "drift", "moving_average", "ses", "holt", "ets", "arima", "prophet", "lstm", "ensemble"]


@flow(name="backtest", task_runner=task_runner(), validate_parameters=True)
def backtest_flow(
    tickers: list[str] | None = None,
    models: list[str] = DEFAULT_MODELS,  # noqa: B006 - Prefect parameters are copied per run
    horizon: Annotated[int, Field(gt=0)] = 5,
    windows: Annotated[int, Field(gt=0)] = 20,
    step: Annotated[int, Field(gt=0)] = 5,
    refit_every: Annotated[int, Field(ge=0)] | None = None,  # None: each model's measured default policy
    window_type: Literal["expanding", "sliding"] = "expanding",
    train_size: Annotated[int, Field(gt=0)] | None = None,
    source: Literal["sample", "csv", "parquet", "yfinance", "fdr"] = "sample",
    path: str | None = None,
    start: date | None = None,  # None: all the history (the sample: from SAMPLE_START)
    end: date | None = None,
    target: Literal["auto", "adj_close", "close"] = "auto",
    spikes: Literal["error", "repair"] = "error",
    columns: dict[str, str] | None = None,  # csv/parquet: schema column -> file column (SourceSpec.columns)
    calendars: dict[str, str] | None = None,  # trading calendar per ticker, "*" = all (SourceSpec.calendars)
    model_params: dict[str, dict[str, Any]] | None = None,
    out_dir: str | None = None,
    refresh_cache: bool = False,
    unit_timeout_seconds: Annotated[float, Field(gt=0)] | None = 3600.0,
) -> dict[str, Any]:
    """Backtest `models` on `tickers` and write forecasts, metrics, leaderboard and report.html to out_dir.

    Units already computed with the same data, folds, parameters and code are reused unless `refresh_cache`.
    A unit running longer than `unit_timeout_seconds` (a hung model) is stopped and recorded as failed.
    """
    enable_package_logs()
    log = get_run_logger()
    started = datetime.now(UTC)
    for name in models:
        if name not in REGISTRY:
            make_model(name)  # raises ConfigError naming the registered models, before any work
    spec = SourceSpec.for_run(
        source=source,
        path=path,
        tickers=tickers,
        start=start,
        end=end,
        target=target,
        spikes=spikes,
        columns=columns,
        calendars=calendars,
    )
    plan = FoldPlan(horizon=horizon, step=step, windows=windows, window_type=window_type, train_size=train_size)
    out = run_out_dir(out_dir)
    panel, quality = ingest_prices(spec, str(store_path()))
    publish_quality(quality)
    config = FeatureConfig()
    features = build_ticker_features(panel, config)
    folds = plan_folds(panel, plan)
    # Submitted, not called: the audits (one per ticker) run beside the units and are awaited before anything
    # is scored or shown.
    tickers = sorted(features)
    audits = audit_fold_leakage.with_options(result_storage=results_dir()).map(
        series=[features[uid] for uid in tickers],
        uid=tickers,
        folds=[folds[uid] for uid in tickers],
        config=unmapped(config),
    )
    params = {name: dict((model_params or {}).get(name, {})) for name in models}
    units = [(uid, name) for uid in sorted(features) for name in models]
    unit = run_unit.with_options(
        result_storage=results_dir(), refresh_cache=refresh_cache or None, timeout_seconds=unit_timeout_seconds
    )
    futures = unit.map(
        series=[features[uid] for uid, _ in units],
        uid=[uid for uid, _ in units],
        model=[name for _, name in units],
        params=[params[name] for _, name in units],
        folds=[folds[uid] for uid, _ in units],
        refit_every=unmapped(refit_every),
        horizon=unmapped(horizon),
        calendar=[quality.tickers[uid].calendar if uid in quality.tickers else None for uid, _ in units],
    )
    results = collect_units(futures, units, features, folds)
    audit = merged_audit(audits)  # a failed audit raises LeakageError here: nothing is scored, stored or reported
    meta = run_meta(
        spec=spec, plan=plan, refit_every=refit_every, models=params, panel=panel, started=started, audit=audit
    )
    result = gather(results, meta)
    evaluation = score.with_options(result_storage=results_dir())(result)
    quality_table = quality.to_frame()
    report = write_outputs(result, evaluation, quality_table, str(out))
    store_backtest(result, evaluation, quality_table, str(store_path()), str(meta["flow_run_id"]))
    verdict = publish_artifacts(result, evaluation, report, quality_table)
    summary = {
        "out_dir": str(out),
        "report": str(report),
        "verdict": verdict,
        "failures": len(result.failures),
        "flow_run_id": meta["flow_run_id"],
        "quality": quality.to_dict(),  # the CLI prints its summary, as `ingest` does
    }
    log.info("report: %s", report)
    return run_outcome(result.failures, len(units), report, summary, done="units backtested")
