"""Live forecast tasks: fit one model on one ticker's full history and forecast the next sessions (a global model:
once across every ticker that runs it); artifacts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.exceptions import MissingContextError
from prefect.futures import as_completed

from backtest.live_bands import live_conformal_bands
from backtest.panel import is_global, live_panel_forecasts
from backtest.units import native_intervals
from common import progress
from common.schema import AS_OF, DS, ERROR_TYPE, ID, INTERVAL_COLUMNS, MESSAGE, MODEL, RESOLVED_MODEL, YHAT, H
from reports.format import sig_round
from store.results_store import live_forecast_frame
from tasks.fitted import MAX_UPDATE_SESSIONS, fit_or_update, fits_dir
from tasks.retry_conditions import retry_crashes

FAILURE_COLUMNS = (ID, MODEL, ERROR_TYPE, MESSAGE)
FIT_PATH = "fit_path"  # a column of forecast_unit's frame (not stored): "fit", "refit" or "update"


@task(name="forecast-unit", task_run_name="{model} on {uid}", retries=1, retry_condition_fn=retry_crashes)
def forecast_unit(
    series: pd.DataFrame,
    *,
    uid: str,
    model: str,
    params: dict[str, Any],
    horizon: int,
    source: str,
    target: str,
    resolved: str | None = None,
    max_update_sessions: int = MAX_UPDATE_SESSIONS,
    calendar: str | None = None,
) -> pd.DataFrame:
    """Forecast the next `horizon` exchange sessions with `model` (run as `resolved` for the champion) on every
    session of `series`: its stored fit updated with the new sessions when it can be, else refitted and stored.

    Rows are stored under `model`, with `resolved_model` naming what a champion ran; `fit_path` says which path.
    """
    try:
        log = get_run_logger()
    except MissingContextError:  # called as .fn() outside a run
        log = logging.getLogger(__name__)
    fit = fit_or_update(
        series,
        model=resolved or model,
        params=params,
        root=fits_dir(),
        max_update_sessions=max_update_sessions,
        horizon=horizon,
        calendar=calendar,
    )
    log.info(fit.message)
    if fit.warning:
        log.warning(fit.warning)
    forecast = fit.model.predict(horizon)
    if not native_intervals(resolved or model):  # the ensemble: split-conformal bands from the latest origins
        forecast = live_conformal_bands(
            series, forecast, model=resolved or model, params=params, horizon=horizon, calendar=calendar
        )
    frame = live_forecast_frame(forecast, series, model=model, source=source, target=target)
    return frame.assign(**{RESOLVED_MODEL: resolved, FIT_PATH: fit.path})


def split_global(
    units: Sequence[tuple[str, str]], runs: Mapping[tuple[str, str], tuple[str, dict[str, Any]]]
) -> tuple[list[tuple[str, str]], dict[tuple[str, str], dict[str, list[str]]]]:
    """The (ticker, name) units fitted per ticker, and the global models' ones grouped into panels (`runs`: what each
    unit runs, (model, params)):
    {(model, params as JSON): {ticker: [names its rows are stored under]}} (a champion that is a global model
    joins the panel of the same model and parameters)."""
    local: list[tuple[str, str]] = []
    panels: dict[tuple[str, str], dict[str, list[str]]] = {}
    for uid, name in units:
        model, params = runs[(uid, name)]
        if is_global(model):
            panels.setdefault((model, json.dumps(params, sort_keys=True)), {}).setdefault(uid, []).append(name)
        else:
            local.append((uid, name))
    return local, panels


@task(name="forecast-panel", task_run_name="{model} across tickers", retries=1, retry_condition_fn=retry_crashes)
def forecast_panel(
    series: dict[str, pd.DataFrame],
    *,
    model: str,
    stored_as: dict[str, list[str]],
    params: dict[str, Any],
    horizon: int,
    source: str,
    targets: dict[str, str],
    calendars: dict[str, str | None],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A global model fitted ONCE on every ticker's full history (backtest.panel.live_panel_forecasts), each
    ticker's rows stored under the names in `stored_as`; returns (rows, failures). Always a fresh fit (no stored fit
    to update: the fit spans tickers)."""
    outcomes = live_panel_forecasts(series, model=model, params=params, horizon=horizon, calendars=calendars)
    frames, failures = [], []
    for uid, outcome in outcomes.items():
        for name in stored_as[uid]:
            if isinstance(outcome, Exception):
                failures.append({ID: uid, MODEL: name, ERROR_TYPE: type(outcome).__name__, MESSAGE: str(outcome)[:500]})
                continue
            frame = live_forecast_frame(outcome, series[uid], model=name, source=source, target=targets[uid])
            frames.append(frame.assign(**{RESOLVED_MODEL: model if name != model else None, FIT_PATH: "fit"}))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))


def collect_forecasts(
    futures: list, units: list[tuple[str, str]], panels: Sequence[tuple[Any, dict[str, list[str]]]] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wait for every forecast unit and panel (future, {ticker: names}); a failed one becomes rows of the failures
    table (a failed panel: one per ticker and name), the others are concatenated."""
    log = get_run_logger()
    index = {id(f): i for i, f in enumerate(futures)}
    frames, failures = [], []
    for done, future in enumerate(as_completed(futures), start=1):
        uid, model = units[index[id(future)]]
        progress.report("forecast", done, len(futures), f"{model} on {uid}")
        try:
            frames.append(future.result())
        except Exception as exc:  # recorded, the other units carry on
            log.error("forecast %s on %s failed: %s", model, uid, exc)
            failures.append({ID: uid, MODEL: model, ERROR_TYPE: type(exc).__name__, MESSAGE: str(exc)[:500]})
    for future, stored_as in panels:
        try:
            rows, failed = future.result()
        except Exception as exc:  # the panel fit failed: every ticker's forecast of it
            log.error("forecast panel failed: %s", exc)
            failures += [
                {ID: uid, MODEL: name, ERROR_TYPE: type(exc).__name__, MESSAGE: str(exc)[:500]}
                for uid, names in stored_as.items()
                for name in names
            ]
            continue
        frames.append(rows)
        failures += failed.to_dict("records")
    frames = [frame for frame in frames if len(frame)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(table):
        table = table.sort_values([ID, MODEL, H], kind="stable").reset_index(drop=True)
    return table, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))


@task(name="publish-forecast")
def publish_forecast(table: pd.DataFrame, failures: pd.DataFrame, *, key: str = "live-forecast") -> None:
    """The live forecast as a table artifact under a stable key (its history is the forecast log in the UI)."""
    cols = [ID, MODEL, AS_OF, DS, H, YHAT, *INTERVAL_COLUMNS]
    rows = [] if table.empty else table[cols].to_dict(orient="records")
    rows = [{k: sig_round(v, 6) for k, v in row.items()} for row in rows]
    rows += [{ID: r[ID], MODEL: r[MODEL], YHAT: None, "error": r["message"]} for r in failures.to_dict("records")]
    description = f"Next-session forecasts as of {table[AS_OF].max().date()}" if len(table) else "No forecasts"
    create_table_artifact(table=rows, key=key, description=description)
