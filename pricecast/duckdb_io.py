"""Short-lived DuckDB connections that wait out another process's write lock (the price and results stores)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pricecast.errors import SourceError

log = logging.getLogger(__name__)


@contextmanager
def locked_connection(
    path: Path,
    *,
    ddl: str,
    label: str,
    attempts: int,
    delay: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh connection with `ddl` applied, closed afterwards.

    DuckDB lets one process write a file at a time; while another holds it, retry with exponential backoff,
    then raise SourceError naming the file (`label` says which store it is).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, label=label, attempts=attempts, delay=delay, sleep=sleep)
    try:
        con.execute(ddl)
        yield con
    finally:
        con.close()


def _open(path: Path, *, label: str, attempts: int, delay: float, sleep: Callable[[float], None]):
    for attempt in range(1, attempts + 1):
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
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
