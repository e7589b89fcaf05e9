"""Frames to stored rows and back: the run id in front, DATE columns cast on insert and read back as Timestamps.

Shared by every table of store.results_store.ResultStore (price runs, event runs, live forecasts, champions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from common.schema import (
    AS_OF,
    CREATED_AT,
    CUTOFF,
    DS,
    ID,
    LAST_AS_OF,
    META,
    MODEL,
    MODELS,
    RUN_ID,
    TICKERS,
    TRAIN_END,
    TRAIN_START,
)

# Columns stored as DATE: cast on insert, read back as Timestamps.
DATES = (AS_OF, DS, CUTOFF, TRAIN_START, TRAIN_END)


def with_run(frame: pd.DataFrame, flow_run_id: str) -> pd.DataFrame:
    """`frame` with the run id as its first column and its DATES columns as datetime64[ns] (a fresh index)."""
    out = frame.copy()
    out.insert(0, RUN_ID, str(flow_run_id))
    for col in DATES:
        if col in out.columns:
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    return out.reset_index(drop=True)


def insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, *, extra: str = "") -> None:
    """Append `frame` to `table` by column name (DATES cast to DATE); `extra` is a created_at SELECT term."""
    if frame.empty:
        return
    cols = list(frame.columns)
    select = ", ".join(f'CAST("{c}" AS DATE)' if c in DATES else f'"{c}"' for c in cols)
    names = ", ".join(f'"{c}"' for c in cols + ([CREATED_AT] if extra else []))
    con.register("incoming", frame)
    con.execute(f"INSERT INTO {table} ({names}) SELECT {select}{', ' + extra if extra else ''} FROM incoming")
    # Not in a `finally`: after a failed INSERT the transaction is aborted and unregister would raise a
    # TransactionException that hides the real error; the connection is closed (and the view gone) anyway.
    con.unregister("incoming")


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The single integer a `SELECT count(*)` returns (0 without a row)."""
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store holds a table `name` (the prices table exists only once ingest has written it)."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def dated(frame: pd.DataFrame) -> pd.DataFrame:
    """A read-back frame with its date columns as Timestamps (DuckDB returns DATE as datetime.date), in place."""
    for col in (*DATES, LAST_AS_OF):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    return frame


def run_row(
    flow_run_id: str, meta: Mapping[str, Any], rows: pd.DataFrame, *, sort_keys: bool = True, **counts: Any
) -> pd.DataFrame:
    """A run's row: id, created_at (meta's, else now), the tickers and models of `rows`, `counts`, meta as JSON."""
    return pd.DataFrame(
        {
            RUN_ID: [flow_run_id],
            CREATED_AT: [pd.Timestamp(meta.get("created_at") or pd.Timestamp.now(tz="UTC")).tz_localize(None)],
            TICKERS: [",".join(sorted(map(str, rows[ID].unique())))],
            MODELS: [",".join(sorted(map(str, rows[MODEL].unique())))],
            **{name: [value] for name, value in counts.items()},
            META: [json.dumps(dict(meta), sort_keys=sort_keys, default=str)],
        }
    )
