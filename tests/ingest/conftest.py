"""Ingest fixtures: offline stand-ins for the Yahoo (yfinance) and Naver/Yahoo (FinanceDataReader) HTTP layers."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from ingest_helpers import FIXTURES, YahooWire, chart_between


@pytest.fixture
def yahoo_wire(monkeypatch) -> YahooWire:
    """Route yfinance's HTTP layer to recorded responses; its real parsing code runs on them."""
    import yfinance.cache
    import yfinance.data

    wire = YahooWire()
    monkeypatch.setattr(yfinance.data.YfData, "get", wire.get)
    monkeypatch.setattr(yfinance.data.YfData, "cache_get", wire.get)  # else the lru cache leaks across tests
    monkeypatch.setattr(yfinance.cache, "get_tz_cache", lambda: yfinance.cache._TzCacheDummy())  # no ~/.cache
    return wire


@pytest.fixture
def naver_wire():
    """requests_mock serving the recorded Naver chart (FDR's KRX stock source) and Yahoo chart (FDR's FX source)."""
    import requests_mock

    with requests_mock.Mocker() as mock:
        sise = (FIXTURES / "naver_sise_005930.xml").read_bytes()
        unknown = (FIXTURES / "naver_sise_unknown.xml").read_bytes()
        headers = {"Content-Type": "text/xml;charset=EUC-KR"}
        mock.get(re.compile(r"fchart\.stock\.naver\.com/.*symbol=005930"), content=sise, headers=headers)
        mock.get(re.compile(r"fchart\.stock\.naver\.com/.*symbol=999999"), content=unknown, headers=headers)
        krw = json.loads((FIXTURES / "yahoo_chart_KRW_X.json").read_text())

        def chart(request, context):
            return chart_between(krw, {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()})

        mock.get(re.compile(r"query2\.finance\.yahoo\.com/v8/finance/chart/KRW=X"), json=chart)
        mock.get(re.compile(r"query2\.finance\.yahoo\.com/v8/finance/chart/NOPE"), status_code=404, json={})
        yield mock
