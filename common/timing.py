"""Wall time that leaves out waits for a shared resource: what a unit's time table should charge it.

Keras keeps its seed and session process-wide, so Keras fits and forward passes are serialised in-process
(models.rnn.training_lock). In a flow whose thread runner runs several Keras units at once, a unit that waited 20 s
for another unit's training did not cost 20 s; charging it would make every network look slower the more of them a
run has. Code that waits for such a resource says so (`waiting()`), and `Stopwatch` measures the wall time of a block
minus the waits its own thread recorded meanwhile. Nothing else is left out: compute, I/O and imports all count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

_local = threading.local()


def waited_seconds() -> float:
    """Seconds this thread has spent in `waiting()` blocks so far."""
    return float(getattr(_local, "waited", 0.0))


@contextmanager
def waiting() -> Iterator[None]:
    """Record the time spent inside as waiting (for a lock another unit holds), not working."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _local.waited = waited_seconds() + time.perf_counter() - started


class Stopwatch:
    """`with Stopwatch() as watch: ...` then `watch.seconds`: wall time minus this thread's recorded waits."""

    seconds: float = 0.0
    waited: float = 0.0

    def __enter__(self) -> Self:
        self._started, self._waited = time.perf_counter(), waited_seconds()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.waited = waited_seconds() - self._waited
        self.seconds = max(time.perf_counter() - self._started - self.waited, 0.0)


@contextmanager
def held(lock: threading.Lock | threading.RLock) -> Iterator[None]:
    """Hold `lock`, the time spent waiting for it recorded as a wait (`waiting`)."""
    with waiting():
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
