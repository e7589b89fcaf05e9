"""Source failures: network errors and rate limits are retried with backoff, then end in one SourceError naming the
source and the ticker; a partial ingest never leaves half-written bars in the price store. The source's retries are
the only ones for the network: the Prefect ingest task does not retry them again (tests/flows/test_ingest_retries.py).

The store's contract (ingest.load): a live ingest fetches, validates and stores ticker by ticker, one transaction
each, and carries on past a ticker that fails. Every ticker ends either exactly as it was or with all of its new
bars; the error names the failed tickers and the stored ones, and a rerun fetches only what is still missing. A file
ingest is validated whole and stored in one transaction: a bad file stores nothing.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest
import requests

from common.errors import DataError, SourceError
from common.schema import DS, ID
from ingest.load import load_panel
from ingest.price_store import PriceStore
from ingest.sources.fdr import fetch_fdr
from ingest.sources.yahoo import fetch_yahoo
from ingest.spec import SourceSpec
from tasks.retry_conditions import is_network_error, is_store_lock
from tests.ingest.ingest_helpers import FIXTURES, bars

BACKOFF = [1.0, 2.0, 4.0]  # the default 4 attempts wait 1, 2 and 4 seconds between them


def curl_error(message: str) -> BaseException:
    from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError

    return CurlConnectionError(message)


# ---------------------------------------------------------------------------------------------- yfinance


@pytest.mark.parametrize(
    "failure, shown",
    [
        (429, r"YFRateLimitError: Too Many Requests"),  # yfinance turns the status into its rate-limit error
        (503, r"JSONDecodeError"),  # Yahoo's HTML outage page instead of JSON
        (500, r"JSONDecodeError"),
        ("reset", r"ConnectionError: Connection reset by peer"),
    ],
    ids=["http-429", "http-503", "http-500", "connection-reset"],
)
def test_yahoo_failures_are_retried_with_backoff_then_a_source_error(yahoo_http, failure, shown):
    yahoo_http.down["AAPL"] = curl_error("Connection reset by peer") if failure == "reset" else failure
    waits: list[float] = []
    with pytest.raises(SourceError) as info:
        fetch_yahoo("AAPL", start=date(2024, 1, 3), end=date(2024, 1, 5), sleep=waits.append)
    assert waits == BACKOFF
    message = str(info.value)
    assert re.match(rf"yfinance: could not fetch AAPL after 4 attempts \({shown}", message), message
    assert message.endswith("check the network or try again later")
    assert is_network_error(info.value)  # tasks.retry_conditions classifies it as transient ...
    assert not is_store_lock(info.value)  # ... and the ingest task does not retry it again: fetch_live already did


def test_yahoo_rate_limit_that_clears_is_fetched_on_a_later_attempt(yahoo_http):
    yahoo_http.down["AAPL"] = 429
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the rate limit lifts during the second wait
            yahoo_http.down.clear()

    raw = fetch_yahoo("AAPL", start=date(2024, 1, 3), end=date(2024, 1, 5), sleep=sleep)
    assert len(raw) == 3 and waits == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------- FinanceDataReader

NAVER = re.compile(r"fchart\.stock\.naver\.com/.*symbol=005930")
SISE = {"content": (FIXTURES / "naver_sise_005930.xml").read_bytes(), "headers": {"Content-Type": "text/xml"}}


@pytest.mark.parametrize(
    "response, shown",
    [
        ({"status_code": 429, "text": "Too Many Requests"}, r"HTTPError: HTTP 429 from https://fchart\.stock\.naver"),
        ({"status_code": 503, "text": "<html>busy</html>"}, r"HTTPError: HTTP 503 from https://fchart\.stock\.naver"),
        ({"exc": requests.exceptions.ConnectTimeout}, r"ConnectTimeout"),
    ],
    ids=["naver-429", "naver-503", "naver-timeout"],
)
def test_fdr_failures_are_retried_with_backoff_then_a_source_error(naver_http, response, shown):
    # FinanceDataReader's Naver reader never checks the status: without ingest.sources.fdr's check a 429 page
    # read as "no data" and was reported as an unknown ticker, and never retried.
    naver_http.get(NAVER, **response)
    waits: list[float] = []
    with pytest.raises(SourceError) as info:
        fetch_fdr("005930", start=None, end=None, sleep=waits.append)
    assert waits == BACKOFF
    assert re.match(rf"fdr: could not fetch 005930 after 4 attempts \({shown}", str(info.value)), str(info.value)
    assert is_network_error(info.value) and not is_store_lock(info.value)


def test_fdr_rate_limit_that_clears_is_fetched_on_a_later_attempt(naver_http):
    naver_http.get(NAVER, [{"status_code": 429, "text": "Too Many Requests"}] * 2 + [SISE])
    waits: list[float] = []
    raw = fetch_fdr("005930", start=None, end=None, sleep=waits.append)
    assert len(raw) == 9 and waits == [1.0, 2.0]


def test_fdr_fx_rate_limit_through_yahoo_is_retried(naver_http):
    naver_http.get(re.compile(r"query2\.finance\.yahoo\.com/v8/finance/chart/KRW=X"), status_code=429)
    waits: list[float] = []
    with pytest.raises(SourceError, match=r"fdr: could not fetch USD/KRW after 4 attempts \(HTTPError: 429"):
        fetch_fdr("USD/KRW", start=date(2024, 1, 2), end=date(2024, 1, 12), sleep=waits.append)
    assert waits == BACKOFF


def test_unknown_ticker_is_not_retried(naver_http):
    naver_http.get(re.compile(r"fchart\.stock\.naver\.com/.*symbol=999999"), content=b"<chartdata></chartdata>")
    waits: list[float] = []
    with pytest.raises(DataError, match=r"999999: unknown ticker - fdr returned no bars"):
        fetch_fdr("999999", start=None, end=None, sleep=waits.append)
    assert waits == []


# ---------------------------------------------------------------------------------------------- partial ingests


def yahoo(end: str, tickers: tuple[str, ...] = ("AAPL", "MSFT", "IBM")) -> SourceSpec:
    return SourceSpec(source="yfinance", tickers=tickers, start=date(2024, 1, 2), end=date.fromisoformat(end))


def rows_of(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return frame[frame[ID] == ticker].reset_index(drop=True)


def test_ticker_2_of_3_failing_leaves_it_as_before_and_stores_the_others(yahoo_http, tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    load_panel(yahoo("2024-01-08"), store=store)
    before = store.read("yfinance")
    assert before.groupby(ID)[DS].max().eq(pd.Timestamp("2024-01-08")).all()

    yahoo_http.down["MSFT"] = 429  # rate limited on every attempt of the next day's ingest
    waits: list[float] = []
    with pytest.raises(SourceError) as info:
        load_panel(yahoo("2024-01-12"), store=store, sleep=waits.append)
    assert re.match(
        r"yfinance: could not fetch MSFT after 4 attempts \(YFRateLimitError: .*\); check the network or try again "
        r"later; stored the other 2: AAPL, IBM; a rerun fetches only what is missing$",
        str(info.value),
    ), str(info.value)
    assert waits == BACKOFF and is_network_error(info.value)  # transient: a later run fetches it
    assert not is_store_lock(info.value)  # but the Prefect task does not retry it again (one retry layer)
    after = store.read("yfinance")
    pd.testing.assert_frame_equal(rows_of(after, "MSFT"), rows_of(before, "MSFT"))  # exactly as before
    for ticker in ("AAPL", "IBM"):  # complete through the 12th, never half of the new bars
        assert rows_of(after, ticker)[DS].dt.strftime("%m-%d").tolist()[-4:] == ["01-09", "01-10", "01-11", "01-12"]
        assert len(rows_of(after, ticker)) == 9

    yahoo_http.down.clear()
    yahoo_http.calls.clear()
    panel, report = load_panel(yahoo("2024-01-12"), store=store)
    assert yahoo_http.symbols() == ["MSFT"]  # the rerun fetches only what is missing
    assert panel.groupby(ID).size().to_dict() == {"AAPL": 9, "IBM": 9, "MSFT": 9}
    assert report.tickers["MSFT"].rows_in == 4 and report.tickers["AAPL"].rows_in == 0


def test_several_failures_are_named_together_and_bad_data_is_not_retried(yahoo_http, tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    yahoo_http.down["MSFT"] = curl_error("Connection reset by peer")
    waits: list[float] = []
    with pytest.raises(DataError) as info:  # NOPE will not improve on a retry: a DataError, not retried
        load_panel(yahoo("2024-01-12", ("AAPL", "MSFT", "NOPE")), store=store, sleep=waits.append)
    assert re.match(
        r"yfinance: 2 tickers failed \(MSFT, NOPE\); stored the other 1: AAPL; a rerun fetches only what is missing\. "
        r"MSFT: yfinance: could not fetch MSFT after 4 attempts .*; NOPE: NOPE: unknown ticker",
        str(info.value),
    ), str(info.value)
    assert not is_network_error(info.value)
    assert store.read("yfinance")[ID].unique().tolist() == ["AAPL"]


def test_a_store_failure_mid_ingest_stops_at_once_and_keeps_complete_tickers(yahoo_http, tmp_path, monkeypatch):
    store = PriceStore(tmp_path / "p.duckdb")
    load_panel(yahoo("2024-01-08"), store=store)
    before = store.read("yfinance")
    real = PriceStore.upsert

    def disk_full_on_msft(self, frame, source, **kw):
        if "MSFT" in set(frame[ID]):
            raise OSError(28, "No space left on device")
        return real(self, frame, source, **kw)

    monkeypatch.setattr(PriceStore, "upsert", disk_full_on_msft)
    with pytest.raises(OSError, match="No space left"):
        load_panel(yahoo("2024-01-12"), store=store)
    after = store.read("yfinance")
    assert len(rows_of(after, "AAPL")) == 9  # stored before the failure, complete
    for ticker in ("MSFT", "IBM"):  # the failing one and the one never reached: as before
        pd.testing.assert_frame_equal(rows_of(after, ticker), rows_of(before, ticker))


def test_a_file_ingest_with_one_bad_file_stores_nothing(tmp_path):
    folder = tmp_path / "prices"
    folder.mkdir()
    bars("AAPL", 10).drop(columns=[ID]).to_csv(folder / "AAPL.csv", index=False)
    bad = bars("IBM", 10).drop(columns=[ID]).astype({"close": object})
    bad.loc[4, "close"] = "n.a."
    bad.to_csv(folder / "IBM.csv", index=False)
    store = PriceStore(tmp_path / "p.duckdb")
    with pytest.raises(DataError, match=r"IBM: column 'close' has 1 non-numeric values: row 4"):
        load_panel(SourceSpec(source="csv", path=folder), store=store)
    assert store.read("csv").empty
