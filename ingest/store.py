"""PriceStore: the DuckDB table of validated daily bars that makes live ingest incremental and idempotent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from features.schema import BAR_COLUMNS, DS, ID
from pricecast.duckdb_io import locked_connection
from pricecast.errors import DataError

log = logging.getLogger(__name__)

TABLE = "prices"
STORE_COLUMNS: tuple[str, ...] = ("source", ID, DS, *BAR_COLUMNS, "ingested_at")
_BARS = ", ".join(BAR_COLUMNS)
_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    source VARCHAR NOT NULL,
    {ID} VARCHAR NOT NULL,
    {DS} DATE NOT NULL,
    {", ".join(f"{c} DOUBLE" for c in BAR_COLUMNS)},
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, {ID}, {DS})
)
"""
_INSERT = f"""
INSERT OR REPLACE INTO {TABLE} (source, {ID}, {DS}, {_BARS}, ingested_at)
SELECT source, {ID}, CAST({DS} AS DATE), {_BARS}, CAST(now() AS TIMESTAMP) FROM incoming
"""


class PriceStore:
    """Daily bars keyed by (source, unique_id, ds) in one DuckDB file.

    Each operation opens a short-lived connection (DuckDB allows one writing process at a time), retrying briefly
    with backoff while another process holds the file lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lock_attempts: int = 6,
        lock_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.lock_attempts = lock_attempts
        self.lock_delay = lock_delay
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"PriceStore({str(self.path)!r})"

    def upsert(self, frame: pd.DataFrame, source: str, *, chunk_rows: int = 100_000) -> int:
        """Insert or replace `frame`'s bars under `source` in one transaction (all or nothing); returns rows written."""
        incoming = _prepare(frame, source)
        if incoming.empty:
            return 0
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for lo in range(0, len(incoming), chunk_rows):
                    self._insert_chunk(con, incoming.iloc[lo : lo + chunk_rows])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info("stored %d %s rows of %d tickers in %s", len(incoming), source, incoming[ID].nunique(), self.path)
        return len(incoming)

    def _insert_chunk(self, con: duckdb.DuckDBPyConnection, chunk: pd.DataFrame) -> None:
        """One INSERT OR REPLACE statement (chunked so huge frames do not need one giant statement)."""
        con.register("incoming", chunk)
        try:
            con.execute(_INSERT)
        finally:
            con.unregister("incoming")

    def session_range(self, source: str, ticker: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last stored session of one ticker, or None when it has none."""
        if not self.path.exists():
            return None
        with self._connect() as con:
            sql = f"SELECT min({DS}), max({DS}) FROM {TABLE} WHERE source = ? AND {ID} = ?"
            first, last = con.execute(sql, [source, ticker]).fetchone() or (None, None)
        return (pd.Timestamp(first), pd.Timestamp(last)) if first is not None else None

    def last_session(self, source: str, ticker: str) -> pd.Timestamp | None:
        """The latest stored session of one ticker (incremental fetches start after it), or None."""
        span = self.session_range(source, ticker)
        return span[1] if span else None

    def read(
        self,
        source: str,
        tickers: Iterable[str] | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> pd.DataFrame:
        """Stored bars (unique_id, ds, bars) of `source`, optionally limited to tickers and [start, end]."""
        where: list[str] = ["source = ?"]
        params: list[object] = [source]
        if tickers is not None:
            where.append(f"list_contains(?, {ID})")
            params.append([str(t) for t in tickers])
        if start is not None:
            where.append(f"{DS} >= CAST(? AS DATE)")
            params.append(str(pd.Timestamp(start).date()))
        if end is not None:
            where.append(f"{DS} <= CAST(? AS DATE)")
            params.append(str(pd.Timestamp(end).date()))
        if not self.path.exists():
            return _empty_read()
        sql = (
            f"SELECT {ID}, CAST({DS} AS TIMESTAMP) AS {DS}, {_BARS} FROM {TABLE} "
            f"WHERE {' AND '.join(where)} ORDER BY {ID}, {DS}"
        )
        with self._connect() as con:
            frame = con.execute(sql, params).df()
        return _typed(frame)

    def sources(self) -> list[str]:
        """Sources with stored rows."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            return [r[0] for r in con.execute(f"SELECT DISTINCT source FROM {TABLE} ORDER BY 1").fetchall()]

    def _connect(self):
        """A fresh connection with the table in place, closed afterwards; waits out another writer's lock."""
        return locked_connection(
            self.path,
            ddl=_DDL,
            label="price store",
            attempts=self.lock_attempts,
            delay=self.lock_delay,
            sleep=self._sleep,
        )


def _prepare(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The store's columns from a panel or raw frame; duplicate keys would make the upsert ambiguous."""
    missing = [c for c in (ID, DS, *BAR_COLUMNS) if c not in frame.columns]
    if missing:
        raise DataError(f"cannot store {source} bars: missing columns {missing}; pass a validated panel")
    out = frame[[ID, DS, *BAR_COLUMNS]].copy()
    out[ID] = out[ID].astype(str)
    out[DS] = pd.to_datetime(out[DS]).astype("datetime64[ns]")
    out[list(BAR_COLUMNS)] = out[list(BAR_COLUMNS)].astype("float64")
    dup = out.duplicated([ID, DS])
    if dup.any():
        first = out[dup].iloc[0]
        raise DataError(
            f"cannot store {source} bars: {int(dup.sum())} duplicate (ticker, date) rows, first {first[ID]} "
            f"{first[DS].date()}; validate the frame first"
        )
    out.insert(0, "source", source)
    return out


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored rows with the panel's dtypes."""
    return frame.astype({ID: str, DS: "datetime64[ns]", **{c: "float64" for c in BAR_COLUMNS}}).reset_index(drop=True)


def _empty_read() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: pd.Series(dtype="float64") for c in (ID, DS, *BAR_COLUMNS)}))
