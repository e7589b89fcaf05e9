"""The `pricecast` console command: the CLI owns the terminal (rich tables, one-line errors, exit codes)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pricecast.errors import PricecastError

app = typer.Typer(
    help="pricecast: forecasting pipeline for daily market prices (ingest, backtest, forecast, report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

# Exit codes: 0 everything ran; 1 ran but some units failed; 2 bad input or configuration.
EXIT_PARTIAL = 1
EXIT_BAD_INPUT = 2

SourceOpt = Annotated[str, typer.Option(help="sample | csv | parquet | yfinance | fdr")]
PathOpt = Annotated[Path | None, typer.Option(help="File or directory for csv/parquet sources")]
TickersOpt = Annotated[str | None, typer.Option(help="Comma-separated tickers (default: all the source has)")]
StartOpt = Annotated[str | None, typer.Option(help="First session to use, YYYY-MM-DD")]
EndOpt = Annotated[str | None, typer.Option(help="Last session to use, YYYY-MM-DD")]
TargetOpt = Annotated[str, typer.Option(help="auto (adjusted close if present, else close) | adj_close | close")]
GapOpt = Annotated[str, typer.Option(help="NaN gaps in the target: ffill (at most --max-ffill sessions) | error")]
MaxFillOpt = Annotated[int, typer.Option(help="Longest NaN run to forward-fill, in sessions")]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs")] = False,
) -> None:
    """Forecast daily market prices and backtest every model on identical rolling-origin folds."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one clear stderr line and exit code 2; tracebacks only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (PricecastError, ValueError, FileNotFoundError) as exc:
            if _state["debug"]:
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper


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
    )


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PricecastError(f"{option} {value!r} is not a date; use YYYY-MM-DD") from None


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
    from models import REGISTRY

    table = Table(header_style="bold")
    table.add_column("model")
    table.add_column("family")
    table.add_column("what it is")
    for name, spec in REGISTRY.items():
        table.add_row(name, spec.family, spec.summary)
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
) -> None:
    """Ingest prices into the local store (incremental for live sources) and print the data-quality summary."""
    from ingest.load import load_panel
    from ingest.store import PriceStore
    from pricecast.settings import store_path

    spec = _source_spec(source, path, tickers, start, end, target, gap_policy, max_ffill)
    panel, quality = load_panel(spec, store=PriceStore(store_path()))
    _print_panel_summary(panel, quality)
    out.print(f"stored in {store_path()}")


def _print_panel_summary(panel, quality) -> None:
    from features.schema import DS, ID, Y

    summary = (
        panel.groupby(ID, sort=True)
        .agg(sessions=(DS, "size"), first=(DS, "min"), last=(DS, "max"), last_y=(Y, "last"))
        .reset_index()
    )
    summary["first"] = summary["first"].dt.date.astype(str)
    summary["last"] = summary["last"].dt.date.astype(str)
    print_frame(summary, title="Panel")
    lines = quality.summary_lines()
    if lines:
        out.print("[bold]Data quality[/]")
        for line in lines:
            out.print(f"  {line}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
