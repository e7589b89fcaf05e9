"""One retry layer for the network: a live source is retried by ingest.sources.live.fetch_live, never again by the
Prefect ingest task, which retries only a store lock.

Counted on the wire: requests_mock serves FinanceDataReader's Naver reader (KRX stocks, one HTTP request per attempt)
and its Yahoo reader (symbols outside KRX), so `len(wire.request_history)` is how often the endpoint was hit. Before
this, a dead endpoint got DEFAULT_ATTEMPTS x 4 task runs = 16 requests per ticker, and a 403 was retried by Prefect.
Backoff waits are recorded, not slept: the task's load_panel gets a `sleep` that appends to a list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pytest
import requests

from common.errors import DataError, SourceError
from common.schema import ID
from ingest.load import load_panel
from ingest.sources.live import DEFAULT_ATTEMPTS, SourceUnavailable
from ingest.spec import SourceSpec
from tests.ingest.ingest_helpers import FIXTURES

NAVER = re.compile(r"fchart\.stock\.naver\.com/.*symbol=005930")
YAHOO_NOPE = re.compile(r"query2\.finance\.yahoo\.com/v8/finance/chart/NOPE")
SISE = {"content": (FIXTURES / "naver_sise_005930.xml").read_bytes(), "headers": {"Content-Type": "text/xml"}}
BUSY = {"status_code": 503, "text": "<html>busy</html>"}
BACKOFF = [1.0, 2.0, 4.0]  # fetch_live's waits between its DEFAULT_ATTEMPTS tries


def krx(ticker: str = "005930") -> SourceSpec:
    return SourceSpec(source="fdr", tickers=(ticker,))


def nope() -> SourceSpec:  # not a KRX code: FinanceDataReader asks Yahoo, which answers 404 or 403 as mocked
    return SourceSpec(source="fdr", tickers=("NOPE",), start=date(2024, 1, 2), end=date(2024, 1, 12))


@pytest.fixture
def wire() -> Iterator[Any]:
    import requests_mock

    with requests_mock.Mocker() as mock:
        yield mock


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The backoff waits of the ingest task's fetches, recorded instead of slept."""
    import tasks.ingest

    recorded: list[float] = []
    monkeypatch.setattr(tasks.ingest, "load_panel", functools.partial(load_panel, sleep=recorded.append))
    return recorded


def lock_error() -> SourceError:
    """What PriceStore raises once its own lock wait ran out: a SourceError caused by DuckDB's lock error."""
    import duckdb

    error = SourceError("price store p.duckdb is locked by another process; wait for the other run to finish")
    error.__cause__ = duckdb.IOException('IO Error: Could not set lock on file "p.duckdb": Conflicting lock is held')
    return error


# ---------------------------------------------------------------------------------------------- the task's function


def test_a_source_that_always_fails_is_called_attempts_times_in_total(wire, waits, tmp_path):
    from prefect.states import Failed

    from tasks.ingest import ingest_prices

    wire.get(NAVER, **BUSY)
    with pytest.raises(SourceUnavailable, match=r"fdr: could not fetch 005930 after 4 attempts \(HTTPError: HTTP 503"):
        ingest_prices.fn(krx(), str(tmp_path / "p.duckdb"))
    assert len(wire.request_history) == DEFAULT_ATTEMPTS == 4 and waits == BACKOFF
    # ... and Prefect would not run the task again: its retry condition declines what fetch_live gave up on.
    exc = pytest.raises(SourceUnavailable, ingest_prices.fn, krx(), str(tmp_path / "p.duckdb")).value
    assert ingest_prices.retry_condition_fn is not None
    assert not ingest_prices.retry_condition_fn(ingest_prices, None, Failed(data=exc))


def test_a_source_that_fails_once_then_answers_gives_the_data(wire, waits, tmp_path):
    from tasks.ingest import ingest_prices

    wire.get(NAVER, [{"exc": requests.exceptions.ConnectTimeout}, SISE])
    panel, report = ingest_prices.fn(krx(), str(tmp_path / "p.duckdb"))
    assert len(wire.request_history) == 2 and waits == [1.0]
    assert panel[ID].unique().tolist() == ["005930"] and len(panel) == 9 and report.tickers["005930"].rows_in == 9


@pytest.mark.parametrize(
    "response, error, shown",
    [
        ({"status_code": 404, "json": {}}, DataError, r"NOPE: unknown ticker - fdr returned no bars"),
        ({"status_code": 403, "json": {}}, SourceError, r"fdr: fetching NOPE failed \(HTTPError: 403"),
    ],
    ids=["http-404-unknown-ticker", "http-403-forbidden"],
)
def test_a_non_transient_error_is_not_retried_at_all(wire, waits, tmp_path, response, error, shown):
    from prefect.states import Failed

    from tasks.ingest import ingest_prices

    wire.get(YAHOO_NOPE, **response)
    with pytest.raises(error, match=shown) as info:
        ingest_prices.fn(nope(), str(tmp_path / "p.duckdb"))
    assert len(wire.request_history) == 1 and waits == []
    assert ingest_prices.retry_condition_fn is not None
    assert not ingest_prices.retry_condition_fn(ingest_prices, None, Failed(data=info.value))


def test_the_ingest_task_retries_store_locks_only():
    from prefect.states import Completed, Failed

    from tasks.retry_conditions import is_network_error, is_store_lock, retry_store_locks

    locked = lock_error()
    assert is_store_lock(locked) and is_store_lock(locked.__cause__) and is_network_error(locked)
    assert retry_store_locks(None, None, Failed(data=locked))
    for exc in (SourceUnavailable("fdr: could not fetch 005930 after 4 attempts"), ConnectionError("reset")):
        assert is_network_error(exc) and not retry_store_locks(None, None, Failed(data=exc))
    damaged = SourceError("price store p.duckdb is damaged (a block fails its checksum)")
    assert not retry_store_locks(None, None, Failed(data=damaged)) and not retry_store_locks(None, None, Completed())


# ---------------------------------------------------------------------------------------------- through Prefect


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_through_the_flow_a_dead_endpoint_is_hit_attempts_times_not_attempts_times_task_retries(
    prefect_server, wire, waits
):
    from flows.ingest import ingest_flow

    wire.get(NAVER, **BUSY)
    with pytest.raises(SourceUnavailable, match=r"after 4 attempts"):
        ingest_flow(source=krx())
    assert len(wire.request_history) == DEFAULT_ATTEMPTS and waits == BACKOFF  # 16 and 4 x BACKOFF before

    wire.reset_mock()
    waits.clear()
    wire.get(YAHOO_NOPE, status_code=403, json={})  # fatal: neither layer retries it
    with pytest.raises(SourceError, match=r"fetching NOPE failed \(HTTPError: 403"):
        ingest_flow(source=nope())
    assert len(wire.request_history) == 1 and waits == []

    wire.reset_mock()
    wire.get(NAVER, [BUSY, SISE])  # one transient failure, then the data
    assert ingest_flow(source=krx()) == {"005930": 9}
    assert len(wire.request_history) == 2 and waits == [1.0]


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_through_prefect_a_store_lock_is_still_retried_by_the_task(prefect_server, monkeypatch, tmp_path):
    from prefect import flow

    import tasks.ingest

    calls: list[int] = []

    def locked_once(spec: SourceSpec, **kwargs: Any) -> tuple[pd.DataFrame, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise lock_error()
        return load_panel(spec, **kwargs)

    monkeypatch.setattr(tasks.ingest, "load_panel", locked_once)
    quick = tasks.ingest.ingest_prices.with_options(retry_delay_seconds=0)  # the task's retries, without the waits

    @flow
    def ingest_once(store_file: str) -> int:
        panel, _ = quick(SourceSpec(source="sample", tickers=("AAPL",), start=date(2012, 1, 1)), store_file)
        return len(panel)

    assert ingest_once(str(tmp_path / "p.duckdb")) > 250 and len(calls) == 2
