"""Short-lived DuckDB connections that wait out another process's write lock and refuse a damaged file (the price
and results stores), and the full-read integrity check behind `pricecast store check`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from common.errors import SourceError, StoreDamagedError

log = logging.getLogger(__name__)

# DuckDB's words for a file it cannot trust: cut short, not a database at all, or a block failing its checksum.
_DAMAGE = (
    (re.compile(r"Could not read enough bytes"), "the file is truncated"),
    (re.compile(r"not a valid DuckDB database file"), "it is not a valid DuckDB database file"),
    (re.compile(r"Corrupt database file.*?(block at location \d+)"), "the {0} fails its checksum"),
    (re.compile(r"Corrupt database file"), "a block fails its checksum"),
)
# "Could not set lock on file", "Conflicting lock is held"; not the "block" of a checksum error.
_LOCK = re.compile(r"\block(s|ed)?\b", re.IGNORECASE)


def is_lock_error(exc: BaseException) -> bool:
    """A DuckDB error saying another process holds the file's lock (worth waiting for, unlike damage)."""
    return type(exc).__module__.startswith(("duckdb", "_duckdb")) and bool(_LOCK.search(str(exc)))


def damage_of(exc: BaseException) -> str | None:
    """What is wrong with the file, when `exc` is DuckDB reporting a damaged file; None for any other error."""
    if not type(exc).__module__.startswith(("duckdb", "_duckdb")):
        return None
    text = str(exc)
    for pattern, what in _DAMAGE:
        found = pattern.search(text)
        if found:
            return what.format(*found.groups())
    return None


def damaged_error(path: Path, label: str, what: str, *, writing: bool = True) -> StoreDamagedError:
    """The one line for a damaged store: the file, what is wrong, and how to recover."""
    stored = "; this run stored nothing in it" if writing else ""
    return StoreDamagedError(
        f"{label} {path} is damaged ({what}){stored}. Move it aside (mv '{path}' "
        f"'{path}.damaged') or restore a backup: re-ingesting rebuilds the prices, stored forecasts and backtest "
        "runs come back only from a backup; `pricecast store check --path FILE` checks a file"
    )


@contextmanager
def locked_connection(
    path: Path,
    *,
    ddl: str,
    label: str,
    attempts: int,
    delay: float,
    sleep: Callable[[float], None] = time.sleep,
    read_only: bool = False,
    verify: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh connection with `ddl` applied (none when read_only), closed afterwards; `verify` first reads every
    table in full (refuse_damaged), so a writer never touches a damaged file, not even with its DDL.

    DuckDB lets one process write a file at a time; while another holds it, retry with exponential backoff,
    then raise SourceError naming the file (`label` says which store it is). A truncated or corrupt file -
    found on opening or by any statement of the caller - raises StoreDamagedError naming the file and the fix.
    """
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, label=label, attempts=attempts, delay=delay, sleep=sleep, read_only=read_only)
    try:
        if verify:
            refuse_damaged(con, path, label=label)
        if ddl and not read_only:
            con.execute(ddl)
        yield con
    except duckdb.Error as exc:
        what = damage_of(exc)
        if what is None:
            raise
        raise damaged_error(path, label, what, writing=not read_only) from exc
    finally:
        con.close()


def _open(
    path: Path, *, label: str, attempts: int, delay: float, sleep: Callable[[float], None], read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    for attempt in range(1, attempts + 1):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            what = damage_of(exc)
            if what is not None:
                raise damaged_error(path, label, what, writing=not read_only) from exc
            if not (isinstance(exc, duckdb.IOException) and is_lock_error(exc)):
                raise
            if attempt == attempts:
                raise SourceError(
                    f"{label} {path} is locked by another process ({exc}); wait for the other run to finish "
                    "or set PRICECAST_STORE to another file"
                ) from exc
            log.warning("%s %s is locked; retry %d/%d in %.1fs", label, path, attempt, attempts - 1, delay)
            sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- integrity check (`pricecast store check`) ----------------------------------------------------------------
@dataclass(frozen=True)
class TableCheck:
    """One table read in full: its row count, or what went wrong reading it."""

    table: str
    rows: int | None
    problem: str | None = None


def check_file(
    path: Path, *, label: str, attempts: int = 6, delay: float = 0.1, sleep: Callable[[float], None] = time.sleep
) -> list[TableCheck]:
    """Open `path` read-only and read every table in full (read_every_table). A file that cannot be opened raises
    StoreDamagedError, a missing one FileNotFoundError."""
    if not path.exists():
        raise FileNotFoundError(f"no {label} at {path}; ingest first or pass --path")
    if not path.is_file():
        raise FileNotFoundError(f"{label} {path} is not a file; pass --path with the store's DuckDB file")
    with locked_connection(
        path, ddl="", label=label, attempts=attempts, delay=delay, sleep=sleep, read_only=True
    ) as con:
        return read_every_table(con)


def refuse_damaged(con: duckdb.DuckDBPyConnection, path: Path, *, label: str) -> None:
    """Raise StoreDamagedError (nothing written yet) when any table of the open file fails a full read."""
    problems = [f"table {c.table}: {c.problem}" for c in read_every_table(con) if c.problem]
    if problems:
        raise damaged_error(path, label, "; ".join(problems))


def read_every_table(con: duckdb.DuckDBPyConnection) -> list[TableCheck]:
    """Read every column of every table of the open file: DuckDB verifies each block's checksum as it reads it
    (it has no PRAGMA integrity_check). One TableCheck per table, with the damage found reading it."""
    sql = (
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_catalog = current_database() ORDER BY table_schema, table_name"
    )
    checks: list[TableCheck] = []
    for schema, table in con.execute(sql).fetchall():
        quoted = ".".join('"' + str(name).replace('"', '""') + '"' for name in (schema, table))
        table = table if schema == "main" else f"{schema}.{table}"
        try:
            # bit_xor(hash(...)) of every column forces a read of every data and validity block of the table.
            row = con.execute(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {quoted}").fetchone()
            checks.append(TableCheck(str(table), int(row[0]) if row else 0))
        except duckdb.Error as exc:
            what = damage_of(exc)
            if what is None:
                raise
            checks.append(TableCheck(str(table), None, what))
    return checks
