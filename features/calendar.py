"""Trading calendars: which exchange a ticker trades on, its sessions, future session dates, calendar features.

Future dates come from the exchange's real calendar (exchange-calendars), never from naive business days.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from features.schema import CALENDAR_PREFIX

_CALENDAR_START = "1985-01-01"
_KRX_INDEX = {"KS11", "KQ11", "KS50", "KS100", "KS200", "KRX100", "KQ150"}
_CRYPTO = {"BTC", "ETH", "XRP", "SOL", "DOGE", "ADA", "LTC", "BNB", "DOT", "AVAX", "TRX", "BCH"}
# exchange -> country code for holiday calendars (Prophet holidays).
COUNTRY = {"XNYS": "US", "XNAS": "US", "XKRX": "KR", "24/5": "US", "24/7": "US"}


def exchange_for(ticker: str) -> str:
    """The exchange-calendars name a ticker trades on, inferred from its spelling.

    KRX codes (6 digits, `.KS`/`.KQ`) and KRX indices -> XKRX; crypto (BTC-USD, BTC/KRW) -> 24/7;
    FX (USD/KRW, EURUSD=X) -> 24/5; everything else -> XNYS.
    """
    t = str(ticker).strip().upper()
    base = re.split(r"[-/]", t)[0]
    if re.fullmatch(r"\d{6}", t) or t.endswith((".KS", ".KQ")) or t in _KRX_INDEX:
        return "XKRX"
    if base in _CRYPTO and ("-" in t or "/" in t):
        return "24/7"
    if "/" in t or t.endswith("=X"):
        return "24/5"
    return "XNYS"


@lru_cache(maxsize=16)
def _calendar(exchange: str):
    import exchange_calendars as xc  # 0.5 s import; only callers that need sessions pay it

    try:
        return xc.get_calendar(exchange, start=_CALENDAR_START)
    except ValueError:  # calendars with a later first session (and 24/x ones) keep their own bounds
        return xc.get_calendar(exchange)


def sessions(exchange: str, start, end) -> pd.DatetimeIndex:
    """Trading sessions of `exchange` between start and end inclusive (tz-naive midnights)."""
    cal = _calendar(exchange)
    start = max(pd.Timestamp(start), cal.first_session)
    end = min(pd.Timestamp(end), cal.last_session)
    if start > end:
        return pd.DatetimeIndex([], name="ds")
    return pd.DatetimeIndex(cal.sessions_in_range(start, end).tz_localize(None), name="ds")


def next_sessions(exchange: str, after, n: int) -> pd.DatetimeIndex:
    """The `n` sessions of `exchange` strictly after the date `after`."""
    if n <= 0:
        return pd.DatetimeIndex([], name="ds")
    cal = _calendar(exchange)
    after = pd.Timestamp(after).normalize()
    if after >= cal.last_session:  # beyond the calendar's horizon: fall back to weekdays, say so in docs
        return pd.DatetimeIndex(pd.bdate_range(after + pd.Timedelta(days=1), periods=n), name="ds")
    first = cal.date_to_session(after, direction="next")
    if first == after:
        first = cal.next_session(after)
    out = cal.sessions_window(first, n)
    return pd.DatetimeIndex(out.tz_localize(None), name="ds")


def next_sessions_for(ticker: str, after, n: int) -> pd.DatetimeIndex:
    """The next `n` trading sessions of the ticker's own exchange after `after`."""
    return next_sessions(exchange_for(ticker), after, n)


def calendar_features(ds: pd.DatetimeIndex | pd.Series) -> pd.DataFrame:
    """Calendar features known in advance for any session: day of week, month, month/quarter ends.

    Columns start with `cal_` so models can tell them from features that must be lagged.
    """
    idx = pd.DatetimeIndex(ds)
    p = CALENDAR_PREFIX
    frame = pd.DataFrame(
        {
            f"{p}dow": idx.dayofweek.astype(np.int8),
            f"{p}month": idx.month.astype(np.int8),
            f"{p}dom": idx.day.astype(np.int8),
            f"{p}month_end": idx.is_month_end.astype(np.int8),
            f"{p}quarter_end": idx.is_quarter_end.astype(np.int8),
        },
        index=range(len(idx)),
    )
    return frame
