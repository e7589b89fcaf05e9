"""Ingest test helpers (imported by the tests as `ingest_helpers`): hand-made bars and recorded HTTP responses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from common.schema import ADJ_CLOSE, CLOSE, DS, HIGH, ID, LOW, OPEN, VOLUME

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"


def bars(ticker: str = "AAPL", n: int = 10, *, start: str = "2024-01-02", price: float = 100.0) -> pd.DataFrame:
    """A clean raw frame of `n` weekday bars with gently rising prices, rows numbered 1..n like a file."""
    ds = pd.bdate_range(start, periods=n)
    close = price * np.exp(np.linspace(0.0, 0.05, n))
    frame = pd.DataFrame(
        {
            ID: ticker,
            DS: ds.strftime("%Y-%m-%d"),
            OPEN: close * 0.99,
            HIGH: close * 1.01,
            LOW: close * 0.98,
            CLOSE: close,
            ADJ_CLOSE: close * 0.9,
            VOLUME: np.arange(1, n + 1) * 1000.0,
        }
    )
    frame.index = pd.RangeIndex(1, n + 1)
    return frame


def curl_response(payload: bytes | str | dict, *, status: int = 200, url: str = "") -> object:
    """A real curl_cffi Response (what yfinance's session returns) holding a recorded body."""
    from curl_cffi.requests import Response

    body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    response = Response()
    response.status_code = status
    response.ok = status < 400
    response.reason = "OK" if status < 400 else "Not Found"
    response.content = body.encode() if isinstance(body, str) else body
    response.encoding = "utf-8"
    response.url = url
    return response


def chart_between(payload: dict, params: dict) -> dict:
    """What Yahoo's chart endpoint serves for period1/period2: the recorded bars inside [period1, period2)."""
    if "period1" not in params:
        return payload
    lo, hi = int(params["period1"]), int(params.get("period2") or 2**40)
    out = json.loads(json.dumps(payload))
    result = out["chart"]["result"][0]
    keep = [i for i, t in enumerate(result["timestamp"]) if lo <= t < hi]
    result["timestamp"] = [result["timestamp"][i] for i in keep]
    quote = result["indicators"]["quote"][0]
    for key in quote:
        quote[key] = [quote[key][i] for i in keep]
    for adj in result["indicators"].get("adjclose", []):
        adj["adjclose"] = [adj["adjclose"][i] for i in keep]
    if not keep:  # Yahoo answers an empty range with meta only
        result.pop("timestamp")
        result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    return out


class YahooWire:
    """Stands in for yfinance's YfData.get: serves recorded chart JSON, records every request, can fail on cue."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.failures: list[BaseException] = []  # raised (in order) by the next requests
        self.charts = {"AAPL": json.loads((FIXTURES / "yahoo_chart_AAPL.json").read_text())}
        self.not_found = json.loads((FIXTURES / "yahoo_chart_not_found.json").read_text())

    def get(self, url, params=None, timeout=30):
        params = dict(params or {})
        self.calls.append((url, params))
        if self.failures:
            raise self.failures.pop(0)
        match = re.search(r"/v8/finance/chart/([^/?]+)", url)
        if match and match.group(1) in self.charts:
            return curl_response(chart_between(self.charts[match.group(1)], params), url=url)
        return curl_response(self.not_found, status=404, url=url)

    def history_starts(self) -> list[pd.Timestamp]:
        """period1 of each history request, as New York dates."""
        starts = [p["period1"] for _, p in self.calls if "period1" in p]
        return [pd.Timestamp(s, unit="s", tz="UTC").tz_convert("America/New_York").normalize() for s in starts]
