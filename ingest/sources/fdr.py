"""FinanceDataReader: KRX stocks (005930), KRX indices (KS11), FX (USD/KRW) and more, retried on network errors."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import date

import pandas as pd

from ingest.sources.live import DEFAULT_ATTEMPTS, Failure, fetch_live, http_status, quiet_library_warnings

log = logging.getLogger(__name__)


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
    with redirect_stdout(printed), quiet_library_warnings():
        frame = fdr.DataReader(ticker, start.isoformat() if start else None, end.isoformat() if end else None)
    if printed.getvalue().strip():
        log.info("FinanceDataReader %s: %s", ticker, printed.getvalue().strip())
    return frame


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
