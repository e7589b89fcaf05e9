"""Retry conditions: retry what a second attempt can fix (network, locks, crashes), never bad data or config.

One layer per failure: a condition here must not retry what the code below the task already retried. Network
errors of the live sources are retried by the source itself (ingest.sources.live.fetch_live), so the ingest task
retries only a store lock (retry_store_locks), never the network again.
"""

from __future__ import annotations

from typing import Any

from common.duckdb_io import is_lock_error
from common.errors import ConfigError, DataError, PricecastError

# OSErrors that another attempt will not fix.
_PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def failure_of(state: Any) -> BaseException | None:
    """The exception a failed Prefect state holds, if any."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - we only classify it
        return exc
    return None


def is_network_error(exc: BaseException | None) -> bool:
    """A connection/timeout/HTTP failure or a store lock, directly or as the cause of a SourceError.

    The live sources wrap the network error they gave up on (`raise SourceError(...) from exc`), so the cause
    says what happened; a SourceError without a cause (a missing file) is permanent.
    """
    for err in (exc, getattr(exc, "__cause__", None)):
        if err is None or isinstance(err, (DataError, ConfigError, *_PERMANENT_OS)):
            continue
        if isinstance(err, OSError):  # ConnectionError, TimeoutError, requests/urllib3/curl errors
            return True
        if is_lock_error(err):  # not a damaged file's "checksum ... in block": that never improves
            return True
    return False


def retry_network_errors(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: only network errors (or store locks) are worth another attempt.

    For tasks whose code does not retry the network itself; not the ingest task (see retry_store_locks).
    """
    return is_network_error(failure_of(state))


def is_store_lock(exc: BaseException | None) -> bool:
    """A DuckDB file lock held by another process, directly or as the cause of the SourceError a store raises
    once its own short wait (common.duckdb_io.locked_connection) ran out."""
    return any(err is not None and is_lock_error(err) for err in (exc, getattr(exc, "__cause__", None)))


def retry_store_locks(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn of the ingest task: only a store lock outlasting the store's own wait.

    Not network errors: ingest.sources.live.fetch_live has retried those already (a SourceUnavailable means its
    attempts ran out; retrying the task again would hit a dead endpoint attempts x retries times).
    """
    return is_store_lock(failure_of(state))


def is_task_timeout(exc: BaseException | None) -> bool:
    """Prefect's TaskRunTimeoutError (a TimeoutError, hence an OSError: not to be mistaken for the network)."""
    return exc is not None and type(exc).__name__ == "TaskRunTimeoutError"


def retry_crashes(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry unexpected crashes; not pricecast's own (deterministic) errors, and
    not timeouts - a model that hung once hangs again, and a retry would double the wait."""
    exc = failure_of(state)
    return not isinstance(exc, PricecastError) and not is_task_timeout(exc)
