"""Column-name normalisation: map the many spellings of Date/Open/.../Adj Close/ticker onto the schema constants."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from common.errors import DataError
from common.schema import ADJ_CLOSE, BAR_COLUMNS, CLOSE, DS, HIGH, ID, LOW, OPEN, VOLUME

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


# A file with one value column often names it for what it is, not "close": read as close only when no column is
# named close, and only when exactly one of these is present (two would be a guess). Each use is a logged note.
SINGLE_VALUE_NAMES: dict[str, str] = dict.fromkeys(
    ("price", "value", "px_last", "last", "last price", "closing price"), CLOSE
)
_SINGLE_VALUE: dict[str, str] = {_key(name): canon for name, canon in SINGLE_VALUE_NAMES.items()}
MAPPABLE: tuple[str, ...] = (ID, DS, OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE, VOLUME)  # keys of a --columns map


def canonical(name: object) -> str | None:
    """The schema column a source column name means, or None when it is not one we use."""
    return _CANONICAL.get(_key(name))


def parse_column_map(value: object) -> dict[str, str] | None:
    """A column map ('close=price,ticker=symbol' or a dict) as {schema column: source column}; ValueError if invalid.

    Keys are schema names in any of their spellings ('Close', 'adj close', 'symbol' all work).
    """
    if value is None or (isinstance(value, str | dict) and not value):
        return None
    if isinstance(value, str):
        pairs = []
        for part in (p.strip() for p in value.split(",")):
            name, sep, column = part.partition("=")
            if not part:
                continue
            if not sep or not name.strip() or not column.strip():
                raise ValueError(f"column map entry {part!r} is not NAME=COLUMN; write e.g. close=price,ticker=symbol")
            pairs.append((name.strip(), column.strip()))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ValueError(f"column map must be 'name=column,...' or a dict, not {type(value).__name__}")
    result: dict[str, str] = {}
    for name, column in pairs:
        canon = canonical(name)
        if canon is None or canon not in MAPPABLE:
            raise ValueError(
                f"unknown column name {name!r} in the column map; map one of "
                "ticker, date, open, high, low, close, adj_close, volume to a file column"
            )
        if not isinstance(column, str) or not column.strip():
            raise ValueError(f"column map {name}=: name the file's column for {canon!r}")
        if canon in result:
            raise ValueError(f"column map names {canon!r} twice ({result[canon]!r} and {column!r}); keep one")
        result[canon] = column.strip()
    taken = [c for c in result.values() if list(result.values()).count(c) > 1]
    if taken:
        raise ValueError(f"column map uses the file column {taken[0]!r} for two names; each column means one thing")
    return result or None


def column_role(name: object, column_map: dict[str, str] | None = None) -> str | None:
    """The schema column `name` will become: by the column map, by its spelling, or as a single-value name."""
    for canon, source in (column_map or {}).items():
        if _key(source) == _key(name):
            return canon
    spelled = canonical(name)
    if spelled is not None and spelled not in (column_map or {}):
        return spelled
    return _SINGLE_VALUE.get(_key(name))


def duplicated_names(names: list[str]) -> list[str]:
    """Header names that occur more than once, compared as column names match (case/space/dash-insensitive)."""
    seen: dict[str, str] = {}
    dups: list[str] = []
    for name in names:
        key = _key(name)
        if key in seen and seen[key] not in dups:
            dups.append(seen[key])
        seen.setdefault(key, name)
    return dups


def normalise_columns(
    frame: pd.DataFrame, *, where: str, column_map: dict[str, str] | None = None, notes: list[str] | None = None
) -> pd.DataFrame:
    """Rename recognised columns to the schema names and drop the rest (logged); two spellings of one column fail.

    `column_map` ({schema column: source column}) comes first; a mapped source column that is not in the frame
    fails with the frame's columns. Without any close column, one single-value column (SINGLE_VALUE_NAMES) is read
    as close, with a line appended to `notes` (and logged as a warning).
    """
    mapping: dict[str, str] = {}
    columns = [str(c) for c in frame.columns]
    for mapped, source in (column_map or {}).items():
        found = [c for c in frame.columns if str(c) == source] or [c for c in frame.columns if _key(c) == _key(source)]
        if not found:
            raise DataError(
                f"{where}: --columns {mapped}={source}: no column {source!r}; the file has columns {columns[:20]}"
            )
        mapping[found[0]] = mapped
    for col in frame.columns:
        canon = canonical(col)
        if col in mapping or canon is None:
            continue
        if column_map and canon in column_map:
            log.debug("%s: column %r ignored, the column map reads %r as %r", where, col, column_map[canon], canon)
            continue
        clash = [src for src, dst in mapping.items() if dst == canon]
        if clash:
            raise DataError(
                f"{where}: columns {clash[0]!r} and {col!r} both mean {canon!r}; keep one of them in the source"
            )
        mapping[col] = canon
    if CLOSE not in mapping.values():
        single = [c for c in frame.columns if c not in mapping and _key(c) in _SINGLE_VALUE]
        if len(single) > 1:
            raise DataError(
                f"{where}: no Close column and {len(single)} value columns {[str(c) for c in single]}; "
                f"pick one with --columns close={single[0]}"
            )
        if single:
            mapping[single[0]] = _SINGLE_VALUE[_key(single[0])]
            note = f"{where}: read column {str(single[0])!r} as close; pass --columns close=NAME to choose another"
            log.warning(note)
            if notes is not None:
                notes.append(note)
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
