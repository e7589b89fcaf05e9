"""Offline stand-ins one level below tests/ingest's: yfinance's HTTP session itself and FinanceDataReader's requests.

tests/ingest replaces yfinance's YfData.get and raises yfinance's own exceptions; here the session answers with HTTP
statuses (429, 503) and dropped connections, so yfinance's own status handling runs too (429 -> YFRateLimitError).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator

import pytest

from tests.ingest.ingest_helpers import FIXTURES, YahooWire, curl_response

CHART = re.compile(r"/v8/finance/chart/([^/?]+)")


class YahooHTTP:
    """yfinance's HTTP session: recorded charts for `symbols` (AAPL's bars under each name), or a failure on cue.

    `down[symbol]` is what every request for that symbol gets until it is removed: an HTTP status (answered with
    Yahoo's plain-text or HTML error page) or an exception instance (raised, as curl_cffi raises network errors).
    """

    def __init__(self, symbols: tuple[str, ...] = ("AAPL", "MSFT", "IBM")) -> None:
        self.wire = YahooWire()
        for symbol in symbols:
            chart = copy.deepcopy(self.wire.charts["AAPL"])
            chart["chart"]["result"][0]["meta"]["symbol"] = symbol
            self.wire.charts[symbol] = chart
        self.down: dict[str, int | BaseException] = {}
        self.calls: list[str] = []
        self.cookies = _Jar()
        self.proxies: dict = {}

    def get(self, url, params=None, timeout=30, **kwargs):
        match = CHART.search(url)
        symbol = match.group(1) if match else ""
        self.calls.append(symbol)
        failure = self.down.get(symbol)
        if isinstance(failure, BaseException):
            raise failure
        if isinstance(failure, int):
            body = "Too Many Requests" if failure == 429 else "<html><body>Service Unavailable</body></html>"
            return curl_response(body, status=failure, url=url)
        return self.wire.get(url, params)

    def symbols(self) -> list[str]:
        """Symbols requested, in order, without repeats of one fetch (a fetch asks for the time zone, then bars)."""
        return list(dict.fromkeys(self.calls))


class _Jar:
    def clear(self) -> None:
        pass

    def update(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def yahoo_http(monkeypatch) -> Iterator[YahooHTTP]:
    """Route yfinance's session to a YahooHTTP; yfinance's request, status and parsing code all run."""
    import yfinance.cache
    import yfinance.data
    from yfinance.config import YfConfig

    http = YahooHTTP()
    data = yfinance.data.YfData()
    monkeypatch.setattr(data, "_session", http)
    monkeypatch.setattr(data, "_cookie_strategy", data._cookie_strategy)  # a 4xx toggles it: restored afterwards
    monkeypatch.setattr(
        yfinance.data.YfData, "cache_get", lambda self, url, params=None, timeout=30: self.get(url, params, timeout)
    )
    # The cookie/crumb handshake is its own endpoint (and yfinance carries on without a crumb when it fails).
    monkeypatch.setattr(yfinance.data.YfData, "_get_cookie_and_crumb", lambda self, timeout=30: (None, "basic"))
    monkeypatch.setattr(yfinance.cache, "get_tz_cache", lambda: yfinance.cache._TzCacheDummy())
    monkeypatch.setattr(YfConfig.network, "retries", 0)  # yfinance's own retries would sleep for real
    yield http


@pytest.fixture
def naver_http() -> Iterator[object]:
    """requests_mock with FinanceDataReader's KRX stock source (Naver) for 005930 and 000660 (the same bars)."""
    import requests_mock

    sise = (FIXTURES / "naver_sise_005930.xml").read_bytes()
    with requests_mock.Mocker() as mock:
        for code in ("005930", "000660"):
            mock.get(
                re.compile(rf"fchart\.stock\.naver\.com/.*symbol={code}"),
                content=sise,
                headers={"Content-Type": "text/xml;charset=EUC-KR"},
            )
        yield mock
