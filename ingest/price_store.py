"""PriceStore: the DuckDB table of validated daily bars that makes live ingest incremental and idempotent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from common.duckdb_io import locked_connection
from common.errors import DataError
from common.schema import BAR_COLUMNS, CALENDARS, DS, ID
from common.schema import PRICES as TABLE

log = logging.getLogger(__name__)

_BARS = ", ".join(BAR_COLUMNS)
_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    source VARCHAR NOT NULL,
    {ID} VARCHAR NOT NULL,
    {DS} DATE NOT NULL,
    {", ".join(f"{c} DOUBLE" for c in BAR_COLUMNS)},
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, {ID}, {DS})
);
CREATE TABLE IF NOT EXISTS {CALENDARS} (
    source VARCHAR NOT NULL,
    {ID} VARCHAR NOT NULL,
    calendar VARCHAR NOT NULL,
    how VARCHAR NOT NULL,
    chosen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, {ID})
)
"""
_INSERT = f"""
INSERT OR REPLACE INTO {TABLE} (source, {ID}, {DS}, {_BARS}, ingested_at)
SELECT source, {ID}, CAST({DS} AS DATE), {_BARS}, CAST(now() AS TIMESTAMP) FROM incoming
"""

# Stored rows inside an incoming ticker's first..last date that the incoming rows lack (PriceStore.replace).
_MISSING = f"""
SELECT p.{ID}, CAST(p.{DS} AS TIMESTAMP) AS {DS} FROM {TABLE} p
JOIN spans s ON p.{ID} = s.{ID} AND p.{DS} BETWEEN CAST(s.span_first AS DATE) AND CAST(s.span_last AS DATE)
WHERE p.source = ?
  AND NOT EXISTS (SELECT 1 FROM incoming_keys k WHERE k.{ID} = p.{ID} AND CAST(k.{DS} AS DATE) = p.{DS})
ORDER BY p.{ID}, p.{DS}
"""
_DELETE_GONE = f"""
DELETE FROM {TABLE} USING gone g
WHERE {TABLE}.source = ? AND {TABLE}.{ID} = g.{ID} AND {TABLE}.{DS} = CAST(g.{DS} AS DATE)
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
        self._verified = False  # the first write reads the whole file: a damaged store is never written to

    def __repr__(self) -> str:
        return f"PriceStore({str(self.path)!r})"

    def upsert(self, frame: pd.DataFrame, source: str, *, chunk_rows: int = 100_000) -> int:
        """Insert or replace `frame`'s bars under `source` in one transaction (all or nothing); returns rows written.

        Stored rows `frame` lacks are kept: right for live sources, whose fetch brings only the new sessions."""
        incoming = _prepare(frame, source)
        if incoming.empty:
            return 0
        self._write(incoming, chunk_rows=chunk_rows, replace_spans=False)
        return len(incoming)

    def replace(self, frame: pd.DataFrame, source: str, *, chunk_rows: int = 100_000) -> dict[str, list[pd.Timestamp]]:
        """Make `frame` the whole truth of each of its tickers over the span it covers (that ticker's first to last
        date in `frame`): its bars inserted or replaced and the stored rows inside the span that it lacks deleted,
        in one transaction (all or nothing). Rows outside the span are kept.

        File sources use it, so a corrected file's deleted row (a x1000 typo) does not survive re-ingest.
        Returns the removed dates per ticker (tickers with none removed are absent).
        """
        incoming = _prepare(frame, source)
        if incoming.empty:
            return {}
        return self._write(incoming, chunk_rows=chunk_rows, replace_spans=True)

    def _write(self, incoming: pd.DataFrame, *, chunk_rows: int, replace_spans: bool) -> dict[str, list[pd.Timestamp]]:
        """One transaction: (replace_spans) stored rows inside each ticker's span that `incoming` lacks deleted,
        then every incoming row inserted or replaced; returns the deleted dates per ticker."""
        source = str(incoming["source"].iloc[0])
        removed: dict[str, list[pd.Timestamp]] = {}
        with self._connect(verify=not self._verified) as con:
            self._verified = True
            con.execute("BEGIN TRANSACTION")
            try:
                if replace_spans:
                    removed = self._delete_missing(con, incoming, source)
                for lo in range(0, len(incoming), chunk_rows):
                    self._insert_chunk(con, incoming.iloc[lo : lo + chunk_rows])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        n_removed = sum(map(len, removed.values()))
        log.info(
            "stored %d %s rows of %d tickers in %s%s",
            len(incoming),
            source,
            incoming[ID].nunique(),
            self.path,
            f"; removed {n_removed} stored rows no longer in the source" if n_removed else "",
        )
        return removed

    def _delete_missing(
        self, con: duckdb.DuckDBPyConnection, incoming: pd.DataFrame, source: str
    ) -> dict[str, list[pd.Timestamp]]:
        """Delete (in the caller's transaction) the stored rows of `source` inside each incoming ticker's span that
        `incoming` lacks; returns their dates per ticker."""
        spans = incoming.groupby(ID, sort=True)[DS].agg(span_first="min", span_last="max").reset_index()
        con.register("spans", spans)
        con.register("incoming_keys", incoming[[ID, DS]])
        gone = con.execute(_MISSING, [source]).df()
        if len(gone):
            con.register("gone", gone)
            con.execute(_DELETE_GONE, [source])
            con.unregister("gone")
        # Not in a `finally` (as store.results_store._insert): after a failed statement the transaction is aborted and
        # unregister would raise an error that hides the real one; the connection closes (views gone) anyway.
        con.unregister("spans")
        con.unregister("incoming_keys")
        gone[DS] = pd.to_datetime(gone[DS])
        return {str(uid): list(group[DS]) for uid, group in gone.groupby(ID, sort=True)}

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

    def calendars(self, source: str, tickers: Iterable[str] | None = None) -> dict[str, str]:
        """The stored calendar of each ticker of `source` (all, or those in `tickers`) that has one."""
        if not self.path.exists():
            return {}
        with self._connect() as con:
            rows = con.execute(f"SELECT {ID}, calendar FROM {CALENDARS} WHERE source = ?", [source]).fetchall()
        wanted = None if tickers is None else set(map(str, tickers))
        return {t: c for t, c in rows if wanted is None or t in wanted}

    def save_calendars(self, source: str, chosen: dict[str, tuple[str, str]]) -> None:
        """Keep each ticker's (calendar, how) choice; an explicit --calendar or a new inference replaces the old."""
        if not chosen:
            return
        rows = [(source, t, c, h) for t, (c, h) in sorted(chosen.items())]
        with self._connect() as con:
            con.executemany(
                f"INSERT OR REPLACE INTO {CALENDARS} (source, {ID}, calendar, how, chosen_at) "
                "VALUES (?, ?, ?, ?, CAST(now() AS TIMESTAMP))",
                rows,
            )

    def sources(self) -> list[str]:
        """Sources with stored rows."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            return [r[0] for r in con.execute(f"SELECT DISTINCT source FROM {TABLE} ORDER BY 1").fetchall()]

    def _connect(self, *, verify: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A fresh connection with the table in place, closed afterwards; waits out another writer's lock.

        `verify` (a write's first connection) reads the whole file first: a damaged store is never written to."""
        return locked_connection(
            self.path,
            ddl=_DDL,
            label="price store",
            attempts=self.lock_attempts,
            delay=self.lock_delay,
            sleep=self._sleep,
            verify=verify,
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
