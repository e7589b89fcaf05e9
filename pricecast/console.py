"""The CLI's terminal: consoles, one-line errors and exit codes, logging, progress bars and tables.

Commands (pricecast/cli.py) print through this module only; nothing below the CLI prints.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from common.errors import PricecastError
from common.schema import (
    BEATS_NAIVE_DM,
    COVERAGE_80,
    COVERAGE_95,
    DIRECTIONAL_ACCURACY,
    IN_MCS,
    MASE,
    MEAN_RANK,
    MODEL,
    N_SCALE_UNDEFINED,
    OOS_R2,
    PINBALL,
    RMSSE,
    SCALED_CRPS,
)

out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
_state = {"debug": False, "verbose": False}

# Exit codes: 0 everything ran; 1 ran but some units failed, or the run failed; 2 bad input or configuration.
EXIT_PARTIAL = EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


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


def run_flow(flow: Any, **parameters: Any) -> Any:
    """Call `flow` after Prefect's own parameter validation, so a bad value is one line and exit 2 at once, against
    the CLI's Prefect API (pricecast.server: an explicit PREFECT_API_URL, else the background server)."""
    from pricecast.server import api_for_flows

    _validate_flow_parameters(flow, parameters)
    with api_for_flows():
        return flow(**parameters)


@guarded
def start_server_early() -> None:
    """Start the background Prefect server (when one is needed and absent) without waiting, so it boots while the
    command imports its flow; a port held by another program is one line and exit 2 before any work."""
    from pricecast.server import begin

    begin()


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


# The backtest leaderboard in a terminal: short headers, the key columns first. Below WIDE_TERMINAL columns only the
# key ones are shown (an 80-column terminal keeps one line per model), with a note naming where the rest are.
LEADERBOARD_HEADERS = {
    MODEL: "model",
    MASE: "MASE",
    SCALED_CRPS: "sCRPS",
    OOS_R2: "R2oos",
    COVERAGE_95: "cov95",
    MEAN_RANK: "rank",
    IN_MCS: "MCS",
    RMSSE: "RMSSE",
    PINBALL: "pinball",
    DIRECTIONAL_ACCURACY: "dir",
    COVERAGE_80: "cov80",
    BEATS_NAIVE_DM: "DM>naive",
    N_SCALE_UNDEFINED: "no-scale",
}
KEY_LEADERBOARD_COLUMNS = (MODEL, MASE, SCALED_CRPS, OOS_R2, COVERAGE_95, MEAN_RANK, IN_MCS)
WIDE_TERMINAL = 110


def leaderboard_view(board: Any, *, width: int) -> tuple[Any, str | None]:
    """(the leaderboard's columns for a terminal `width` wide, with short headers; a note on what was left out).

    n_scale_undefined is shown only when some fold had no valid MASE scale (then it matters at any width).
    """
    wanted = [*(LEADERBOARD_HEADERS if width >= WIDE_TERMINAL else KEY_LEADERBOARD_COLUMNS), N_SCALE_UNDEFINED]
    if N_SCALE_UNDEFINED not in board.columns or not board[N_SCALE_UNDEFINED].gt(0).any():
        wanted = [c for c in wanted if c != N_SCALE_UNDEFINED]
    view = board[[c for c in dict.fromkeys(wanted) if c in board.columns]].copy()
    for col in (IN_MCS, BEATS_NAIVE_DM):
        if col in view.columns:
            view[col] = view[col].map(lambda v: "" if v is None or v != v else ("yes" if bool(v) else "no"))
    left_out = [h for c, h in LEADERBOARD_HEADERS.items() if c in board.columns and c not in view.columns]
    left_out = [h for h in left_out if h != LEADERBOARD_HEADERS[N_SCALE_UNDEFINED]]
    note = f"{', '.join(left_out)} and the rest: leaderboard.csv and the report" if left_out else None
    return view.rename(columns=LEADERBOARD_HEADERS), note


def outcome_of(state) -> dict:
    """The data of a finished flow run; an exception (bad input) is re-raised for `guarded` to print."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def exit_if_partial(state) -> None:
    """Exit code 1 when the run finished but some units failed."""
    if not state.is_completed():
        err.print(f"[bold yellow]partial:[/] {state.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_PARTIAL)


def print_quality(quality, *, note: str | None = None) -> None:
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


def configure(*, debug: bool, verbose: bool) -> None:
    """The process's environment and logging for a CLI run: quiet terminal, warnings only with --verbose."""
    _state["debug"], _state["verbose"] = debug, verbose or debug
    debug, verbose = _state["debug"], _state["verbose"]
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
