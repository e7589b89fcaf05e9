"""Shared fetch logic of the network sources: retries with backoff, unknown-ticker detection, raw conversion."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Literal

import pandas as pd

from common.errors import DataError, SourceError
from common.redact import redact
from ingest.columns import empty_raw, finish_raw, index_datetime, normalise_columns, one_based
from ingest.retry import RetriesExhausted, retry_call

log = logging.getLogger(__name__)

Failure = Literal["transient", "unknown", "fatal"]


class SourceUnavailable(SourceError, ConnectionError):
    """A source kept failing transiently (network error, rate limit, outage) through every retry.

    Also a ConnectionError, so callers classifying failures (tasks.retry_conditions.is_network_error) see a
    network failure, whatever the client raised: yfinance's YFRateLimitError, for one, is no OSError. Nothing
    retries it again: fetch_live is the one retry layer for the network (tasks.ingest's Prefect retries cover
    store locks only).
    """


# Attempts per ticker of the one network retry layer; waits 1, 2, 4 s between them (ingest.retry.backoff_delays).
DEFAULT_ATTEMPTS = 4
HINTS = {
    "yfinance": "Yahoo spells KRX stocks '005930.KS', indices '^KS11', FX 'KRW=X'",
    "fdr": "FinanceDataReader takes KRX codes '005930', indices 'KS11', FX 'USD/KRW'",
}


def fetch_live(
    ticker: str,
    *,
    source: str,
    call: Callable[[], pd.DataFrame | None],
    classify: Callable[[BaseException], Failure],
    start: date | None,
    end: date | None,
    allow_empty: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Run one ticker's client call with retries and return raw bars.

    The only place a network failure is retried (the clients' own retries are off, the Prefect task does not
    retry it again), so `attempts` is the total number of requests a dead endpoint receives per ticker.
    Transient failures that outlast the retries raise SourceError naming the ticker; no bars at all raise DataError
    'unknown ticker' unless `allow_empty` (an incremental fetch over a weekend legitimately finds nothing new).
    """
    try:
        frame = retry_call(
            call,
            is_transient=lambda exc: classify(exc) == "transient",
            attempts=attempts,
            base_delay=base_delay,
            sleep=sleep,
            what=f"{source} {ticker}",
        )
    except RetriesExhausted as exc:
        raise SourceUnavailable(
            f"{source}: could not fetch {ticker} after {exc.attempts} attempts "
            f"({type(exc.last).__name__}: {_short(exc.last)}); check the network or try again later"
        ) from exc.last
    except Exception as exc:
        if classify(exc) != "unknown":
            raise SourceError(f"{source}: fetching {ticker} failed ({type(exc).__name__}: {_short(exc)})") from exc
        log.debug("%s %s: no data (%s)", source, ticker, redact(exc))
        frame = None
    if frame is None or frame.empty:
        if allow_empty:
            return empty_raw()
        raise DataError(
            f"{ticker}: unknown ticker - {source} returned no bars for {start or 'the beginning'} .. {end or 'today'}; "
            f"check the spelling ({HINTS.get(source, '')}) and the date range"
        )
    where = f"{source} {ticker}"
    return finish_raw(normalise_columns(one_based(index_datetime(frame)), where=where), ticker=ticker)


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception's text for one message line: credentials masked, one line, at most `limit` characters."""
    text = " ".join(redact(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by a requests/curl_cffi error, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


@contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Silence pandas deprecation warnings raised inside the client libraries (theirs to fix, not our users')."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        yield
