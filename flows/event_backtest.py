"""event_backtest_flow: "will the close rise >= x% within h sessions?" classifiers against the base rate.

Composition only: ingest -> labels + causal features per ticker -> fold plan on labelled sessions -> one cached
task per (ticker, model) -> score (metrics, reliability, ROC/PR, DM vs base rate) -> outputs + report -> live
step (each model fitted on every labelled session, P(event) at each ticker's latest session; backtest/event_live.py)
-> results store (the run and its probabilities, keyed by the flow-run id) -> artifacts. The design (origins,
leakage guard, thresholds) is documented in backtest/event_task.py.

`origins_per_fold` (default: `step`) is the FoldPlan's horizon: the number of test origins per fold; with
origins_per_fold == step every labelled session of the test span is scored exactly once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, unmapped
from pydantic import Field

from backtest.event_task import check_event_params, model_specs
from backtest.folds import FoldPlan
from common.settings import store_path
from flows import enable_package_logs
from flows.runners import task_runner
from ingest.spec import SourceSpec
from tasks.event_backtest import (
    build_event_data,
    collect_event_units,
    event_failures,
    event_run_meta,
    plan_event_folds,
    predict_live_events,
    publish_event_artifacts,
    publish_event_probabilities,
    run_event_unit,
    score_events,
    store_event_backtest,
    write_event_outputs,
)
from tasks.ingest import ingest_prices, publish_quality
from tasks.results_store import results_dir
from tasks.units import run_out_dir, run_outcome

EVENT_DEFAULT_MODELS = ["base_rate", "logistic", "lstm_event"]


@flow(name="event-backtest", task_runner=task_runner(), validate_parameters=True)
def event_backtest_flow(
    tickers: list[str] | None = None,
    models: list[str] = EVENT_DEFAULT_MODELS,  # noqa: B006 - Prefect parameters are copied per run
    threshold: Annotated[float, Field(gt=-1.0)] = 0.05,
    horizon: Annotated[int, Field(gt=0)] = 10,
    windows: Annotated[int, Field(gt=0)] = 50,
    step: Annotated[int, Field(gt=0)] = 5,
    origins_per_fold: Annotated[int, Field(gt=0)] | None = None,  # None: step (origins tile the test span)
    refit_every: Annotated[int, Field(ge=0)] | None = None,  # None: each model's default policy
    window_type: Literal["expanding", "sliding"] = "expanding",
    train_size: Annotated[int, Field(gt=0)] | None = None,
    tail_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2,
    source: Literal["sample", "csv", "parquet", "yfinance", "fdr"] = "sample",
    path: str | None = None,
    start: date | None = None,  # None: all the history (the sample: from SAMPLE_START)
    end: date | None = None,
    target: Literal["auto", "adj_close", "close"] = "auto",
    model_params: dict[str, dict[str, Any]] | None = None,
    out_dir: str | None = None,
    refresh_cache: bool = False,
    calendars: dict[str, str] | None = None,  # trading calendar per ticker, "*" = all (SourceSpec.calendars)
) -> dict[str, Any]:
    """Backtest event classifiers on `tickers`; write predictions, metrics, leaderboard and report.html to out_dir;
    store the run and today's P(event) per (ticker, model) (artifact `event-probabilities`).

    Returns (as the state's data) {out_dir, report, leaderboard, verdict, failures, flow_run_id, quality}.
    """
    enable_package_logs()
    log = get_run_logger()
    started = datetime.now(UTC)
    check_event_params(threshold=threshold, horizon=horizon, tail_fraction=tail_fraction)
    specs = model_specs({name: (model_params or {}).get(name, {}) for name in models})  # base_rate first
    spec = SourceSpec.for_run(
        source=source,
        path=path,
        tickers=tickers,
        start=start,
        end=end,
        target=target,
        calendars=calendars,
    )
    plan = FoldPlan(
        horizon=origins_per_fold or step, step=step, windows=windows, window_type=window_type, train_size=train_size
    )
    out = run_out_dir(out_dir)
    panel, quality = ingest_prices(spec, str(store_path()))
    publish_quality(quality)
    frames, columns = build_event_data(panel, threshold, horizon)
    folds = plan_event_folds(frames, plan, horizon)
    units = [(uid, name) for uid in sorted(frames) for name in specs]
    unit = run_event_unit.with_options(result_storage=results_dir(), refresh_cache=refresh_cache or None)
    futures = unit.map(
        series=[frames[uid] for uid, _ in units],
        uid=[uid for uid, _ in units],
        model=[name for _, name in units],
        params=[specs[name] for _, name in units],
        folds=[folds[uid] for uid, _ in units],
        horizon=unmapped(horizon),
        columns=unmapped(columns),
        refit_every=unmapped(refit_every),
        tail_fraction=unmapped(tail_fraction),
    )
    results = collect_event_units(futures, units, folds)
    meta = event_run_meta(
        spec=spec,
        plan=plan,
        panel=panel,
        frames=frames,
        columns=columns,
        threshold=threshold,
        horizon=horizon,
        models=specs,
        refit_every=refit_every,
        tail_fraction=tail_fraction,
        started=started,
    )
    result, evaluation = score_events(results, meta)
    report = write_event_outputs(result, evaluation, str(out))
    live = predict_live_events(
        frames, specs, threshold=threshold, horizon=horizon, columns=columns, tail_fraction=tail_fraction
    )
    store_event_backtest(result, evaluation, live.probabilities, str(store_path()), str(meta["flow_run_id"]))
    verdict = publish_event_artifacts(result, evaluation, report)
    publish_event_probabilities(live.probabilities, result.meta)
    failures = event_failures(result, live)
    summary = {
        "out_dir": str(out),
        "report": str(report),
        "leaderboard": str(out / "leaderboard.csv"),
        "verdict": verdict,
        "failures": len(failures),
        "flow_run_id": meta["flow_run_id"],
        "quality": quality.to_dict(),  # the CLI prints its summary, as `ingest` does
    }
    log.info("event report: %s", report)
    return run_outcome(failures, len(units), report, summary, done="event units backtested")
