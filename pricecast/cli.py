"""The `pricecast` console command: one function per command, each turning its options into typed parameters
(pricecast.options), running a flow or a store query, and printing the outcome (pricecast.console)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from common.errors import PricecastError
from pricecast.console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_PARTIAL,
    configure,
    err,
    exit_if_partial,
    guarded,
    leaderboard_view,
    out,
    outcome_of,
    print_frame,
    print_quality,
    progress_bars,
    run_flow,
    start_server_early,
)
from pricecast.options import (
    CalendarOpt,
    ColumnsOpt,
    EndOpt,
    GapOpt,
    MaxFillOpt,
    PathOpt,
    SourceOpt,
    SpikesOpt,
    StartOpt,
    TargetOpt,
    TickersOpt,
    build_params,
    default_of,
    out_dir_option,
    source_spec,
)

if TYPE_CHECKING:
    from flows.params import EventBacktestParams
    from store.results_store import ResultStore

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_PARTIAL", "app"]

app = typer.Typer(
    help="pricecast: forecasting pipeline for daily market prices (ingest, backtest, forecast, report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


FLOW_COMMANDS = ("backtest", "forecast", "serve")  # commands that report runs to a Prefect API


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs instead of bars")] = False,
) -> None:
    """Forecast daily market prices and backtest every model on identical rolling-origin folds."""
    configure(debug=debug, verbose=verbose)
    if ctx.invoked_subcommand in FLOW_COMMANDS:
        start_server_early()  # the background server boots while the command imports its flow


@app.command("models")
@guarded
def models_cmd() -> None:
    """List the registered models, one line each on what the model is, which variants it runs as (+cov with
    --covariates, +tuned with --tune) and its prediction intervals (its own, or split-conformal when it has none;
    --intervals conformal makes them conformal for every model)."""
    from models import EVENT_REGISTRY, REGISTRY, model_class

    table = Table(header_style="bold")
    table.add_column("model")
    table.add_column("family")
    table.add_column("variants")
    table.add_column("intervals")
    table.add_column("what it is")
    for name, spec in REGISTRY.items():
        cls = model_class(name)
        variants = " ".join(v for v, ok in (("+cov", cls.exog_param), ("+tuned", cls.search_space)) if ok)
        table.add_row(name, spec.family, variants, "own" if cls.supports_intervals else "conformal", spec.summary)
    for name, spec in EVENT_REGISTRY.items():
        table.add_row(name, "event (--task event)", "", "", spec.summary)
    out.print(table)


@app.command("ingest")
@guarded
def ingest_cmd(
    source: SourceOpt = "sample",
    path: PathOpt = None,
    tickers: TickersOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    target: TargetOpt = "auto",
    gap_policy: GapOpt = "ffill",
    max_ffill: MaxFillOpt = 3,
    spikes: SpikesOpt = "error",
    columns: ColumnsOpt = None,
    calendar: CalendarOpt = None,
) -> None:
    """Ingest prices into the local store (incremental for live sources) and print the data-quality summary."""
    from common.settings import store_path
    from ingest.load import load_panel
    from ingest.price_store import PriceStore

    spec = source_spec(
        source,
        path,
        tickers,
        start,
        end,
        target,
        gap_policy,
        max_ffill,
        spikes=spikes,
        columns=columns,
        calendars=calendar,
    )
    panel, quality = load_panel(spec, store=PriceStore(store_path()))
    _print_panel_summary(panel, quality)
    out.print(f"stored in {store_path()}")


def _bt(field: str) -> object:
    from flows.params import BacktestParams

    return default_of(BacktestParams, field)


def _ev(field: str) -> object:
    from flows.params import EventBacktestParams

    return default_of(EventBacktestParams, field)


@app.command("backtest")
@guarded
def backtest_cmd(
    source: SourceOpt = "sample",
    path: PathOpt = None,
    tickers: TickersOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    target: TargetOpt = "auto",
    models: Annotated[str, typer.Option(help="Comma list of registered models, 'default' or 'all'")] = "default",
    horizon: Annotated[
        int | None, typer.Option(help=f"Forecast horizon in sessions (default: {_bt('horizon')})")
    ] = None,
    windows: Annotated[
        int | None,
        typer.Option(
            help=f"Rolling origins (folds) per series (default: {_bt('windows')}; event task: {_ev('windows')})"
        ),
    ] = None,
    step: Annotated[
        int | None, typer.Option(help=f"Sessions between consecutive origins (default: {_bt('step')})")
    ] = None,
    refit_every: Annotated[
        int | None,
        typer.Option(help="Refit every k-th fold (1 = every fold, 0 = once); default: per model"),
    ] = None,
    window_type: Annotated[str, typer.Option(help="expanding | sliding")] = "expanding",
    train_size: Annotated[int | None, typer.Option(help="Sliding window length in sessions")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory (default: PRICECAST_HOME/runs/<run>)")] = None,
    unit_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds one (ticker, model) unit may run before it is stopped and recorded as failed; a global "
            f"model's one unit over every ticker gets this times the tickers (default: {_bt('unit_timeout_seconds')})"
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Tickers per Prefect task, per model (default: one unit per task up to 8 tickers, else a quarter "
            "of the tickers; each unit is still cached and timed out alone)"
        ),
    ] = None,
    covariates: Annotated[
        str | None,
        typer.Option(
            help="Comma list of tickers used as inputs, not forecast (^GSPC,CL=F,DX-Y.NYB), aligned as of each "
            "target's close; models that take exogenous inputs also run as <model>+cov"
        ),
    ] = None,
    covariate_lags: Annotated[
        str | None, typer.Option(help="Extra lags of every covariate column, e.g. 1,2 (lag 0 is always used)")
    ] = None,
    tune: Annotated[
        int | None,
        typer.Option(
            help="Trials of hyperparameter search (Optuna TPE) per model at each refit, on the tail of the "
            "training window; tunable models also run as <model>+tuned"
        ),
    ] = None,
    tune_seed: Annotated[int, typer.Option(help="Seed of the tuner: the same seed, the same choices")] = 0,
    intervals: Annotated[
        str,
        typer.Option(
            help="native: each model's own prediction intervals, split-conformal for models without (the "
            "ensemble) | conformal: split-conformal intervals for every model"
        ),
    ] = "native",
    calibration_windows: Annotated[
        int | None,
        typer.Option(
            help="Origins before the first fold forecast only to calibrate conformal intervals "
            f"(default: {_bt('calibration_windows')})"
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="price: forecast the price path | event: will the close rise >= --threshold?")
    ] = "price",
    threshold: Annotated[
        float | None, typer.Option(help=f"Event task: the rise, as a fraction (default: {_ev('threshold')})")
    ] = None,
    lookahead: Annotated[
        int | None, typer.Option(help=f"Event task: sessions the rise may take (default: {_ev('lookahead')})")
    ] = None,
    gap_policy: GapOpt = "ffill",
    max_ffill: MaxFillOpt = 3,
    spikes: SpikesOpt = "error",
    columns: ColumnsOpt = None,
    calendar: CalendarOpt = None,
) -> None:
    """Backtest models on identical rolling-origin folds; writes parquet/CSV tables and report.html.

    --task event backtests classifiers of "the close rises >= --threshold within --lookahead sessions" (event
    models: see `pricecast models`); each fold scores --step origins.
    """
    from flows.params import BacktestParams, EventBacktestParams
    from ingest.sources.sample import sample_start_note

    if task not in ("price", "event"):
        raise PricecastError(f"--task must be 'price' or 'event', got {task!r}")
    spec = source_spec(
        source,
        path,
        tickers,
        start,
        end,
        target,
        gap_policy,
        max_ffill,
        spikes=spikes,
        columns=columns,
        calendars=calendar,
    )
    out_path = out_dir_option(out)
    shared = dict(
        source=spec,
        models=models,
        windows=windows,
        step=step,
        refit_every=refit_every,
        window_type=window_type,
        train_size=train_size,
        unit_timeout_seconds=unit_timeout,
        batch_size=batch_size,
        out_dir=str(out_path) if out_path else None,
    )
    if task == "event":
        if covariates or covariate_lags or tune is not None or intervals != "native" or calibration_windows:
            raise PricecastError(
                "--covariates, --covariate-lags, --tune, --intervals and --calibration-windows are the price "
                "task's; drop --task event"
            )
        if horizon is not None:
            raise PricecastError("--horizon is the price task's; the event task's sessions are --lookahead")
        _event_backtest(build_params(EventBacktestParams, **shared, threshold=threshold, lookahead=lookahead))
    else:
        if threshold is not None or lookahead is not None:
            raise PricecastError("--threshold and --lookahead are the event task's; add --task event")
        variants = {
            "covariates": covariates or [],
            "covariate_lags": _int_list("--covariate-lags", covariate_lags),
            "tune": tune,
            "tune_seed": tune_seed,
            "intervals": intervals,
            "calibration_windows": calibration_windows,
        }
        params = build_params(BacktestParams, **shared, horizon=horizon, **variants)
        from flows.backtest import backtest_flow

        with progress_bars("starting the backtest flow (Prefect, ingest, features)"):
            state = run_flow(backtest_flow, params=params, return_state=True)
        outcome = outcome_of(state)
        print_quality(outcome.get("quality"), note=sample_start_note(spec.source, spec.start))
        _print_backtest(outcome)
        exit_if_partial(state)


def _int_list(option: str, value: str | None) -> list[int]:
    """'1,2' -> [1, 2]; anything that is not a comma list of integers is one error line naming the option."""
    if not value:
        return []
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise PricecastError(f"{option} must be a comma list of integers such as 1,2, got {value!r}") from None


def _event_backtest(params: EventBacktestParams) -> None:
    """`pricecast backtest --task event`: the event flow, its leaderboard, verdict and report path."""
    import pandas as pd

    from flows.event_backtest import event_backtest_flow
    from ingest.sources.sample import sample_start_note

    with progress_bars("starting the event backtest flow (Prefect, ingest, features)"):
        state = run_flow(event_backtest_flow, params=params, return_state=True)
    outcome = outcome_of(state)
    print_quality(outcome.get("quality"), note=sample_start_note(params.source.source, params.source.start))
    board = pd.read_csv(outcome["leaderboard"])
    cols = ["model", "brier", "brier_skill", "roc_auc", "pr_auc", "log_loss", "f1", "mean_rank", "p_less"]
    print_frame(board[[c for c in [*cols, "beats_base_rate"] if c in board.columns]], title="Event leaderboard")
    if outcome.get("verdict"):
        out.print(outcome["verdict"], highlight=False)
    out.print(f"report: {outcome['report']}", highlight=False)
    exit_if_partial(state)


def _print_backtest(outcome: dict) -> None:
    import pandas as pd

    out_dir = Path(outcome["out_dir"])
    board = pd.read_csv(out_dir / "leaderboard.csv")
    view, note = leaderboard_view(board, width=out.width)
    print_frame(view, title="Leaderboard (mean over series, by MASE)")
    if note:
        out.print(note, style="dim", highlight=False)
    verdict = outcome.get("verdict")
    if verdict:
        out.print(verdict, highlight=False)
    if (out_dir / "diagnosis.csv").exists():  # a run with --covariates / --tune: did they help?
        from reports.diagnosis import TITLE, diagnosis_sentences

        diagnosis = pd.read_csv(out_dir / "diagnosis.csv")
        out.print(f"{TITLE}", style="bold", highlight=False)
        for sentence in diagnosis_sentences(diagnosis, naive_ran="naive" in set(board["model"])):
            out.print(f"  {sentence}", highlight=False)
    out.print(f"report: {outcome['report']}", highlight=False)


def _print_panel_summary(panel, quality) -> None:
    from common.schema import DS, ID, Y

    summary = (
        panel.groupby(ID, sort=True)
        .agg(sessions=(DS, "size"), first=(DS, "min"), last=(DS, "max"), last_y=(Y, "last"))
        .reset_index()
    )
    summary["first"] = summary["first"].dt.date.astype(str)
    summary["last"] = summary["last"].dt.date.astype(str)
    print_frame(summary, title="Panel")
    print_quality(quality)


@app.command("forecast")
@guarded
def forecast_cmd(
    source: SourceOpt = "sample",
    path: PathOpt = None,
    tickers: TickersOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    target: TargetOpt = "auto",
    models: Annotated[str, typer.Option(help="Comma list of registered models or 'default'")] = "default",
    horizon: Annotated[int | None, typer.Option(help="Trading sessions to forecast (default: 5)")] = None,
    gap_policy: GapOpt = "ffill",
    max_ffill: MaxFillOpt = 3,
    spikes: SpikesOpt = "error",
    columns: ColumnsOpt = None,
    calendar: CalendarOpt = None,
) -> None:
    """Forecast the next sessions with every model plus the ensemble; stored for the live track record."""
    from common.settings import store_path
    from flows.forecast import forecast_flow
    from flows.params import ForecastParams
    from ingest.sources.sample import sample_start_note
    from store.results_store import ResultStore

    spec = source_spec(
        source,
        path,
        tickers,
        start,
        end,
        target,
        gap_policy,
        max_ffill,
        spikes=spikes,
        columns=columns,
        calendars=calendar,
    )
    params = build_params(ForecastParams, source=spec, models=models, horizon=horizon)
    with progress_bars("starting the forecast flow (Prefect, ingest, features)"):
        state = run_flow(forecast_flow, params=params, return_state=True)
    outcome = outcome_of(state)
    print_quality(outcome.get("quality"), note=sample_start_note(spec.source, spec.start))
    table = ResultStore(store_path()).live_forecasts(outcome["flow_run_id"])
    if len(table):
        table = table.assign(as_of=table["as_of"].dt.date.astype(str), ds=table["ds"].dt.date.astype(str))
        cols = ["unique_id", "model", "as_of", "ds", "h", "yhat", "yhat_lo_95", "yhat_hi_95"]
        print_frame(table[cols], title="Live forecast", floatfmt="{:.6g}")
    out.print(f"stored in {store_path()} (run {outcome['flow_run_id']})", highlight=False)
    exit_if_partial(state)


@app.command("report")
@guarded
def report_cmd(
    run: Annotated[
        str | None,
        typer.Argument(help="A stored run's flow-run id (or a unique prefix), 'latest', or a run directory"),
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Where to write (default: the run directory, or runs/report-<run id>)")
    ] = None,
    list_runs: Annotated[
        bool, typer.Option("--list", help="List the stored backtest runs (price and event task) and exit")
    ] = False,
) -> None:
    """Re-render a past backtest's report (HTML, tables, CSVs) from the results store or from a run directory.

    Stored event runs (`backtest --task event`, the daily-event deployment) re-render to the event report.
    """
    from backtest.evaluate import evaluate
    from common.settings import runs_dir, store_path
    from outputs.read import run_from_directory, run_from_store
    from outputs.write import save_run
    from reports.verdict import verdict
    from store.results_store import ResultStore

    out_path = out_dir_option(out_dir)
    store = ResultStore(store_path())
    if list_runs:
        _print_runs(store)
        return
    if run and Path(run).is_dir():
        result, quality = run_from_directory(Path(run))
        target = out_path or Path(run)
    else:
        task, run_id = store.resolve_task_run(run)
        target = out_path or runs_dir() / f"report-{run_id}"
        if task == "event":
            _event_report_from_store(store, run_id, Path(target).expanduser().resolve())
            return
        result, quality = run_from_store(store, run_id)
    evaluation = evaluate(result)
    report = save_run(result, evaluation, quality, Path(target).expanduser().resolve())
    out.print(verdict(evaluation.leaderboard, evaluation.dm, mcs=evaluation.mcs, spa=evaluation.spa), highlight=False)
    out.print(f"report: {report}", highlight=False)


def _event_report_from_store(store: ResultStore, run_id: str, target: Path) -> None:
    """A stored event run re-scored and written as the flow wrote it (outputs.write.save_event_run)."""
    from backtest.event_task import evaluate_events
    from outputs.read import event_run_from_store
    from outputs.write import save_event_run
    from reports.event_report import event_verdict

    result, live = event_run_from_store(store, run_id)
    evaluation = evaluate_events(result)
    report = save_event_run(result, evaluation, target)
    if len(live):
        live = live.assign(as_of=live["as_of"].dt.date.astype(str))
        cols = ["unique_id", "model", "as_of", "h", "threshold", "p", "decision_threshold"]
        print_frame(live[cols], title="Event probabilities at the latest session")
    out.print(event_verdict(evaluation.leaderboard, evaluation.significance), highlight=False)
    out.print(f"report: {report}", highlight=False)


def _print_runs(store) -> None:
    runs = store.stored_runs()
    if runs.empty:
        out.print("no backtest runs stored yet; run `pricecast backtest`")
        return
    runs = runs.assign(created_at=runs["created_at"].astype(str).str[:16])
    cols = ["flow_run_id", "task", "created_at", "tickers", "models", "n_rows", "n_failures"]
    print_frame(runs[cols], title="Runs (price and event task)")


@app.command("history")
@guarded
def history_cmd(
    last: Annotated[int, typer.Option(help="How many past backtest leaderboards to show")] = 3,
) -> None:
    """Past backtest leaderboards, each ticker's champion and its changes, and each model's live-forecast record
    (MAE, MASE, hit rate of scored forecasts)."""
    from common.settings import store_path
    from store.results_store import ResultStore

    store = ResultStore(store_path())
    store.score_live()  # prices ingested since the last flow may score more forecasts
    boards = store.leaderboards(last=last)
    if boards.empty:
        out.print("no backtest runs stored yet; run `pricecast backtest`")
    for run_id, board in boards.groupby("flow_run_id", sort=False):
        wide = board.pivot(index=["position", "model"], columns="metric", values="value")
        wide = wide.reset_index().drop(columns="position")
        cols = ["model", "mase", "rmsse", "smape", "directional_accuracy", "coverage_95", "mean_rank"]
        created = str(board["created_at"].iloc[0])[:16]
        print_frame(wide[[c for c in cols if c in wide.columns]], title=f"Backtest {created} (run {run_id})")
    champions = store.champions(latest=True)
    if len(champions):
        champions = champions.assign(chosen=champions["created_at"].astype(str).str[:10])
        cols = ["unique_id", "model", "mase", "naive_mase", "p_value", "reason", "chosen"]
        print_frame(champions[cols], title="Champion per ticker (forecast_flow's `champion`)")
        changes = store.champion_history()
        changes = changes.loc[changes["model"].ne(changes["previous_model"])]  # a ticker's first champion too
        changes = changes.assign(
            run_date=changes["created_at"].astype(str).str[:10],
            change=changes["previous_model"].fillna("(none)").astype(str) + " -> " + changes["model"].astype(str),
        )
        print_frame(changes[["run_date", "unique_id", "change", "reason"]], title="Champion changes")
    record = store.live_record()
    if record.empty:
        out.print("no live forecasts stored yet; run `pricecast forecast`")
        return
    record = record.assign(last_as_of=record["last_as_of"].dt.date.astype(str))
    print_frame(record, title="Live forecast record (scored against prices ingested since)")


@app.command("serve")
@guarded
def serve_cmd(
    file: Annotated[
        Path | None, typer.Option("--file", help="The prefect.yaml to serve (default: the project's)")
    ] = None,
) -> None:
    """Serve every deployment of prefect.yaml from this process, one run at a time, until Ctrl-C.

    The one-process alternative to `prefect deploy` + a worker. Deployments are registered as `<name>-served`,
    so the ones `prefect deploy` made are never rewritten; Ctrl-C pauses only the served ones. Point
    PREFECT_API_URL at a running server (`prefect server start`) to see the runs in the UI.
    """
    from flows.serve import PREFECT_YAML, serve_all
    from pricecast.server import api_for_flows

    with api_for_flows():
        serve_all(path=file or PREFECT_YAML)


@app.command("reports")
@guarded
def reports_cmd(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default 4210; 0 picks a free one)")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Directory of run directories to serve (default PRICECAST_HOME/runs)")
    ] = None,
) -> None:
    """Serve the runs' HTML reports over http on 127.0.0.1 until Ctrl-C; while it runs, runs link to them in the UI.

    Browsers refuse file:// links from the Prefect UI; backtests started while this runs publish http links instead.
    """
    import signal

    from common.settings import runs_dir
    from reports.server import DEFAULT_PORT, start_report_server

    with start_report_server(directory or runs_dir(), port=DEFAULT_PORT if port is None else port) as server:
        out.print(f"serving {server.root} at {server.url} (Ctrl-C to stop)", highlight=False, soft_wrap=True)
        # `kill` stops it like Ctrl-C does, so the discovery file is removed on the way out.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            server.wait()
        except KeyboardInterrupt:
            out.print("stopped", highlight=False)
        finally:
            signal.signal(signal.SIGTERM, previous)


server_app = typer.Typer(
    help="The background Prefect server flow commands report to (PRICECAST_SERVER=temporary opts out).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")


@server_app.command("status")
@guarded
def server_status_cmd() -> None:
    """Where flow runs go: the managed server's URL, PID, uptime, health and UI link, or the explicit API."""
    _print_server(started=False)


@server_app.command("start")
@guarded
def server_start_cmd() -> None:
    """Start the background server now (flow commands start it on first use anyway) and wait until it is healthy."""
    from pricecast.server import begin, mode, wait_healthy

    if mode() == "temporary":
        raise PricecastError("PRICECAST_SERVER=temporary: flow commands use Prefect's temporary server; unset it")
    target = begin()
    if target is not None and target.managed:
        wait_healthy(target)
    _print_server(started=True)


@server_app.command("stop")
@guarded
def server_stop_cmd() -> None:
    """Stop the background server of PREFECT_HOME; says so when none runs (exit 0 either way)."""
    from pricecast.server import prefect_home, stop

    state = stop()
    if state is None:
        out.print(f"no background Prefect server runs for PREFECT_HOME={prefect_home()}", highlight=False)
        return
    out.print(f"stopped the Prefect server (pid {state.pid}, {state.ui_url})", highlight=False, soft_wrap=True)


def _print_server(*, started: bool) -> None:
    import time

    from pricecast import server

    explicit = server.explicit_api_url()
    if explicit:
        answer = server.health(explicit.rstrip("/"))
        line = f"PREFECT_API_URL={explicit} is set: flows report there and pricecast starts no server"
        out.print(line, highlight=False, soft_wrap=True)
        out.print(f"  health: {answer}", highlight=False, soft_wrap=True)
        return
    home = server.prefect_home()
    state = server.read_state(home)
    if state is None or not server.alive(state.pid):
        where = f"http://{server.HOST}:{server.port()}/api"
        if server.health(where) == "ok":
            out.print(f"a Prefect API not started by pricecast answers at {where}; flows report there", highlight=False)
            return
        note = "" if state is None else f" (stale record of pid {state.pid} ignored)"
        out.print(
            f"no background Prefect server runs for PREFECT_HOME={home}{note}; the next flow command starts one "
            "(or `pricecast server start`)",
            highlight=False,
            soft_wrap=True,
        )
        return
    uptime = int(time.time() - state.started_at)
    health = server.health(state.api_url)
    version = server.version(state.api_url) if health == "ok" else None
    rows = [
        ("status", ("started" if started else "running") if health == "ok" else f"starting or unhealthy: {health}"),
        ("api", state.api_url),
        ("ui", state.ui_url),
        ("pid", str(state.pid)),
        ("uptime", f"{uptime // 3600}h {uptime % 3600 // 60}m {uptime % 60}s"),
        ("prefect", version or "?"),
        ("home", str(home)),
        ("log", state.log),
    ]
    for key, value in rows:
        out.print(f"{key:<8}{value}", highlight=False, soft_wrap=True)


store_app = typer.Typer(help="The local DuckDB store (prices, live forecasts, backtest runs).", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("check")
def store_check_cmd(
    path: Annotated[
        Path | None,
        typer.Option(help="The store file (default: PRICECAST_STORE, else PRICECAST_HOME/pricecast.duckdb)"),
    ] = None,
) -> None:
    """Open the store read-only and read every table in full (DuckDB checks each block's checksum as it reads):
    row counts per table and the verdict; exit 0 healthy, 1 damaged (with the recovery step)."""
    code = _store_check(path)
    if code:
        raise typer.Exit(code)


@guarded
def _store_check(path: Path | None) -> int:
    """`pricecast store check`: the exit code (guarded turns a missing file into one line and exit 2)."""
    import pandas as pd

    from common.duckdb_io import check_file, damaged_error
    from common.errors import StoreDamagedError
    from common.settings import store_path

    target = Path(path).expanduser() if path else store_path()
    try:
        checks = check_file(target, label="store")
    except StoreDamagedError as exc:
        err.print(f"[bold red]damaged:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    frame = pd.DataFrame(
        {
            "table": [c.table for c in checks],
            "rows": [str(c.rows) if c.rows is not None else "unreadable" for c in checks],
            "status": [c.problem or "ok" for c in checks],
        }
    )
    print_frame(frame, title=f"Store {target}")
    problems = [f"table {c.table}: {c.problem}" for c in checks if c.problem]
    if problems:
        line = damaged_error(target, "store", "; ".join(problems), writing=False)
        err.print(f"[bold red]damaged:[/] {line}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    total = sum(c.rows or 0 for c in checks)
    out.print(f"healthy: {target} ({len(checks)} tables, {total} rows read in full)", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
