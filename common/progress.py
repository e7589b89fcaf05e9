"""Progress of long work (backtest units, forecast units) reported to whoever shows it, in-process.

Flows call `report(...)` as work finishes; the CLI subscribes a rich progress bar with `listening(...)`.
With no listener (deployments, `serve`, tests) a report costs one list lookup. The Prefect UI gets its own
progress artifact from the flow; this hook is only for the terminal of the process running the flow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` items of `stage` finished; `label` names the item that just finished."""

    stage: str
    done: int
    total: int
    label: str = ""


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def report(stage: str, done: int, total: int, label: str = "") -> None:
    """Tell every listener that `done` of `total` items of `stage` are finished (never raises)."""
    with _lock:
        listeners = list(_listeners)
    event = ProgressEvent(stage=stage, done=done, total=total, label=label)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a broken progress display must never fail the work it displays
            log.debug("progress listener %r failed", listener, exc_info=True)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Subscribe `listener` for the duration of the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
