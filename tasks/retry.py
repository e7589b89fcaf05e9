"""Retry conditions: retry what a second attempt can fix (network, locks, crashes), never bad data or config."""

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
    """Prefect retry_condition_fn: only network errors are worth another attempt."""
    return is_network_error(failure_of(state))


def is_task_timeout(exc: BaseException | None) -> bool:
    """Prefect's TaskRunTimeoutError (a TimeoutError, hence an OSError: not to be mistaken for the network)."""
    return exc is not None and type(exc).__name__ == "TaskRunTimeoutError"


def retry_crashes(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry unexpected crashes; not pricecast's own (deterministic) errors, and
    not timeouts - a model that hung once hangs again, and a retry would double the wait."""
    exc = failure_of(state)
    return not isinstance(exc, PricecastError) and not is_task_timeout(exc)
