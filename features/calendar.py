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

    KRX codes (6 digits, `.KS`/`.KQ`) and KRX indices (with or without `^`) -> XKRX; crypto (BTC-USD, BTC/KRW) -> 24/7;
    FX (USD/KRW, EURUSD=X) -> 24/5; everything else -> XNYS.
    """
    t = str(ticker).strip().upper().lstrip("^")  # Yahoo spells indices ^KS11
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
    """The `n` sessions of `exchange` strictly after the date `after` (tz-naive midnights, ns resolution).

    Dates outside the calendar's bounds (before its first or after its last session, about one year ahead)
    fall back to weekdays, so a horizon that straddles the calendar's end still gets `n` dates.
    """
    if n <= 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name="ds")
    cal = _calendar(exchange)
    after = pd.Timestamp(after)
    if after.tz is not None:  # a session is a local date: keep the wall-clock date, drop the zone
        after = after.tz_localize(None)
    after = after.normalize()
    first, last = cal.first_session, cal.last_session
    parts = []
    if after < first - pd.Timedelta(days=1):  # before the calendar starts: weekdays up to its first session
        parts.append(pd.bdate_range(after + pd.Timedelta(days=1), first - pd.Timedelta(days=1)))
    if after < last:
        start = max(after + pd.Timedelta(days=1), first)
        parts.append(cal.sessions_in_range(start, min(last, start + pd.Timedelta(days=7 * n + 31))))
    got = sum(len(p) for p in parts)
    if got < n:  # beyond the calendar's horizon: weekdays after its last session (or after `after`)
        parts.append(pd.bdate_range(max(after, last) + pd.Timedelta(days=1), periods=n - got))
    out = pd.DatetimeIndex(np.concatenate([pd.DatetimeIndex(p).tz_localize(None).as_unit("ns").values for p in parts]))
    return pd.DatetimeIndex(out[:n], name="ds")


def next_sessions_for(ticker: str, after, n: int) -> pd.DatetimeIndex:
    """The next `n` trading sessions of the ticker's own exchange after `after`."""
    return next_sessions(exchange_for(ticker), after, n)


def calendar_features(ds: pd.DatetimeIndex | pd.Series) -> pd.DataFrame:
    """Calendar features known in advance for any session: day of week, month, month/quarter ends.

    Columns start with `cal_` so models can tell them from features that must be lagged. Month/quarter ends flag
    the period's last weekday (the usual last session, whatever day the month ends on); exchange holidays are
    ignored so the flag depends on the date alone. The frame has a RangeIndex: align by position.
    """
    idx = pd.DatetimeIndex(ds)
    dow = idx.day_of_week
    # Next weekday: +3 days from a Friday, +1 otherwise (weekend dates are never the last weekday).
    next_weekday = idx + pd.to_timedelta(np.where(dow == 4, 3, 1), unit="D")
    weekday = dow < 5
    p = CALENDAR_PREFIX
    frame = pd.DataFrame(
        {
            f"{p}dow": dow.astype(np.int8),
            f"{p}month": idx.month.astype(np.int8),
            f"{p}dom": idx.day.astype(np.int8),
            f"{p}month_end": (weekday & (next_weekday.month != idx.month)).astype(np.int8),
            f"{p}quarter_end": (weekday & (next_weekday.quarter != idx.quarter)).astype(np.int8),
        },
        index=range(len(idx)),
    )
    return frame


CALENDAR_COLUMNS: tuple[str, ...] = tuple(calendar_features(pd.DatetimeIndex([])).columns)
