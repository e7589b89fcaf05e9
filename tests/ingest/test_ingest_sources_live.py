"""yfinance and FinanceDataReader sources, offline: recorded wire responses, the libraries' own parsing, retries."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest
import requests
from ingest_helpers import FIXTURES

from common.errors import DataError, SourceError
from common.schema import ADJ_CLOSE, CLOSE, DS, ID
from ingest.retry import RetriesExhausted, backoff_delays, retry_call
from ingest.sources.fdr import fetch_fdr
from ingest.sources.yahoo import fetch_yahoo
from ingest.spec import SourceSpec
from ingest.validate import validate

# ---------------------------------------------------------------------------------------------- retry helper


class Flaky:
    """Fails `n` times with `exc`, then returns 'ok'."""

    def __init__(self, n: int, exc: BaseException):
        self.n, self.exc, self.calls = n, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.n:
            raise self.exc
        return "ok"


def test_retry_backs_off_exponentially_then_succeeds():
    waits: list[float] = []
    fn = Flaky(2, ConnectionError("reset"))
    assert retry_call(fn, is_transient=lambda e: True, attempts=4, base_delay=0.5, sleep=waits.append) == "ok"
    assert fn.calls == 3 and waits == [0.5, 1.0]
    assert backoff_delays(attempts=5, base=1.0, cap=3.0) == [1.0, 2.0, 3.0, 3.0]


def test_retry_exhausted_and_permanent_errors():
    waits: list[float] = []
    with pytest.raises(RetriesExhausted) as info:
        retry_call(Flaky(9, TimeoutError("slow")), is_transient=lambda e: True, attempts=3, sleep=waits.append)
    assert info.value.attempts == 3 and isinstance(info.value.__cause__, TimeoutError) and len(waits) == 2
    fn = Flaky(9, KeyError("bug"))
    with pytest.raises(KeyError):
        retry_call(fn, is_transient=lambda e: isinstance(e, OSError), sleep=waits.append)
    assert fn.calls == 1


# ---------------------------------------------------------------------------------------------- yfinance


def test_yahoo_recorded_chart_parsed_by_yfinance(yahoo_wire):
    raw = fetch_yahoo("AAPL", start=date(2024, 1, 3), end=date(2024, 1, 10))
    assert raw[ID].unique().tolist() == ["AAPL"] and len(raw) == 6  # 3rd..10th: end is inclusive for us
    assert str(raw[DS].dt.tz) == "America/New_York"  # yfinance's exchange-local midnights
    panel, report = validate(raw, SourceSpec(source="yfinance", tickers=("AAPL",)))
    assert panel[DS].dt.strftime("%Y-%m-%d").tolist()[:2] == ["2024-01-03", "2024-01-04"]
    assert panel[CLOSE].iloc[0] == 184.25 and panel[ADJ_CLOSE].iloc[0] == 183.15
    assert report.tickers["AAPL"].tz_converted == 6 and report.tickers["AAPL"].target == ADJ_CLOSE
    (url, params) = yahoo_wire.calls[-1]
    assert url.endswith("/v8/finance/chart/AAPL") and params["interval"] == "1d"


def test_yahoo_unknown_ticker(yahoo_wire):
    with pytest.raises(DataError, match=r"NOPE: unknown ticker.*yfinance.*'005930\.KS'"):
        fetch_yahoo("NOPE", start=date(2024, 1, 3), end=None, sleep=lambda s: None)


def test_yahoo_retries_network_errors_then_succeeds(yahoo_wire):
    from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
    from yfinance.exceptions import YFRateLimitError

    yahoo_wire.failures = [CurlConnectionError("connection reset"), YFRateLimitError()]
    waits: list[float] = []
    raw = fetch_yahoo("AAPL", start=date(2024, 1, 3), end=date(2024, 1, 5), sleep=waits.append)
    assert len(raw) == 3 and waits == [1.0, 2.0]


def test_yahoo_retries_exhausted_is_source_error_naming_ticker(yahoo_wire):
    from yfinance.exceptions import YFRateLimitError

    yahoo_wire.failures = [YFRateLimitError() for _ in range(10)]
    waits: list[float] = []
    with pytest.raises(SourceError, match=r"yfinance: could not fetch AAPL after 3 attempts.*Rate limited"):
        fetch_yahoo("AAPL", start=date(2024, 1, 3), end=None, attempts=3, sleep=waits.append)
    assert waits == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------- FinanceDataReader


def test_fdr_krx_stock_from_recorded_naver_chart(naver_wire):
    raw = fetch_fdr("005930", start=date(2024, 1, 3), end=date(2024, 1, 10))
    assert raw[ID].unique().tolist() == ["005930"]
    assert raw[DS].min() == pd.Timestamp("2024-01-03") and raw[DS].max() == pd.Timestamp("2024-01-10")
    assert raw[ADJ_CLOSE].isna().all()  # Naver has no adjusted close: target falls back to close
    panel, report = validate(raw, SourceSpec(source="fdr", tickers=("005930",)))
    assert panel[CLOSE].iloc[0] == 77000.0 and report.tickers["005930"].target == CLOSE
    assert "symbol=005930" in naver_wire.request_history[-1].url


def test_fdr_fx_from_recorded_yahoo_chart(naver_wire):
    raw = fetch_fdr("USD/KRW", start=date(2024, 1, 2), end=date(2024, 1, 12))
    panel, report = validate(raw, SourceSpec(source="fdr", tickers=("USD/KRW",)))
    assert len(panel) >= 8 and panel[CLOSE].between(1200, 1400).all()
    assert report.tickers["USD/KRW"].zero_volume_dropped == 0  # FX never reports volume: nothing dropped


def test_fdr_unknown_ticker(naver_wire):
    with pytest.raises(DataError, match=r"999999: unknown ticker.*fdr"):
        fetch_fdr("999999", start=None, end=None)
    with pytest.raises(DataError, match=r"NOPE: unknown ticker"):  # Yahoo-backed symbols answer 404
        fetch_fdr("NOPE", start=date(2024, 1, 2), end=date(2024, 1, 12))


def test_fdr_retries_then_success_and_exhaustion(naver_wire):
    naver = re.compile(r"fchart\.stock\.naver\.com/.*symbol=005930")
    sise = {"content": (FIXTURES / "naver_sise_005930.xml").read_bytes(), "headers": {"Content-Type": "text/xml"}}
    naver_wire.get(
        naver, [{"exc": requests.exceptions.ConnectTimeout}, {"exc": requests.exceptions.ConnectionError}, sise]
    )
    waits: list[float] = []
    raw = fetch_fdr("005930", start=None, end=None, sleep=waits.append)
    assert len(raw) == 9 and waits == [1.0, 2.0]
    naver_wire.get(naver, exc=requests.exceptions.ConnectionError)
    with pytest.raises(SourceError, match=r"fdr: could not fetch 005930 after 2 attempts.*ConnectionError"):
        fetch_fdr("005930", start=None, end=None, attempts=2, sleep=waits.append)


def test_yfinance_own_retries_are_off_during_a_fetch(yahoo_wire, monkeypatch):
    """fetch_live is the one retry layer: yfinance's own network retries (YfConfig) would multiply its attempts."""
    import yfinance.data
    from yfinance.config import YfConfig

    monkeypatch.setattr(YfConfig.network, "retries", 3)  # set by a user or another library in the same process
    seen: list[int] = []

    def get(self, url, params=None, timeout=30):  # a method of YfData: `self` is yfinance's, not the wire's
        seen.append(YfConfig.network.retries)
        return yahoo_wire.get(url, params, timeout)

    monkeypatch.setattr(yfinance.data.YfData, "get", get)
    monkeypatch.setattr(yfinance.data.YfData, "cache_get", get)
    fetch_yahoo("AAPL", start=date(2024, 1, 3), end=date(2024, 1, 5))
    assert seen and set(seen) == {0} and YfConfig.network.retries == 3  # off inside the fetch, restored after
