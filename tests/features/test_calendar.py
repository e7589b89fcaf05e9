"""Trading calendars: exchange inference, real future sessions (holidays skipped), fallbacks, calendar features."""

from __future__ import annotations

import pandas as pd
import pytest

from common.schema import CALENDAR_PREFIX
from features.calendar import (
    CALENDAR_COLUMNS,
    _calendar,
    calendar_features,
    exchange_for,
    next_sessions,
    next_sessions_for,
    sessions,
    sessions_after_each,
)


@pytest.mark.parametrize(
    ("ticker", "exchange"),
    [
        ("AAPL", "XNYS"),
        ("005930", "XKRX"),
        ("005930.KS", "XKRX"),
        ("KS11", "XKRX"),
        ("^KS11", "XKRX"),
        ("USD/KRW", "24/5"),
        ("EURUSD=X", "24/5"),
        ("BTC-USD", "24/7"),
        ("btc/krw", "24/7"),
        ("BRK-B", "XNYS"),
    ],
)
def test_exchange_for(ticker, exchange):
    assert exchange_for(ticker) == exchange


def _dates(*days: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(d) for d in days]


def test_next_sessions_skips_christmas_2012():
    out = next_sessions("XNYS", "2012-12-21", 5)
    assert list(out) == _dates("2012-12-24", "2012-12-26", "2012-12-27", "2012-12-28", "2012-12-31")
    assert out.name == "ds" and out.tz is None


def test_next_sessions_skips_chuseok_2024():
    assert list(next_sessions("XKRX", "2024-09-13", 3)) == _dates("2024-09-19", "2024-09-20", "2024-09-23")
    assert list(next_sessions_for("005930", "2024-09-13", 1)) == _dates("2024-09-19")


def test_next_sessions_from_a_weekend_tz_aware_and_24_7():
    assert list(next_sessions("XNYS", "2024-01-06", 2)) == _dates("2024-01-08", "2024-01-09")
    aware = pd.Timestamp("2024-01-05 15:30", tz="America/New_York")
    assert list(next_sessions("XNYS", aware, 1)) == _dates("2024-01-08")
    assert list(next_sessions("24/7", "2024-01-05", 2)) == _dates("2024-01-06", "2024-01-07")
    assert len(next_sessions("XNYS", "2024-01-05", 0)) == 0


def test_after_the_calendars_last_session_falls_back_to_weekdays():
    last = _calendar("XNYS").last_session
    beyond = next_sessions("XNYS", last + pd.Timedelta(days=30), 5)
    assert len(beyond) == 5 and (beyond.day_of_week < 5).all() and beyond[0] > last
    assert beyond.is_monotonic_increasing and not beyond.has_duplicates
    # A horizon straddling the calendar's end: real sessions first, then weekdays (it used to raise).
    straddle = next_sessions("XNYS", last - pd.Timedelta(days=3), 6)
    assert len(straddle) == 6 and straddle.is_monotonic_increasing and not straddle.has_duplicates
    assert last in straddle and (straddle.day_of_week < 5).all()
    assert list(next_sessions("XNYS", "2100-01-01", 2)) == _dates("2100-01-04", "2100-01-05")


def test_sessions_between_dates():
    out = sessions("XNYS", "2012-12-21", "2012-12-27")
    assert list(out) == _dates("2012-12-21", "2012-12-24", "2012-12-26", "2012-12-27")
    assert len(sessions("XNYS", "2012-12-27", "2012-12-21")) == 0


def test_calendar_features_columns_and_values():
    ds = pd.Series(
        pd.to_datetime(["2024-03-28", "2024-03-29", "2024-04-01", "2024-04-30", "2024-12-31"]), index=[9, 8, 7, 6, 5]
    )
    out = calendar_features(ds)
    assert tuple(out.columns) == CALENDAR_COLUMNS and all(c.startswith(CALENDAR_PREFIX) for c in out.columns)
    assert list(out.index) == [0, 1, 2, 3, 4]  # positional: callers align by position
    assert list(out[f"{CALENDAR_PREFIX}dow"]) == [3, 4, 0, 1, 1]
    assert list(out[f"{CALENDAR_PREFIX}month"]) == [3, 3, 4, 4, 12]
    assert list(out[f"{CALENDAR_PREFIX}dom"]) == [28, 29, 1, 30, 31]
    # March 2024 ends on a Sunday: its last session, Friday the 29th, is the month (and quarter) end.
    assert list(out[f"{CALENDAR_PREFIX}month_end"]) == [0, 1, 0, 1, 1]
    assert list(out[f"{CALENDAR_PREFIX}quarter_end"]) == [0, 1, 0, 0, 1]


def test_calendar_features_weekend_dates_are_never_period_ends():
    out = calendar_features(pd.DatetimeIndex(["2024-03-30", "2024-03-31", "2024-06-30"]))
    assert out[f"{CALENDAR_PREFIX}month_end"].sum() == 0 and out[f"{CALENDAR_PREFIX}quarter_end"].sum() == 0


@pytest.mark.parametrize("exchange", ["XNYS", "XLON", "XTKS", "XKRX", "24/7"])
def test_sessions_after_each_equals_next_sessions_per_date(exchange):
    """One grid lookup for every origin gives each origin's own next sessions, holidays included, and falls back
    to weekdays beyond the calendar's bounds as next_sessions does (dates 1995-2035)."""
    import numpy as np

    rng = np.random.default_rng(4)
    days = pd.Timestamp("1995-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 40 * 365, 60)), unit="D")
    days = days.append(pd.DatetimeIndex(["2024-12-24", "2024-12-24", "2025-04-17"]))  # repeats, holiday eves
    got = sessions_after_each(exchange, days, 6)
    assert got.shape == (len(days), 6)
    for k, day in enumerate(days):
        assert (got[k] == next_sessions(exchange, day, 6).values).all(), (exchange, day)
