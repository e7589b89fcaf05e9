"""The `pricecast` console command: the CLI owns the terminal (rich tables, one-line errors, exit codes)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from common.errors import PricecastError

app = typer.Typer(
    help="pricecast: forecasting pipeline for daily market prices (ingest, backtest, forecast, report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (make run, CI logs) has no terminal width; 140 columns keep the leaderboard unwrapped.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
_state = {"debug": False, "verbose": False}

# Exit codes: 0 everything ran; 1 ran but some units failed, or the run failed; 2 bad input or configuration.
EXIT_PARTIAL = EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

SourceOpt = Annotated[str, typer.Option(help="sample | csv | parquet | yfinance | fdr")]
PathOpt = Annotated[Path | None, typer.Option(help="File or directory for csv/parquet sources")]
TickersOpt = Annotated[str | None, typer.Option(help="Comma-separated tickers (default: all the source has)")]
StartOpt = Annotated[
    str | None,
    typer.Option(
        help="First session to use, YYYY-MM-DD (default: all the history; a backtest or forecast of the sample "
        "starts at 2005-03-01)"
    ),
]
EndOpt = Annotated[str | None, typer.Option(help="Last session to use, YYYY-MM-DD")]
TargetOpt = Annotated[str, typer.Option(help="auto (adjusted close if present, else close) | adj_close | close")]
GapOpt = Annotated[str, typer.Option(help="NaN gaps in the target: ffill (at most --max-ffill sessions) | error")]
MaxFillOpt = Annotated[int, typer.Option(help="Longest NaN run to forward-fill, in sessions")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(help="csv/parquet: which file column is which, e.g. close=price,ticker=symbol,date=day"),
]
CalendarOpt = Annotated[
    str | None,
    typer.Option(
        "--calendar",
        help="Trading calendar: NAME for every ticker (XLON, XTKS, 24/7, ...) or TICKER=NAME,... "
        "(default: the stored choice, else the ticker's exchange suffix); kept per ticker in the store",
    ),
]
SpikesOpt = Annotated[
    str,
    typer.Option(help="Round-trip spikes (x3 jumps reverted within 20 sessions): error | repair (counted, warned)"),
]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs instead of bars")] = False,
) -> None:
    """Forecast daily market prices and backtest every model on identical rolling-origin folds."""
    _state["debug"], _state["verbose"] = debug, verbose or debug
    # Before prefect is imported: a busy 2-core machine needs longer than the default to start the
    # temporary API server, and this tool never phones home.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not _state["verbose"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users
    # TensorFlow prints its oneDNN notice straight to stderr on import, whatever TF_CPP_MIN_LOG_LEVEL says; off in
    # every CLI run (not only quiet ones), so --verbose never changes a number.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    _ensure_prefect_home()
    # The terminal shows warnings and errors (plus progress bars); Prefect's INFO run logs still reach the
    # API (the UI) through prefect's own handler, and --verbose brings them to the terminal too.
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    fmt = "%(levelname)s %(name)s: %(message)s"
    console.setFormatter(logging.Formatter(fmt) if debug else _NoTracebackFormatter(fmt))
    if not _state["verbose"]:
        console.addFilter(_QuietRunFailures())
    # Library warnings (pandas, statsmodels, prophet, ...) become log records: on the terminal with --verbose only.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if _state["verbose"] else logging.CRITICAL)
    # force: replace any handler set up before (prefect's console handler, when prefect was imported first);
    # prefect keeps a user's root handlers when it configures its logging later.
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[console], force=True)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one clear stderr line and exit code 2; tracebacks only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from click.exceptions import Abort, ClickException, Exit

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, Exit, ClickException, Abort):  # an exit code a command chose (partial): its last word
            raise
        except (PricecastError, ValueError, FileNotFoundError) as exc:
            if _state["debug"]:
                raise
            err.print(f"[bold red]error:[/] {_first_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except Exception as exc:  # a bug or an environment failure: still one line, the traceback on request
            if _state["debug"]:
                raise
            if _is_parameter_error(exc):  # Prefect's validation of flow parameters: bad input, the reason in full
                err.print(f"[bold red]error:[/] {_parameter_reason(exc)}", highlight=False, soft_wrap=True)
                raise typer.Exit(EXIT_BAD_INPUT) from None
            message = f"{type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)"
            err.print(f"[bold red]failed:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


_OPTIONS = {"unit_timeout_seconds": "--unit-timeout", "out_dir": "--out"}  # flow parameter -> CLI option


def _parameter_reason(exc: BaseException, parameters: dict[str, Any] | None = None) -> str:
    """Prefect's 'invalid parameters' message on one line, each as `--option VALUE: reason`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = []
    for line in lines[1:] or lines:
        field, sep, reason = line.removeprefix("- ").partition(": ")
        if not sep:
            reasons.append(line)
            continue
        option = _OPTIONS.get(field, "--" + field.replace("_", "-"))
        shown = f" {parameters[field]!r}" if parameters and field in parameters else ""
        reasons.append(f"{option}{shown}: {reason}")
    return "invalid parameters: " + "; ".join(reasons)


def _is_parameter_error(exc: BaseException) -> bool:
    """prefect.exceptions.ParameterTypeError, recognised without importing prefect (commands that never use it)."""
    return any(c.__name__ == "ParameterTypeError" and c.__module__.startswith("prefect") for c in type(exc).__mro__)


def _validate_flow_parameters(flow: Any, parameters: dict[str, Any]) -> None:
    """Prefect's own parameter validation, before the flow (and the temporary server) starts: exit 2 at once."""
    from prefect.exceptions import ParameterTypeError

    try:
        flow.validate_parameters({k: v for k, v in parameters.items() if k != "return_state"})
    except ParameterTypeError as exc:
        raise PricecastError(_parameter_reason(exc, parameters)) from None


def _ensure_prefect_home() -> None:
    """Create PREFECT_HOME (parents too) before Prefect starts: its temporary server cannot create the folder and
    would leave the CLI waiting minutes for a server that never comes up. One line and exit 2 if it cannot."""
    raw = os.environ.get("PREFECT_HOME")
    path = Path(raw).expanduser() if raw else Path.home() / ".prefect"
    problem = ""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            problem = "is not writable"
    except OSError as exc:
        problem = f"cannot be created ({exc.strerror or exc})"
    if problem:
        line = f"PREFECT_HOME={path} {problem}; point PREFECT_HOME at a directory you can write to"
        err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT)


def _out_dir(value: str | None, option: str = "--out") -> Path | None:
    """--out checked before any work: not empty, not an existing file, inside a writable directory."""
    if value is None:
        return None
    if not value.strip():
        raise PricecastError(f"{option} is empty; pass a directory, or leave {option} out for the default")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise PricecastError(f"{option} {value} is an existing file, not a directory; pass a directory to write to")
    parent = path
    while not parent.exists():  # the nearest existing ancestor is where the directory will be created
        parent = parent.parent
    if not parent.is_dir():
        raise PricecastError(f"{option} {value}: {parent} is a file, so no directory can be made there")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PricecastError(f"{option} {value}: {parent} is not writable; pass a directory you can write to")
    return path


class _QuietRunFailures(logging.Filter):
    """Keep Prefect's own failure records (a task or flow run 'Finished in state Failed', 'Encountered exception',
    parameter validation) off the terminal: the CLI prints the one `error:`/`failed:`/`partial:` line for them.
    They still reach the Prefect API (the UI); --verbose shows them here too."""

    LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.flows", "prefect.tasks", "prefect.engine")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in self.LOGGERS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _NoTracebackFormatter(logging.Formatter):
    """Log lines without tracebacks: the terminal gets one line per record, the Prefect UI keeps the full text."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        return super().format(record).split("\nTraceback (most recent call last)")[0]


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None or not value.strip():
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _source_spec(
    source: str,
    path: Path | None,
    tickers: str | None,
    start: str | None,
    end: str | None,
    target: str,
    gap_policy: str,
    max_ffill: int,
    min_sessions: int = 1,
    spikes: str = "error",
    columns: str | None = None,
    calendars: str | None = None,
):
    from ingest.spec import SourceSpec

    return SourceSpec(
        source=source,
        path=path,
        tickers=_split(tickers),
        start=_date(start, "--start"),
        end=_date(end, "--end"),
        target=target,
        gap_policy=gap_policy,
        max_ffill=max_ffill,
        min_sessions=min_sessions,
        spikes=spikes,
        columns=columns,
        calendars=calendars,
    )


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PricecastError(f"{option} {value!r} is not a date; use YYYY-MM-DD") from None


@contextmanager
def progress_bars(starting: str) -> Iterator[None]:
    """Rich progress bars on stderr for every stage the flow reports (common.progress); logs with --verbose.

    A spinner labelled `starting` covers the time before the first unit finishes (Prefect start-up, ingest,
    features); one bar per stage follows, with the unit that just finished.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from common import progress

    if _state["verbose"]:
        yield
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[label]}"),
        console=err,
    )
    spinner = bars.add_task(starting, total=None, label="")
    stages: dict[str, Any] = {}

    def show(event: progress.ProgressEvent) -> None:
        if event.stage not in stages:
            if spinner in bars.task_ids:
                bars.remove_task(spinner)
            stages[event.stage] = bars.add_task(event.stage, total=event.total, label="")
        bars.update(stages[event.stage], completed=event.done, total=event.total, label=event.label)

    with bars, progress.listening(show):
        try:
            yield
        finally:  # a spinner no stage replaced (the flow stopped early) leaves nothing, not even a blank line
            if spinner in bars.task_ids:
                bars.remove_task(spinner)
                bars.live.transient = True
                bars.live.stop()
                bars.disable = True  # Progress.stop would print an empty line on a non-terminal


def _run_flow(flow: Any, **parameters: Any) -> Any:
    """Call `flow` after Prefect's own parameter validation, so a bad value is one line and exit 2 at once."""
    _validate_flow_parameters(flow, parameters)
    return flow(**parameters)


def print_frame(frame, *, title: str | None = None, floatfmt: str = "{:.4g}") -> None:
    """Render a small DataFrame as a rich table."""
    table = Table(title=title, header_style="bold")
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("" if value != value else floatfmt.format(value))
            else:
                cells.append(str(value))
        table.add_row(*cells)
    out.print(table)


@app.command("models")
@guarded
def models_cmd() -> None:
    """List the registered models, one line each on what the model is."""
    from models import EVENT_REGISTRY, REGISTRY

    table = Table(header_style="bold")
    table.add_column("model")
    table.add_column("family")
    table.add_column("what it is")
    for name, spec in REGISTRY.items():
        table.add_row(name, spec.family, spec.summary)
    for name, spec in EVENT_REGISTRY.items():
        table.add_row(name, "event (--task event)", spec.summary)
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

    spec = _source_spec(
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
    horizon: Annotated[int, typer.Option(help="Forecast horizon in sessions")] = 5,
    windows: Annotated[int, typer.Option(help="Number of rolling origins (folds) per series")] = 20,
    step: Annotated[int, typer.Option(help="Sessions between consecutive origins")] = 5,
    refit_every: Annotated[
        int | None,
        typer.Option(help="Refit every k-th fold (1 = every fold, 0 = once); default: per model"),
    ] = None,
    window_type: Annotated[str, typer.Option(help="expanding | sliding")] = "expanding",
    train_size: Annotated[int | None, typer.Option(help="Sliding window length in sessions")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory (default: PRICECAST_HOME/runs/<run>)")] = None,
    unit_timeout: Annotated[
        float, typer.Option(help="Seconds one (ticker, model) unit may run before it is stopped and recorded as failed")
    ] = 3600.0,
    task: Annotated[
        str, typer.Option(help="price: forecast the price path | event: will the close rise >= --threshold?")
    ] = "price",
    threshold: Annotated[float, typer.Option(help="Event task: the rise, as a fraction (0.05 = 5%)")] = 0.05,
    spikes: SpikesOpt = "error",
    columns: ColumnsOpt = None,
    calendar: CalendarOpt = None,
) -> None:
    """Backtest models on identical rolling-origin folds; writes parquet/CSV tables and report.html.

    --task event backtests classifiers of "the close rises >= threshold within --horizon sessions" (event
    models: see `pricecast models`); each fold scores --step origins.
    """
    from backtest.folds import FoldPlan
    from flows.backtest import DEFAULT_MODELS, backtest_flow
    from ingest.sources.sample import sample_start_note

    if task not in ("price", "event"):
        raise PricecastError(f"--task must be 'price' or 'event', got {task!r}")
    out_path = _out_dir(out)
    if not unit_timeout > 0:  # also NaN
        raise PricecastError(f"--unit-timeout must be > 0 seconds, got {unit_timeout}")
    if refit_every is not None and refit_every < 0:
        raise PricecastError(f"--refit-every must be >= 0 (0 = fit once, 1 = every fold), got {refit_every}")
    if task == "event":
        FoldPlan(horizon=step, step=step, windows=windows, window_type=window_type, train_size=train_size)
        spec = _source_spec(source, path, tickers, start, end, target, "ffill", 3, calendars=calendar)
        if columns:  # the event flow reads files without a column map
            raise PricecastError("--columns is not available with --task event yet; rename the file's columns")
        _event_backtest(spec, models, threshold, horizon, windows, step, refit_every, window_type, train_size, out_path)
        return
    names = _model_list(models, default=DEFAULT_MODELS)
    FoldPlan(horizon=horizon, step=step, windows=windows, window_type=window_type, train_size=train_size)
    spec = _source_spec(
        source, path, tickers, start, end, target, "ffill", 3, spikes=spikes, columns=columns, calendars=calendar
    )
    with progress_bars("starting the backtest flow (Prefect, ingest, features)"):
        state = _run_flow(
            backtest_flow,
            tickers=list(spec.tickers) if spec.tickers else None,
            models=names,
            horizon=horizon,
            windows=windows,
            step=step,
            refit_every=refit_every,
            window_type=window_type,
            train_size=train_size,
            source=source,
            path=str(path) if path else None,
            start=spec.start,
            end=spec.end,
            target=target,
            out_dir=str(out_path) if out_path else None,
            unit_timeout_seconds=unit_timeout,
            spikes=spec.spikes,
            columns=spec.columns,
            calendars=spec.calendars,
            return_state=True,
        )
    outcome = _outcome(state)
    _print_quality(outcome.get("quality"), note=sample_start_note(source, spec.start))
    _print_backtest(outcome)
    _exit_if_partial(state)


def _event_backtest(spec, models, threshold, horizon, windows, step, refit_every, window_type, train_size, out_dir):
    """`pricecast backtest --task event`: the event flow, its leaderboard, verdict and report path."""
    import pandas as pd

    from flows.event_backtest import EVENT_DEFAULT_MODELS, event_backtest_flow
    from ingest.sources.sample import sample_start_note
    from models import EVENT_REGISTRY, event_model_class

    names = _model_list(models, default=EVENT_DEFAULT_MODELS, registry=EVENT_REGISTRY, check=event_model_class)
    with progress_bars("starting the event backtest flow (Prefect, ingest, features)"):
        state = _run_flow(
            event_backtest_flow,
            tickers=list(spec.tickers) if spec.tickers else None,
            models=names,
            threshold=threshold,
            horizon=horizon,
            windows=windows,
            step=step,
            refit_every=refit_every,
            window_type=window_type,
            train_size=train_size,
            source=spec.source,
            path=str(spec.path) if spec.path else None,
            start=spec.start,
            end=spec.end,
            target=spec.target,
            calendars=spec.calendars,
            out_dir=str(out_dir) if out_dir else None,
            return_state=True,
        )
    outcome = _outcome(state)
    _print_quality(outcome.get("quality"), note=sample_start_note(spec.source, spec.start))
    board = pd.read_csv(outcome["leaderboard"])
    cols = ["model", "brier", "brier_skill", "roc_auc", "pr_auc", "log_loss", "f1", "mean_rank", "p_less"]
    print_frame(board[[c for c in [*cols, "beats_base_rate"] if c in board.columns]], title="Event leaderboard")
    if outcome.get("verdict"):
        out.print(outcome["verdict"], highlight=False)
    out.print(f"report: {outcome['report']}", highlight=False)
    _exit_if_partial(state)


def _model_list(value: str, *, default: list[str], registry=None, check=None) -> list[str]:
    """--models as registry names ('default', 'all' or a comma list); unknown names fail before any work starts."""
    from models import REGISTRY, model_class

    registry = REGISTRY if registry is None else registry
    check = model_class if check is None else check
    key = value.strip().lower()
    if key == "default":
        return list(default)
    if key == "all":
        return list(registry)
    from backtest.champion import CHAMPION
    from models import canonical_name

    # Case-insensitive: 'NAIVE,Lstm' runs naive and lstm, reported in the registry's spelling.
    spelled = [canonical_name([CHAMPION, *registry], n) for n in _split(value) or ()]
    names = list(dict.fromkeys(spelled))
    if not names:
        raise PricecastError("--models is empty; pass a comma list, 'default' or 'all'")
    for name in names:
        check(name)  # ConfigError naming the close matches for a typo
    return names


def _outcome(state) -> dict:
    """The data of a finished flow run; an exception (bad input) is re-raised for `guarded` to print."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _exit_if_partial(state) -> None:
    """Exit code 1 when the run finished but some units failed."""
    if not state.is_completed():
        err.print(f"[bold yellow]partial:[/] {state.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_PARTIAL)


def _print_backtest(outcome: dict) -> None:
    import pandas as pd

    out_dir = Path(outcome["out_dir"])
    board = pd.read_csv(out_dir / "leaderboard.csv")
    cols = ["model", "mase", "rmsse", "smape", "directional_accuracy", "coverage_95", "mean_rank", "beats_naive_dm"]
    if "n_scale_undefined" in board.columns and board["n_scale_undefined"].gt(0).any():
        cols.append("n_scale_undefined")  # folds whose MASE/RMSSE are NaN (zero or non-finite scale): say so
    print_frame(board[[c for c in cols if c in board.columns]], title="Leaderboard (mean over series)")
    verdict = outcome.get("verdict")
    if verdict:
        out.print(verdict, highlight=False)
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
    _print_quality(quality)


def _print_quality(quality, *, note: str | None = None) -> None:
    """The data-quality paragraph (what start/end cut, then each ticker's sessions, calendar and cleaning counts)
    that ingest, backtest and forecast print; `quality` is a QualityReport or its dict (a flow's summary)."""
    from ingest.quality import QualityReport

    if quality is None and note is None:
        return
    if isinstance(quality, dict):
        quality = QualityReport.model_validate(quality)
    lines = ([note] if note else []) + (quality.summary_lines() if quality is not None else [])
    if lines:
        out.print("[bold]Data quality[/]")
        for line in lines:
            out.print(f"  {line}", highlight=False, soft_wrap=True)


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
    horizon: Annotated[int, typer.Option(help="Trading sessions to forecast")] = 5,
    spikes: SpikesOpt = "error",
    columns: ColumnsOpt = None,
    calendar: CalendarOpt = None,
) -> None:
    """Forecast the next sessions with every model plus the ensemble; stored for the live track record."""
    from common.settings import store_path
    from flows.forecast import FORECAST_MODELS, forecast_flow
    from ingest.sources.sample import sample_start_note
    from store.results_store import ResultStore

    names = _model_list(models, default=FORECAST_MODELS, check=_forecast_model)
    if horizon <= 0:
        raise PricecastError(f"--horizon must be >= 1, got {horizon}")
    spec = _source_spec(
        source, path, tickers, start, end, target, "ffill", 3, spikes=spikes, columns=columns, calendars=calendar
    )
    with progress_bars("starting the forecast flow (Prefect, ingest, features)"):
        state = _run_flow(
            forecast_flow,
            tickers=list(spec.tickers) if spec.tickers else None,
            models=names,
            horizon=horizon,
            source=source,
            path=str(path) if path else None,
            start=spec.start,
            end=spec.end,
            target=target,
            spikes=spec.spikes,
            columns=spec.columns,
            calendars=spec.calendars,
            return_state=True,
        )
    outcome = _outcome(state)
    _print_quality(outcome.get("quality"), note=sample_start_note(source, spec.start))
    table = ResultStore(store_path()).live_forecasts(outcome["flow_run_id"])
    if len(table):
        table = table.assign(as_of=table["as_of"].dt.date.astype(str), ds=table["ds"].dt.date.astype(str))
        cols = ["unique_id", "model", "as_of", "ds", "h", "yhat", "yhat_lo_95", "yhat_hi_95"]
        print_frame(table[cols], title="Live forecast", floatfmt="{:.6g}")
    out.print(f"stored in {store_path()} (run {outcome['flow_run_id']})", highlight=False)
    _exit_if_partial(state)


def _forecast_model(name: str) -> None:
    """A registered model, or `champion`: each ticker's stored champion (naive until a backtest stored one)."""
    from backtest.champion import CHAMPION
    from models import model_class

    if name != CHAMPION:
        model_class(name)


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
    from reports.verdict import verdict
    from store.results_store import ResultStore
    from tasks.backtest import save_run

    out_path = _out_dir(out_dir)
    store = ResultStore(store_path())
    if list_runs:
        _print_runs(store)
        return
    if run and Path(run).is_dir():
        result, quality = _run_from_directory(Path(run))
        target = out_path or Path(run)
    else:
        task, run_id = store.resolve_task_run(run)
        target = out_path or runs_dir() / f"report-{run_id}"
        if task == "event":
            _event_report_from_store(store, run_id, Path(target).expanduser().resolve())
            return
        result, quality = _run_from_store(store, run_id)
    evaluation = evaluate(result)
    report = save_run(result, evaluation, quality, Path(target).expanduser().resolve())
    out.print(verdict(evaluation.leaderboard, evaluation.dm), highlight=False)
    out.print(f"report: {report}", highlight=False)


def _run_from_directory(path: Path):
    """A run written by `pricecast backtest --out DIR`: its parquet tables, meta.json and quality.csv."""
    import json

    import pandas as pd

    from backtest.results import BacktestResult

    meta = path / "meta.json"
    try:  # read first, so a damaged one is named before any table is loaded
        json.loads(meta.read_text()) if meta.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PricecastError(
            f"{meta}: not valid JSON ({getattr(exc, 'msg', exc)}); re-run the backtest into this directory, "
            "or render the stored run with `pricecast report <run id>`"
        ) from None
    result = BacktestResult.load(path)
    quality_file = path / "quality.csv"
    quality = (
        pd.read_csv(quality_file, dtype={"unique_id": str}, keep_default_na=False) if quality_file.exists() else None
    )
    return result, quality


def _run_from_store(store, run_id: str):
    """A run's tables from the results store, in the canonical dtypes `evaluate` expects."""
    from backtest.results import FAILURE_COLUMNS, FOLD_INFO_COLUMNS, BacktestResult, normalize
    from common.schema import BACKTEST_COLUMNS, TIMING_COLUMNS

    tables, meta = store.backtest_run(run_id)
    if tables["fold_info"].empty:
        raise PricecastError(
            f"run {run_id} was stored without its fold table (before pricecast 0.1 stored it); "
            "re-run the backtest to render its report"
        )
    result = BacktestResult(
        forecasts=normalize(tables["forecasts"], BACKTEST_COLUMNS),
        timings=normalize(tables["timings"], TIMING_COLUMNS),
        failures=normalize(tables["failures"], FAILURE_COLUMNS),
        fold_info=normalize(tables["fold_info"], FOLD_INFO_COLUMNS),
        meta=meta,
    )
    return result, tables["quality"]


def _event_report_from_store(store, run_id: str, target: Path) -> None:
    """A stored event run re-scored and written as the flow wrote it (tasks.event_backtest.save_event_run)."""
    from backtest.event_task import EventResult, evaluate_events, normalize_predictions
    from backtest.results import FAILURE_COLUMNS, normalize
    from common.schema import TIMING_COLUMNS
    from reports.event_report import event_verdict
    from tasks.event_backtest import save_event_run

    tables, meta = store.event_run(run_id)
    result = EventResult(
        predictions=normalize_predictions(tables["predictions"]),
        timings=normalize(tables["timings"], TIMING_COLUMNS),
        failures=normalize(tables["failures"], FAILURE_COLUMNS),
        meta=meta,
    )
    evaluation = evaluate_events(result)
    report = save_event_run(result, evaluation, target)
    live = tables["probabilities"]
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
