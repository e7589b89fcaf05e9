"""SourceSpec: the one typed description of what to ingest, validated up front so bad options fail fast."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator, model_validator

from common.errors import ConfigError
from common.redact import redact

SourceName = Literal["sample", "csv", "parquet", "yfinance", "fdr"]
LIVE_SOURCES: frozenset[str] = frozenset({"yfinance", "fdr"})
FILE_SOURCES: frozenset[str] = frozenset({"csv", "parquet"})
ALL_TICKERS = "*"  # calendars key: every ticker of the run
SAMPLE_TICKERS: tuple[str, ...] = ("AAPL", "GOOG", "IBM", "MSFT")


class SourceSpec(BaseModel):
    """What to ingest and how strictly: source, tickers, date range, target column, gaps, spikes and calendars."""

    # Invalid options raise ConfigError (not pydantic's ValidationError), so the CLI prints one clear line.

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: SourceName = "sample"
    path: Path | None = None
    tickers: tuple[StrictStr, ...] | None = None
    start: date | None = None
    end: date | None = None
    target: Literal["auto", "adj_close", "close"] = "auto"
    gap_policy: Literal["error", "ffill"] = "ffill"
    max_ffill: int = Field(default=3, ge=0)
    min_sessions: int = Field(default=1, ge=1)
    # Round-trip spikes (a jump beyond x3 or /3 that comes back within 20 sessions): a feed error. "error" stops
    # with the ticker and dates; "repair" sets those sessions to the previous session's prices, counted and warned.
    spikes: Literal["error", "repair"] = "error"
    # Trading calendar per ticker ("*" = every ticker of the run), from --calendar NAME or TICKER=NAME,...;
    # tickers not named keep their stored choice or the one their spelling implies (features.calendar).
    calendars: dict[str, str] | None = None
    # csv/parquet only: schema column -> the file's column ({"close": "price", "ticker": "symbol"}); the CLI's
    # --columns close=price,ticker=symbol. Mapped columns win over the automatic spellings (ingest.columns).
    columns: dict[str, StrictStr] | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(redact(f"invalid SourceSpec: {_describe(exc)}")) from None

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):  # "AAPL,MSFT" from a CLI or a Prefect parameter
            value = value.split(",")
        items = list(value)
        for item in items:
            if not isinstance(item, str):
                raise ValueError(
                    f"ticker {item!r} is of type {type(item).__name__}, not a string; "
                    "quote it (KRX codes like '005930' lose their leading zeros as numbers)"
                )
        cleaned = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
        if not cleaned:
            raise ValueError("tickers is empty; pass at least one ticker or None for all the source has")
        return cleaned

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        from ingest.columns import parse_column_map

        return parse_column_map(value)

    @field_validator("calendars", mode="before")
    @classmethod
    def _calendars(cls, value: Any) -> Any:
        if value is None or value == "" or value == {}:
            return None
        return parse_calendars(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _to_date(cls, value: Any) -> Any:
        if isinstance(value, datetime):  # also pandas Timestamps: keep the calendar date
            return value.date()
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}; swap them or drop one")
        if self.source in FILE_SOURCES and self.path is None:
            raise ValueError(f"source {self.source!r} needs path= (a file or a directory of files)")
        if self.columns and self.source not in FILE_SOURCES:
            raise ValueError(f"columns= maps the columns of csv/parquet files; source {self.source!r} has its own")
        if self.source in LIVE_SOURCES and not self.tickers:
            raise ValueError(f"source {self.source!r} needs tickers= (a live source has no list of 'all' tickers)")
        return self

    def calendar_for(self, ticker: str) -> str | None:
        """The calendar this run asks for `ticker` (its own entry, else the run-wide one), or None."""
        if not self.calendars:
            return None
        return self.calendars.get(ticker) or self.calendars.get(ALL_TICKERS)

    @property
    def is_live(self) -> bool:
        """True for network sources (yfinance, fdr), which the store fetches incrementally."""
        return self.source in LIVE_SOURCES


def parse_calendars(value: Any) -> dict[str, str]:
    """`XLON` (every ticker) or `SEGA.L=XLON,BTCUSDT=24/7` (or a mapping) -> {ticker or "*": canonical name}."""
    from features.calendar import check_calendar

    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
        # rsplit: a ticker may hold '=' (Yahoo's CL=F, EURUSD=X); a calendar name never does
        pairs = [item.rsplit("=", 1) if "=" in item else [ALL_TICKERS, item] for item in items]
    elif isinstance(value, dict):
        pairs = [[str(k), str(v)] for k, v in value.items()]
    else:
        raise ValueError(f"calendars must be NAME or TICKER=NAME,... , got {value!r}")
    out: dict[str, str] = {}
    for ticker, name in pairs:
        try:
            out[ticker.strip()] = check_calendar(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    if ALL_TICKERS in out and len(out) > 1:
        raise ValueError("give --calendar either one NAME for every ticker or TICKER=NAME pairs, not both")
    return out


def _describe(exc: ValidationError) -> str:
    """One line per pydantic error: field: message (got value)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg} (got {err.get('input')!r})" if err["loc"] else msg)
    return "; ".join(parts)
