"""Yahoo Finance through the yfinance library: unadjusted OHLC plus Adj Close, retried on network errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pandas as pd

from ingest.sources.live import DEFAULT_ATTEMPTS, Failure, fetch_live, http_status, quiet_library_warnings

_CONFIG_LOCK = threading.Lock()  # yfinance's config is process-global; toggle it for one call at a time


def fetch_yahoo(
    ticker: str,
    *,
    start: date | None,
    end: date | None,
    allow_empty: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Raw daily bars of one Yahoo ticker between start and end inclusive (all history when start is None)."""
    return fetch_live(
        ticker,
        source="yfinance",
        call=lambda: _history(ticker, start=start, end=end),
        classify=classify_yahoo_error,
        start=start,
        end=end,
        allow_empty=allow_empty,
        attempts=attempts,
        sleep=sleep,
    )


def _history(ticker: str, *, start: date | None, end: date | None) -> pd.DataFrame:
    """yf.Ticker.history with raw (unadjusted) prices and Adj Close; Yahoo's `end` is exclusive."""
    import yfinance as yf

    kwargs: dict[str, object] = {"interval": "1d", "auto_adjust": False, "actions": False}
    if start is None:
        kwargs["period"] = "max"
    else:
        kwargs["start"] = start.isoformat()
    if end is not None:
        kwargs["end"] = (end + timedelta(days=1)).isoformat()
    with _exceptions_raised(), quiet_library_warnings():
        return yf.Ticker(ticker).history(**kwargs)


@contextmanager
def _exceptions_raised() -> Iterator[None]:
    """Make yfinance raise instead of logging and returning an empty frame, so a network error is not 'unknown',
    and switch its own network retries off (0 is its default): fetch_live is the one retry layer."""
    from yfinance.config import YfConfig

    with _CONFIG_LOCK:
        before = YfConfig.debug.hide_exceptions, YfConfig.network.retries
        YfConfig.debug.hide_exceptions = False
        YfConfig.network.retries = 0
        try:
            yield
        finally:
            YfConfig.debug.hide_exceptions, YfConfig.network.retries = before


def classify_yahoo_error(exc: BaseException) -> Failure:
    """Rate limits, outages (5xx, an HTML page instead of JSON), network errors: transient; 404: unknown ticker."""
    from yfinance.exceptions import YFDataException, YFRateLimitError, YFTickerMissingError

    if isinstance(exc, YFRateLimitError | YFDataException):
        return "transient"
    if isinstance(exc, YFTickerMissingError):
        return "unknown"
    status = http_status(exc)
    if status is not None:  # Yahoo answers an unknown symbol with 404 (chart and quoteSummary alike)
        if status == 404:
            return "unknown"
        return "transient" if status == 429 or status >= 500 else "fatal"
    if isinstance(exc, OSError):  # requests, curl_cffi, socket and timeout errors all derive from it
        return "transient"
    if isinstance(exc, json.JSONDecodeError):  # an HTML error page (a 5xx from Yahoo or a proxy) instead of JSON
        return "transient"
    return "fatal"
