"""forecast_flow: fit every model on each ticker's full history and forecast the next trading sessions.

Composition only: ingest -> features per ticker -> one task per (ticker, model) -> results store -> table
artifact `live-forecast` -> score earlier live forecasts against the prices just ingested. A failing unit
is recorded (logged, listed in the artifact and the final message) and the others carry on; the run ends
Failed naming the failed units, Completed when every unit forecast.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger, unmapped
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from common.schema import CHAMPION, ID, MODEL
from common.settings import store_path
from features.build import FeatureConfig
from flows import enable_package_logs
from flows.params import ForecastParams
from flows.runners import task_runner
from tasks.backtest import build_ticker_features
from tasks.forecast import FIT_PATH, collect_forecasts, forecast_panel, forecast_unit, publish_forecast, split_global
from tasks.ingest import ingest_prices, publish_quality
from tasks.monitor import monitor_live
from tasks.results_store import resolve_champions, score_live, store_live_forecast


@flow(name="forecast", task_runner=task_runner(), validate_parameters=True)
def forecast_flow(params: ForecastParams = ForecastParams()) -> State:  # noqa: B008 - frozen, validated once
    """Forecast the next `horizon` sessions of every ticker with every model (plus `ensemble`); store and show them.

    The model name `champion` is each ticker's stored champion (chosen by the weekly backtest; naive without one),
    stored as `champion` with the model it ran in `resolved_model`. A model's fit from an earlier run is updated
    with the new sessions instead of refitted while at most `max_update_sessions` came after it.
    """
    enable_package_logs()
    log = get_run_logger()
    models, horizon = params.models, params.horizon
    spec = params.run_source
    store_file = str(store_path())
    panel, quality = ingest_prices(spec, store_file)
    publish_quality(quality)
    features = build_ticker_features(panel, FeatureConfig())
    targets = {uid: (quality.tickers[uid].target if uid in quality.tickers else None) or "close" for uid in features}
    calendars = {uid: quality.tickers[uid].calendar if uid in quality.tickers else None for uid in features}
    every = [(uid, name) for uid in sorted(features) for name in models]
    champions = resolve_champions(store_file, sorted(features)) if CHAMPION in models else {}
    runs = {  # what each (ticker, name) runs: the champion's stored model and parameters, else the name's
        (uid, name): (champions[uid]["model"], champions[uid]["params"])
        if name == CHAMPION
        else (name, params.params_for(name))
        for uid, name in every
    }
    # A global model (backtest.panel) is fitted once across the tickers that run it, not once per ticker.
    units, panels = split_global(every, runs)
    panel_futures = [
        (
            forecast_panel.submit(
                {uid: features[uid] for uid in stored_as},
                model=model,
                stored_as=stored_as,
                params=json.loads(config),
                horizon=horizon,
                source=spec.source,
                targets={uid: targets[uid] for uid in stored_as},
                calendars={uid: calendars[uid] for uid in stored_as},
            ),
            stored_as,
        )
        for (model, config), stored_as in panels.items()
    ]
    futures = forecast_unit.map(
        series=[features[uid] for uid, _ in units],
        uid=[uid for uid, _ in units],
        model=[name for _, name in units],
        params=[runs[unit][1] for unit in units],
        resolved=[runs[unit][0] if unit[1] == CHAMPION else None for unit in units],
        horizon=unmapped(horizon),
        source=unmapped(spec.source),
        target=[targets[uid] for uid, _ in units],
        max_update_sessions=unmapped(params.max_update_sessions),
        calendar=[calendars[uid] for uid, _ in units],
    )
    table, failures = collect_forecasts(futures, units, panel_futures)
    run_id = str(flow_run.id)
    stored = store_live_forecast(table, store_file, run_id) if len(table) else 0
    publish_forecast(table, failures)
    scored = score_live(store_file)
    monitor = monitor_live(store_file)
    summary = {"flow_run_id": run_id, "rows": int(stored), "failures": len(failures), "scored": int(scored)}
    summary["monitor"] = monitor
    summary["quality"] = quality.to_dict()  # the CLI prints its summary, as `ingest` does
    summary["champions"] = {uid: c["model"] for uid, c in champions.items()}
    summary["fits"] = {f"{r[MODEL]} on {r[ID]}": r[FIT_PATH] for r in table.to_dict("records")} if len(table) else {}
    log.info("stored %d forecast rows; scored %d earlier forecast rows", stored, scored)
    if len(failures):
        what = ", ".join(f"{r[MODEL]} on {r[ID]} ({r['error_type']})" for r in failures.to_dict("records"))
        return Failed(message=f"{len(failures)} of {len(every)} forecast units failed: {what}", data=summary)
    breached = f"; live breach: {len(monitor['breaches'])} (ticker, model) pairs" if monitor["breaches"] else ""
    return Completed(message=f"{len(every)} forecasts of {horizon} sessions stored{breached}", data=summary)
