"""Column-name normalisation: map the many spellings of Date/Open/.../Adj Close/ticker onto the schema constants."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from features.schema import ADJ_CLOSE, BAR_COLUMNS, CLOSE, DS, HIGH, ID, LOW, OPEN, VOLUME
from pricecast.errors import DataError

log = logging.getLogger(__name__)

# The raw long frame every source returns (the index is the 1-based row number in the file/response).
RAW_COLUMNS: tuple[str, ...] = (ID, DS, *BAR_COLUMNS)
OPTIONAL_COLUMNS: tuple[str, ...] = (OPEN, HIGH, LOW, ADJ_CLOSE, VOLUME)  # filled with NaN when a source lacks them
REQUIRED_COLUMNS: tuple[str, ...] = (DS, CLOSE)


def _key(name: object) -> str:
    """Case-, space-, underscore- and dash-insensitive key: 'Adj Close' == 'adj_close' == 'ADJ-CLOSE'."""
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


_ALIASES: dict[str, tuple[str, ...]] = {
    DS: (DS, "date", "datetime", "timestamp", "trade date"),
    OPEN: (OPEN,),
    HIGH: (HIGH,),
    LOW: (LOW,),
    CLOSE: (CLOSE,),
    ADJ_CLOSE: (ADJ_CLOSE, "adjclose", "adjusted close", "adj closing price", "adjusted closing price"),
    VOLUME: (VOLUME, "vol"),
    ID: (ID, "ticker", "symbol", "code", "ticker symbol"),
}
_CANONICAL: dict[str, str] = {_key(alias): canon for canon, aliases in _ALIASES.items() for alias in aliases}


def canonical(name: object) -> str | None:
    """The schema column a source column name means, or None when it is not one we use."""
    return _CANONICAL.get(_key(name))


def normalise_columns(frame: pd.DataFrame, *, where: str) -> pd.DataFrame:
    """Rename recognised columns to the schema names and drop the rest (logged); two spellings of one column fail."""
    mapping: dict[str, str] = {}
    for col in frame.columns:
        canon = canonical(col)
        if canon is None:
            continue
        clash = [src for src, dst in mapping.items() if dst == canon]
        if clash:
            raise DataError(
                f"{where}: columns {clash[0]!r} and {col!r} both mean {canon!r}; keep one of them in the source"
            )
        mapping[col] = canon
    dropped = [str(c) for c in frame.columns if c not in mapping]
    if dropped:
        log.debug("%s: ignoring columns %s", where, dropped)
    return frame[list(mapping)].rename(columns=mapping)


def finish_raw(frame: pd.DataFrame, *, ticker: str | None = None) -> pd.DataFrame:
    """Complete a normalised frame into the raw contract: ID (strings), DS, bar columns (optional ones NaN)."""
    out = frame.copy()
    if ticker is not None and ID not in out.columns:
        out[ID] = ticker
    for col in OPTIONAL_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    if ID in out.columns:
        out[ID] = out[ID].astype("string").str.strip().astype(str)
    present = [c for c in RAW_COLUMNS if c in out.columns]  # DS/CLOSE may be missing: validate names them
    return out[present]


def index_datetime(frame: pd.DataFrame) -> pd.DataFrame:
    """Move a named date index (yfinance/FDR frames, parquet written from a DatetimeIndex) into a column."""
    if isinstance(frame.index, pd.DatetimeIndex) and frame.index.name is None:
        frame = frame.rename_axis(DS)
    if frame.index.name is not None and canonical(frame.index.name) is not None:
        frame = frame.reset_index()
    return frame


def one_based(frame: pd.DataFrame) -> pd.DataFrame:
    """Index rows 1..n so error messages can quote the row number of the file or response."""
    out = frame.reset_index(drop=True)
    out.index = pd.RangeIndex(1, len(out) + 1)
    return out


def empty_raw() -> pd.DataFrame:
    """A raw frame with no rows (a live source with nothing new)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in RAW_COLUMNS})
    frame[ID] = frame[ID].astype(str)
    frame[DS] = pd.Series(dtype="datetime64[ns]")
    return frame
