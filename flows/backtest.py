"""backtest_flow: every model on identical rolling-origin folds, scored against the naive random walk.

Composition only: ingest -> features per ticker -> fold plan -> leakage audit -> (ticker, model) units
(backtest.units.plan_price_units: each with its resolved refit policy; an ensemble whose members are units of
the run is combined from their results, not fitted again), one task per unit for a few tickers or per batch of
tickers of one model for a wide universe (backtest.units.batch_units; tasks.batches keeps each unit cached, timed
out and recorded alone) -> gather, score, report -> results store -> artifacts.
The maths lives in backtest/, models/ and features/; a local run without Prefect is the same plan + run_unit calls
in a loop (backtest.engine.run_backtest).

Caching: a unit's key (tasks.backtest.price_unit_key) covers the model config, its folds, the refit policy,
the data slice it reads and the code version; results persist under PRICECAST_HOME/results, so any run on
this machine (CLI, deployment, serve) reuses them. What "only what changed" means with the statsforecast
fold convention (the last fold ends at the last session): a ticker that gets one new session gets new
cutoffs for every fold, so all of its units rerun; units of tickers whose data did not change stay cached,
and so do finished units of a run that crashed or failed part-way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, unmapped
from prefect.states import State
from prefect.utilities.annotations import NotSet

from backtest.panel import global_meta
from backtest.units import (
    batch_units,
    combine_units,
    combined_from,
    fitted_units,
    interval_meta,
    plan_price_units,
    tickers_per_batch,
)
from common.settings import store_path
from features.build import FeatureConfig
from features.covariates import CovariateSeries
from flows import enable_package_logs
from flows.fanout import merged_audit, run_outcome, wait_for_units
from flows.params import BacktestParams
from flows.run_meta import refit_policies, run_meta, run_out_dir
from flows.runners import task_runner
from models.variants import is_cov
from tasks.backtest import (
    align_covariates,
    audit_fold_leakage,
    build_ticker_features,
    gather,
    plan_calibration,
    plan_folds,
    publish_artifacts,
    run_units,
    score,
    split_covariate_panel,
    write_outputs,
)
from tasks.ingest import ingest_prices, publish_quality
from tasks.results_store import results_dir, store_backtest


@flow(name="backtest", task_runner=task_runner(), validate_parameters=True)
def backtest_flow(params: BacktestParams = BacktestParams()) -> State:  # noqa: B008 - frozen, validated once
    """Backtest `params.models` on `params.source` and write forecasts, metrics, leaderboard and report.html.

    Units already computed with the same data, folds, parameters and code are reused unless `refresh_cache`.
    A unit running longer than `unit_timeout_seconds` (a hung model) is stopped and recorded as failed.
    Returns the final state (Completed, or Failed naming the units with failures) with the run's summary.
    """
    enable_package_logs()
    log = get_run_logger()
    started = datetime.now(UTC)
    spec = params.ingest_source  # the tickers to forecast and the covariates, read and validated alike
    out = run_out_dir(params.out_dir)
    panel, quality = ingest_prices(spec, str(store_path()))
    covariate_config = params.covariate_config
    covariates: list[CovariateSeries] = []
    if covariate_config:
        panel, covariates = split_covariate_panel(panel, quality, covariate_config)
    config = FeatureConfig()
    features = build_ticker_features(panel, config)
    folds = plan_folds(panel, params.plan)
    calibration = plan_calibration(panel, folds, params.plan, params.calibration_windows)
    with_cov = features
    if covariate_config:  # the +cov variants read these frames; the plain models keep theirs (and their cache)
        with_cov, quality = align_covariates(features, covariates, quality, covariate_config, folds)
    publish_quality(quality)
    tickers = sorted(features)
    # Submitted, not called: the audits (one per batch of tickers) run beside the units and are awaited before
    # anything is scored or shown.
    size = tickers_per_batch(len(tickers), params.batch_size)
    groups = [tickers[i : i + size] for i in range(0, len(tickers), size)]
    audits = audit_fold_leakage.with_options(result_storage=results_dir()).map(
        series=[{uid: with_cov[uid] for uid in group} for group in groups],
        folds=[{uid: folds[uid] for uid in group} for group in groups],
        config=unmapped(config),
        covariates=unmapped(covariates or None),
        covariate_config=unmapped(covariate_config if covariate_config else None),
        calendars=unmapped({uid: q.calendar for uid, q in quality.tickers.items()}),
    )
    models = params.unit_models  # the plain models and their +cov / +tuned variants (models.variants)
    units = plan_price_units(
        tickers,
        models=models,
        folds=folds,
        horizon=params.horizon,
        refit_every=params.refit_every,
        calendars={uid: q.calendar for uid, q in quality.tickers.items()},
        intervals=params.intervals,
        calibration=calibration,
        conformal_window=params.conformal_window,
    )
    task = run_units.with_options(
        result_storage=results_dir(),
        refresh_cache=True if params.refresh_cache else NotSet,  # NotSet: the task's own (the setting)
    )
    # Ensembles whose members are units of this run are combined from their results, not fitted again. A wide
    # universe runs batches of tickers per model (backtest.units.batch_units), each unit still cached alone.
    fitted = fitted_units(units)
    batches = batch_units(fitted, batch_size=params.batch_size)
    futures = task.map(
        units=[list(batch) for batch in batches],
        series=[
            {unit.uid: (with_cov if is_cov(unit.model) else features)[unit.uid] for unit in batch} for batch in batches
        ],
        unit_timeout_seconds=unmapped(params.unit_timeout_seconds),
        refresh=unmapped(params.refresh_cache),
    )
    ran = [unit for batch in batches for unit in batch]  # wait_for_units returns results in this order
    results = combine_units(units, ran, wait_for_units(futures, batches, features))
    audit = merged_audit(audits)  # a failed audit raises LeakageError here: nothing is scored, stored or reported
    meta = (
        run_meta(
            spec=spec,
            plan=params.plan,
            refit_every=refit_policies(units),
            models=models,
            panel=panel,
            started=started,
            audit=audit,
        )
        | combined_from(units)
        | interval_meta(units, intervals=params.intervals, calibration_windows=params.calibration_windows)
        | global_meta(units)
        | params.variant_meta
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
