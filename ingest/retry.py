"""A small pure retry helper: exponential backoff for transient failures, injectable sleep so tests never wait."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from common.redact import redact

T = TypeVar("T")
log = logging.getLogger(__name__)


class RetriesExhausted(Exception):
    """Every attempt failed with a transient error; `__cause__` is the last one."""

    def __init__(self, attempts: int, last: BaseException):
        self.attempts = attempts
        self.last = last
        super().__init__(f"{attempts} attempts failed; last error: {type(last).__name__}: {redact(last)}")


def backoff_delays(*, attempts: int, base: float, factor: float = 2.0, cap: float = 30.0) -> list[float]:
    """Waits between `attempts` tries: base, base*factor, ... capped at `cap` seconds."""
    return [min(cap, base * factor**i) for i in range(max(attempts - 1, 0))]


def retry_call(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 4,
    base_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "call",
) -> T:
    """Call `fn`, retrying transient errors with exponential backoff; other errors propagate at once.

    Raises RetriesExhausted (chained to the last error) when every attempt failed transiently.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    delays = backoff_delays(attempts=attempts, base=base_delay)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise RetriesExhausted(attempts, exc) from exc
            wait = delays[attempt - 1]
            log.warning(
                "%s failed (%s: %s); retry %d/%d in %.1fs",
                what,
                type(exc).__name__,
                redact(exc),
                attempt,
                attempts - 1,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
