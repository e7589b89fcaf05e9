"""FinanceDataReader: KRX stocks (005930), KRX indices (KS11), FX (USD/KRW) and more, retried on network errors."""

from __future__ import annotations

import importlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import date
from types import ModuleType
from typing import Any

import pandas as pd

from common.redact import redact
from ingest.sources.live import DEFAULT_ATTEMPTS, Failure, fetch_live, http_status, quiet_library_warnings

log = logging.getLogger(__name__)

# FinanceDataReader readers that never look at the HTTP status: they read a 429 or 503 page as "no data".
UNCHECKED_READERS: tuple[str, ...] = ("FinanceDataReader.naver.data",)


def fetch_fdr(
    ticker: str,
    *,
    start: date | None,
    end: date | None,
    allow_empty: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Raw daily bars of one FinanceDataReader symbol between start and end inclusive."""
    return fetch_live(
        ticker,
        source="fdr",
        call=lambda: _data_reader(ticker, start=start, end=end),
        classify=classify_fdr_error,
        start=start,
        end=end,
        allow_empty=allow_empty,
        attempts=attempts,
        sleep=sleep,
    )


def _data_reader(ticker: str, *, start: date | None, end: date | None) -> pd.DataFrame:
    """fdr.DataReader; the library prints some diagnostics, which go to the log instead of the terminal."""
    import FinanceDataReader as fdr

    printed = io.StringIO()
    with redirect_stdout(printed), quiet_library_warnings(), _responses() as responses:
        frame = fdr.DataReader(ticker, start.isoformat() if start else None, end.isoformat() if end else None)
    if printed.getvalue().strip():
        log.info("FinanceDataReader %s: %s", ticker, redact(printed.getvalue().strip()))
    if frame is None or frame.empty:
        _raise_for_swallowed_status(responses)
    return frame


def _raise_for_swallowed_status(responses: list[Any]) -> None:
    """No bars after a 429 or 5xx answer is a rate limit or an outage, not an unknown ticker: raise the HTTP error."""
    import requests

    for response in responses:
        status = getattr(response, "status_code", 200)
        if status == 429 or status >= 500:
            reason = getattr(response, "reason", None) or ""
            url = redact(getattr(response, "url", ""))
            raise requests.HTTPError(f"HTTP {status} {reason} from {url}".replace("  ", " "), response=response)


class _RecordingRequests:
    """Stands in for the `requests` module inside a FinanceDataReader reader: records the responses of `get`.

    Only calls made while `_responses()` is active in the same thread are recorded; otherwise it is transparent.
    """

    def __init__(self, requests_module: ModuleType) -> None:
        self._requests = requests_module
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._requests, name)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        response = self._requests.get(*args, **kwargs)
        seen = getattr(self._local, "seen", None)
        if seen is not None:
            seen.append(response)
        return response


_INSTALL_LOCK = threading.Lock()


@contextmanager
def _responses() -> Iterator[list[Any]]:
    """The responses FinanceDataReader's unchecked readers receive in this thread inside the block."""
    recorders: list[_RecordingRequests] = []
    with _INSTALL_LOCK:
        for name in UNCHECKED_READERS:
            module: Any = importlib.import_module(name)
            if not isinstance(module.requests, _RecordingRequests):
                module.requests = _RecordingRequests(module.requests)
            recorders.append(module.requests)
    seen: list[Any] = []
    for recorder in recorders:
        recorder._local.seen = seen
    try:
        yield seen
    finally:
        for recorder in recorders:
            recorder._local.seen = None


def classify_fdr_error(exc: BaseException) -> Failure:
    """HTTP 404 means an unknown symbol; 429/5xx and connection errors are transient; the rest is fatal."""
    status = http_status(exc)
    if status is not None:
        if status == 404:
            return "unknown"
        return "transient" if status == 429 or status >= 500 else "fatal"
    if isinstance(exc, OSError):  # requests.ConnectionError/Timeout derive from it
        return "transient"
    return "fatal"
