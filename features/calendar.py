"""Trading calendars: which exchange a ticker trades on, its sessions, future session dates, calendar features.

Future dates come from the exchange's real calendar (exchange-calendars), never from naive business days.

Which calendar a ticker gets, in order: the run's `--calendar` choice (`SourceSpec.calendars`), the choice stored
with its prices by an earlier ingest, then its spelling (`infer_calendar`): a Yahoo exchange suffix (`SEGA.L` ->
XLON), a KRX code, a crypto pair (24/7), an FX pair (24/5), and XNYS for a plain symbol, which is reported as an
assumption ("no exchange suffix: US listing assumed"). An exchange suffix we do not know is refused at ingest, never
guessed. The chosen name travels with the data to the models (`Forecaster.fit(calendar=...)`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd

from common.errors import ConfigError
from common.schema import CALENDAR_PREFIX

if TYPE_CHECKING:  # annotations only: exchange_calendars takes 0.5 s to import
    from exchange_calendars import ExchangeCalendar

# A date as callers pass it: '2024-01-02', a datetime.date, a numpy datetime64 or a pandas Timestamp.
DateLike: TypeAlias = str | date | np.datetime64 | pd.Timestamp

_CALENDAR_START = "1985-01-01"
_KRX_INDEX = {"KS11", "KQ11", "KS50", "KS100", "KS200", "KRX100", "KQ150"}
_CRYPTO = {"BTC", "ETH", "XRP", "SOL", "DOGE", "ADA", "LTC", "BNB", "DOT", "AVAX", "TRX", "BCH"}
_CRYPTO_PAIR = rf"({'|'.join(sorted(_CRYPTO))})(USDT|USDC|USD|BUSD|KRW|EUR|BTC|ETH)"  # Binance style: BTCUSDT
ALWAYS_OPEN = ("24/7", "24/5")  # every day / every weekday (crypto, FX); no holidays
# Yahoo Finance exchange suffixes -> exchange-calendars names (every name checked against get_calendar_names()).
SUFFIX_CALENDARS: dict[str, str] = {
    "L": "XLON", "IL": "XLON", "T": "XTKS", "HK": "XHKG", "DE": "XETR", "F": "XFRA", "BE": "XETR", "DU": "XETR",
    "HM": "XETR", "MU": "XETR", "SG": "XETR", "PA": "XPAR", "AS": "XAMS", "BR": "XBRU", "LS": "XLIS", "SW": "XSWX",
    "TO": "XTSE", "V": "XTSX", "CN": "XTSE", "NE": "XTSE", "AX": "XASX", "SS": "XSHG", "SZ": "XSHG", "NS": "XBOM",
    "BO": "XBOM", "MI": "XMIL", "MC": "XMAD", "ST": "XSTO", "OL": "XOSL", "CO": "XCSE", "HE": "XHEL", "IR": "XDUB",
    "VI": "XWBO", "WA": "XWAR", "SA": "BVMF", "MX": "XMEX", "JO": "XJSE", "NZ": "XNZE", "SI": "XSES", "TW": "XTAI",
    "TWO": "XTAI", "KS": "XKRX", "KQ": "XKRX", "IS": "XIST", "SN": "XSGO", "BA": "XBUE", "JK": "XIDX", "KL": "XKLS",
    "PS": "XPHS", "BK": "XBKK", "TA": "XTAE", "IC": "XICE", "PR": "XPRA", "BD": "XBUD", "LM": "XLIM", "CL": "XBOG",
    "AT": "ASEX",
}  # fmt: skip
# exchange -> country code for holiday calendars (Prophet holidays).
COUNTRY = {"XNYS": "US", "XNAS": "US", "XKRX": "KR", "24/5": "US", "24/7": "US"}
# How a ticker got its calendar, as the data-quality summary says it.
HOW_SUFFIX, HOW_CODE, HOW_ASSUMED, HOW_USER, HOW_STORED = "suffix", "ticker form", "assumed", "--calendar", "stored"


def infer_calendar(ticker: str) -> tuple[str, str]:
    """(calendar, how) from a ticker's spelling; raises ConfigError for an exchange suffix not in SUFFIX_CALENDARS.

    KRX codes (6 digits, `.KS`/`.KQ`) and KRX indices (with or without `^`) -> XKRX; crypto (BTC-USD, BTC/KRW) -> 24/7;
    FX (USD/KRW, EURUSD=X) -> 24/5; a Yahoo suffix -> its exchange; a plain symbol -> XNYS, marked as assumed.
    A one-letter suffix that is no exchange (BRK.B, a share class) is a plain US symbol.
    """
    t = str(ticker).strip().upper().lstrip("^")  # Yahoo spells indices ^KS11
    base = re.split(r"[-/]", t)[0]
    if re.fullmatch(r"\d{6}", t) or t in _KRX_INDEX:
        return "XKRX", HOW_CODE
    if base in _CRYPTO and ("-" in t or "/" in t) or re.fullmatch(_CRYPTO_PAIR, t):
        return "24/7", HOW_CODE
    if "/" in t or t.endswith("=X"):
        return "24/5", HOW_CODE
    suffix = re.fullmatch(r"[^.]+\.([A-Z]{1,3})", t)
    if suffix:
        if suffix[1] in SUFFIX_CALENDARS:
            return SUFFIX_CALENDARS[suffix[1]], HOW_SUFFIX
        if len(suffix[1]) > 1:
            raise ConfigError(
                f"{ticker}: unknown exchange suffix '.{suffix[1]}', so its trading calendar is unknown; pass "
                f"--calendar {ticker}=NAME (an exchange-calendars name such as XLON, or 24/7)"
            )
    return "XNYS", HOW_ASSUMED


def exchange_for(ticker: str) -> str:
    """The calendar a ticker's spelling implies (see infer_calendar); XNYS for an unknown suffix.

    Models and the time-zone rule call this only when no calendar was chosen for the series; ingest refuses an
    unknown suffix before that can happen.
    """
    try:
        return infer_calendar(ticker)[0]
    except ConfigError:
        return "XNYS"


def check_calendar(name: str) -> str:
    """The canonical name of a calendar given on the command line; ConfigError with close matches otherwise."""
    text = str(name).strip()
    if text in ALWAYS_OPEN:
        return text
    names = _calendar_names()
    upper = {n.upper(): n for n in names}
    if text.upper() in upper:
        return upper[text.upper()]
    close = difflib.get_close_matches(text.upper(), list(upper), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(upper[c] for c in close)}?)" if close else ""
    raise ConfigError(
        f"unknown calendar {text!r}{hint}; use 24/7, 24/5 or an exchange-calendars name such as XNYS, XLON, XTKS"
    )


@lru_cache(maxsize=1)
def _calendar_names() -> tuple[str, ...]:
    import exchange_calendars as xc

    return tuple(xc.get_calendar_names(include_aliases=True))


def non_sessions(exchange: str, ds: pd.DatetimeIndex) -> np.ndarray:
    """Mask of the dates in `ds` that are not sessions of `exchange` (weekends, holidays) within its bounds."""
    ds = pd.DatetimeIndex(ds)
    if len(ds) == 0 or exchange == "24/7":
        return np.zeros(len(ds), dtype=bool)
    if exchange == "24/5":
        return np.asarray(ds.day_of_week >= 5)
    cal = _calendar(exchange)
    inside = (ds >= cal.first_session.tz_localize(None)) & (ds <= cal.last_session.tz_localize(None))
    known = sessions(exchange, ds.min(), ds.max())
    return np.asarray(inside & ~ds.isin(known))


def weekend_share(ds: pd.DatetimeIndex) -> float:
    """Share of dates on a Saturday or Sunday: about 2/7 for a 7-day (crypto) series, 0 for an exchange's."""
    ds = pd.DatetimeIndex(ds)
    return float((ds.day_of_week >= 5).mean()) if len(ds) else 0.0


@lru_cache(maxsize=16)
def _calendar(exchange: str) -> ExchangeCalendar:
    import exchange_calendars as xc  # 0.5 s import; only callers that need sessions pay it

    try:
        return xc.get_calendar(exchange, start=_CALENDAR_START)
    except ValueError:  # calendars with a later first session (and 24/x ones) keep their own bounds
        return xc.get_calendar(exchange)


def session_closes(exchange: str) -> pd.Series:
    """Every session's close as a UTC timestamp, indexed by the tz-naive session date (exchange-calendars)."""
    return _calendar(exchange).closes


def sessions(exchange: str, start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """Trading sessions of `exchange` between start and end inclusive (tz-naive midnights)."""
    cal = _calendar(exchange)
    start = max(pd.Timestamp(start), cal.first_session)
    end = min(pd.Timestamp(end), cal.last_session)
    if start > end:
        return pd.DatetimeIndex([], name="ds")
    return pd.DatetimeIndex(cal.sessions_in_range(start, end).tz_localize(None), name="ds")


def next_sessions(exchange: str, after: DateLike, n: int) -> pd.DatetimeIndex:
    """The `n` sessions of `exchange` strictly after the date `after` (tz-naive midnights, ns resolution).

    Dates outside the calendar's bounds (before its first or after its last session, about one year ahead)
    fall back to weekdays, so a horizon that straddles the calendar's end still gets `n` dates.
    """
    if n <= 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name="ds")
    cal = _calendar(exchange)
    day = pd.Timestamp(after)
    if day.tz is not None:  # a session is a local date: keep the wall-clock date, drop the zone
        day = day.tz_localize(None)
    day = day.normalize()
    first, last = cal.first_session, cal.last_session
    parts = []
    if day < first - pd.Timedelta(days=1):  # before the calendar starts: weekdays up to its first session
        parts.append(pd.bdate_range(day + pd.Timedelta(days=1), first - pd.Timedelta(days=1)))
    if day < last:
        start = max(day + pd.Timedelta(days=1), first)
        parts.append(cal.sessions_in_range(start, min(last, start + pd.Timedelta(days=7 * n + 31))))
    got = sum(len(p) for p in parts)
    if got < n:  # beyond the calendar's horizon: weekdays after its last session (or after `after`)
        parts.append(pd.bdate_range(max(day, last) + pd.Timedelta(days=1), periods=n - got))
    out = pd.DatetimeIndex(np.concatenate([pd.DatetimeIndex(p).tz_localize(None).as_unit("ns").values for p in parts]))
    return pd.DatetimeIndex(out[:n], name="ds")


def sessions_after_each(exchange: str, afters: pd.DatetimeIndex | Sequence[DateLike], n: int) -> np.ndarray:
    """`next_sessions(exchange, after, n)` for every date of `afters`, as an (len(afters), n) datetime64[ns] array.

    One calendar lookup for all of them (a backtest asks for one per origin): the sessions after the earliest
    date, enough to cover the latest date plus `n`, then each row is a slice of that grid.
    """
    days = pd.DatetimeIndex([pd.Timestamp(a) for a in afters])
    if days.tz is not None:
        days = days.tz_localize(None)
    days = days.normalize().as_unit("ns")
    if n <= 0 or not len(days):
        return np.empty((len(days), max(n, 0)), dtype="datetime64[ns]")
    first, last = days.min(), days.max()
    cal = _calendar(exchange)
    lo, hi = cal.first_session, cal.last_session
    day = pd.Timedelta(days=1)
    parts = [  # every session in (first, last], with next_sessions' weekday fallback outside the bounds
        pd.bdate_range(first + day, min(last, lo - day)),
        sessions(exchange, max(first + day, lo), min(last, hi)),
        pd.bdate_range(max(first, hi) + day, last),
        next_sessions(exchange, last, n),  # and the n after the latest date
    ]
    grid = np.concatenate([pd.DatetimeIndex(p).as_unit("ns").values for p in parts])
    pos = np.searchsorted(grid, days.values, side="right")
    return grid[pos[:, None] + np.arange(n)]


def next_sessions_for(ticker: str, after: DateLike, n: int) -> pd.DatetimeIndex:
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
