"""event_backtest_flow: "will the close rise >= x% within h sessions?" classifiers against the base rate.

Composition only: ingest -> labels + causal features per ticker -> fold plan on labelled sessions -> one cached
task per (ticker, model) unit (backtest.units.plan_event_units) -> score (metrics, reliability, ROC/PR, DM vs base
rate) -> outputs + report -> live step (one task per unit, under the same unit timeout: the model fitted on every
labelled session, P(event) at the ticker's latest session; backtest/event_live.py) -> results store (the run and
its probabilities, keyed by the flow-run id) -> artifacts. The design (origins, leakage guard, thresholds) is
documented in backtest/event_task.py.

Two numbers of sessions, two names: `lookahead` is the event's "within h sessions"; `origins_per_fold` (default:
`step`) is how many test origins each fold scores, so with origins_per_fold == step every labelled session of the
test span is scored exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, unmapped
from prefect.states import State
from prefect.utilities.annotations import NotSet

from backtest.event_task import model_specs
from backtest.units import batch_units, plan_event_units
from common.settings import store_path
from flows import enable_package_logs
from flows.fanout import in_plan_order, run_outcome, wait_for_live, wait_for_units
from flows.params import EventBacktestParams
from flows.run_meta import event_run_meta, refit_policies, run_out_dir
from flows.runners import task_runner
from tasks.event_backtest import (
    PROGRESS_KEY,
    build_event_data,
    event_failures,
    plan_event_folds,
    predict_live_event,
    publish_event_artifacts,
    publish_event_probabilities,
    run_event_units,
    score_events,
    store_event_backtest,
    write_event_outputs,
)
from tasks.ingest import ingest_prices, publish_quality
from tasks.results_store import results_dir


@flow(name="event-backtest", task_runner=task_runner(), validate_parameters=True)
def event_backtest_flow(params: EventBacktestParams = EventBacktestParams()) -> State:  # noqa: B008 - frozen
    """Backtest event classifiers on `params.source`; write predictions, metrics, leaderboard and report.html to
    out_dir; store the run and today's P(event) per (ticker, model) (artifact `event-probabilities`).

    Returns the final state with {out_dir, report, leaderboard, verdict, failures, flow_run_id, quality} as data.
    """
    enable_package_logs()
    log = get_run_logger()
    started = datetime.now(UTC)
    specs = model_specs({name: params.model_params.get(name, {}) for name in params.models})  # base_rate first
    spec = params.run_source
    out = run_out_dir(params.out_dir)
    panel, quality = ingest_prices(spec, str(store_path()))
    publish_quality(quality)
    frames, columns = build_event_data(panel, params.threshold, params.lookahead)
    folds = plan_event_folds(frames, params.plan, params.lookahead)
    units = plan_event_units(
        sorted(frames),
        models=specs,
        folds=folds,
        lookahead=params.lookahead,
        columns=columns,
        refit_every=params.refit_every,
        tail_fraction=params.tail_fraction,
    )
    task = run_event_units.with_options(
        result_storage=results_dir(),
        refresh_cache=True if params.refresh_cache else NotSet,  # NotSet: the task's own (the setting)
    )
    batches = batch_units(units, batch_size=params.batch_size)  # one unit per task for a few tickers
    futures = task.map(
        units=[list(batch) for batch in batches],
        series=[{unit.uid: frames[unit.uid] for unit in batch} for batch in batches],
        unit_timeout_seconds=unmapped(params.unit_timeout_seconds),
        refresh=unmapped(params.refresh_cache),
    )
    done = wait_for_units(futures, batches, frames, stage="event", key=PROGRESS_KEY)
    results = in_plan_order(units, [unit for batch in batches for unit in batch], done)
    meta = event_run_meta(
        spec=spec,
        plan=params.plan,
        panel=panel,
        frames=frames,
        columns=columns,
        threshold=params.threshold,
        lookahead=params.lookahead,
        models=specs,
        refit_every=refit_policies(units),
        tail_fraction=params.tail_fraction,
        started=started,
    )
    result, evaluation = score_events(results, meta)
    report = write_event_outputs(result, evaluation, str(out))
    # The live step: each unit's model on every labelled session, one task per unit under the same timeout.
    live_task = predict_live_event.with_options(timeout_seconds=params.unit_timeout_seconds)
    live_futures = live_task.map(
        unit=units, series=[frames[unit.uid] for unit in units], threshold=unmapped(params.threshold)
    )
    live = wait_for_live(live_futures, units)
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
