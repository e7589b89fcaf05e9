"""The CLI's options (typer annotations shared by the commands) and how they become typed parameters.

Each option maps onto one field of a parameter model (ingest.spec.SourceSpec, flows.params.*): the command passes
what the user gave and the model fills in its own defaults, validates, and names a bad value; `build_params`
rewords the model's field names as the options the user typed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from common.errors import PricecastError

if TYPE_CHECKING:
    from flows.params import ParamsError
    from ingest.spec import SourceSpec

P = TypeVar("P")

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


def out_dir_option(value: str | None, option: str = "--out") -> Path | None:
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


def split_list(value: str | None) -> tuple[str, ...] | None:
    if value is None or not value.strip():
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def source_spec(
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
) -> SourceSpec:
    """The source options as one SourceSpec (its own validation names a bad value)."""
    from ingest.spec import SourceSpec

    return SourceSpec(
        source=source,
        path=path,
        tickers=split_list(tickers),
        start=parse_date(start, "--start"),
        end=parse_date(end, "--end"),
        target=target,
        gap_policy=gap_policy,
        max_ffill=max_ffill,
        min_sessions=min_sessions,
        spikes=spikes,
        columns=columns,
        calendars=calendars,
    )


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PricecastError(f"{option} {value!r} is not a date; use YYYY-MM-DD") from None


# Model fields whose option is not --field-name.
OPTION_OF = {"unit_timeout_seconds": "--unit-timeout", "out_dir": "--out", "calendars": "--calendar"}


def option_name(field: str) -> str:
    """The CLI option of a parameter field: refit_every -> --refit-every."""
    field = field.removeprefix("source.")
    return OPTION_OF.get(field, "--" + field.replace("_", "-"))


def build_params(model: Callable[..., P], **given: Any) -> P:
    """`model(**given)` with None values left out (the model's defaults apply); a bad value becomes one line that
    names the option as the user typed it: `--refit-every -1: must be an integer >= 0 (...)`."""
    from flows.params import ParamsError

    try:
        return model(**{k: v for k, v in given.items() if v is not None})
    except ParamsError as exc:
        raise PricecastError(_reworded(exc)) from None


def _reworded(exc: ParamsError) -> str:
    clauses = [
        reason if not field else f"{option_name(field)} {value!r}: {reason}" for field, reason, value in exc.problems
    ]
    return "; ".join(clauses)


def default_of(model: Any, field: str) -> Any:
    """A parameter model's default for `field`: the one source of the defaults the help text shows."""
    return model.model_fields[field].get_default(call_default_factory=True)
