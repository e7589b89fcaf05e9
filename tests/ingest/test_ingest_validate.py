"""One bad input per validation rule: the error type, and a message naming ticker, column, first rows and fix."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from ingest_helpers import bars

from common.errors import DataError
from common.schema import ADJ_CLOSE, CLOSE, DS, ID, OPEN, PANEL_COLUMNS, VOLUME, Y
from ingest.spec import SourceSpec
from ingest.validate import validate


def spec(**kw) -> SourceSpec:
    return SourceSpec(**kw)


def fails(raw: pd.DataFrame, *fragments: str, **spec_kw) -> str:
    """Validation raises DataError whose message contains every fragment; returns the message."""
    with pytest.raises(DataError) as info:
        validate(raw, spec(**spec_kw))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    return message


# ---------------------------------------------------------------------------------------------- the clean path


def test_clean_input_gives_the_panel_contract():
    raw = pd.concat([bars("MSFT", 5), bars("005930", 4, price=70000)])
    panel, report = validate(raw, spec())
    assert tuple(panel.columns) == PANEL_COLUMNS
    assert panel[ID].tolist() == ["005930"] * 4 + ["MSFT"] * 5  # sorted by ticker, ids stay strings
    assert str(panel[DS].dtype) == "datetime64[ns]" and (panel[DS] == panel[DS].dt.normalize()).all()
    assert all(panel[c].dtype == np.float64 for c in PANEL_COLUMNS[2:])
    assert (panel[Y] == panel[ADJ_CLOSE]).all()  # auto -> adj_close when the source has it
    assert report.tickers["MSFT"].rows_in == 5 and report.tickers["MSFT"].rows_out == 5
    assert report.tickers["MSFT"].first_session == "2024-01-02"


def test_target_close_and_auto_without_adj_close():
    raw = bars("IBM", 5).assign(**{ADJ_CLOSE: np.nan})
    panel, report = validate(raw, spec())
    assert (panel[Y] == panel[CLOSE]).all() and report.tickers["IBM"].target == CLOSE
    panel, _ = validate(bars("IBM", 5), spec(target="close"))
    assert (panel[Y] == panel[CLOSE]).all()


# ---------------------------------------------------------------------------------------------- refusals


def test_missing_required_columns():
    fails(bars("AAPL").drop(columns=[CLOSE]), "AAPL", "missing required column", "'close'", "Close")
    fails(bars("AAPL").drop(columns=[DS]), "AAPL", "'ds'", "Date")


def test_adj_close_required_only_when_it_is_the_target():
    raw = bars("AAPL").drop(columns=[ADJ_CLOSE])
    validate(raw, spec())  # optional for auto
    fails(raw, "AAPL", "'adj_close'", "target='auto'", target="adj_close")
    fails(raw.assign(**{ADJ_CLOSE: np.nan}), "AAPL", "'adj_close' is empty", "target='close'", target="adj_close")


def test_non_numeric_price_names_rows():
    raw = bars("AAPL")
    raw[CLOSE] = raw[CLOSE].astype(object)
    raw.loc[3, CLOSE] = "abc"
    raw.loc[7, CLOSE] = "1,234.5"
    fails(raw, "AAPL", "'close'", "2 non-numeric", "row 3 (2024-01-04)", "'abc'", "row 7", "thousands separators")


def test_unparseable_dates():
    raw = bars("AAPL")
    raw.loc[4, DS] = "2024-13-45"
    fails(raw, "AAPL", "'ds'", "unparseable", "row 4", "2024-13-45", "YYYY-MM-DD")


def test_empty_dates():
    raw = bars("AAPL")
    raw.loc[2, DS] = None
    fails(raw, "AAPL", "'ds'", "empty in 1 rows", "row 2")


def test_mixed_date_formats_are_not_guessed():
    raw = bars("AAPL")
    raw.loc[5, DS] = "01/09/2024"
    fails(raw, "AAPL", "mixes date formats", "row 1 is '2024-01-02'", "row 5", "01/09/2024", "ISO")


def test_iso_dates_with_and_without_time_are_one_format():
    raw = bars("AAPL")
    raw.loc[2, DS] = raw.loc[2, DS] + " 16:00:00"
    panel, report = validate(raw, spec())
    assert report.tickers["AAPL"].times_normalised == 1 and (panel[DS] == panel[DS].dt.normalize()).all()


def test_tz_aware_timestamps_become_exchange_local_dates():
    # New York closes at 21:00 UTC; a KRX bar stamped 15:30 Seoul is 06:30 UTC the same day.
    us = bars("AAPL", 3)
    us[DS] = pd.to_datetime(us[DS]).dt.tz_localize("UTC") + pd.Timedelta(hours=21)
    kr = bars("005930", 3)
    kr[DS] = (pd.to_datetime(kr[DS]) + pd.Timedelta(hours=15, minutes=30)).dt.tz_localize("Asia/Seoul")
    kr[DS] = kr[DS].dt.tz_convert("UTC")
    panel, report = validate(pd.concat([us, kr]), spec())
    assert panel[DS].dt.tz is None
    assert panel.groupby(ID)[DS].first().dt.strftime("%Y-%m-%d").to_dict() == {
        "005930": "2024-01-02",
        "AAPL": "2024-01-02",
    }
    assert report.tickers["AAPL"].tz_converted == 3 and report.tickers["005930"].tz_converted == 3


def test_tz_aware_midnights_keep_their_date():
    # yfinance writes exchange-local midnights; across DST the offsets differ (text with mixed offsets).
    raw = bars("AAPL", 2)
    raw[DS] = ["2024-03-08 00:00:00-05:00", "2024-03-11 00:00:00-04:00"]
    panel, report = validate(raw, spec())
    assert panel[DS].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-08", "2024-03-11"]
    assert report.tickers["AAPL"].tz_converted == 2


def test_exact_duplicates_dropped_and_counted():
    raw = bars("AAPL", 6)
    raw = pd.concat([raw, raw.loc[[2, 4]]])
    panel, report = validate(raw, spec())
    assert len(panel) == 6 and report.tickers["AAPL"].exact_duplicates_dropped == 2


def test_conflicting_duplicates_rejected():
    raw = bars("AAPL", 6)
    dup = raw.loc[[3]].assign(**{CLOSE: 1.0})
    dup.index = [7]
    fails(pd.concat([raw, dup]), "AAPL", "1 dates appear more than once", "2024-01-04", "'close'", "row 3", "row 7")


def test_unsorted_input_sorted_and_counted():
    raw = bars("AAPL", 6).iloc[[0, 1, 4, 2, 3, 5]]
    panel, report = validate(raw, spec())
    assert panel[DS].is_monotonic_increasing and report.tickers["AAPL"].rows_sorted == 3


@pytest.mark.parametrize("column, value", [(CLOSE, 0.0), (OPEN, -1.0), (ADJ_CLOSE, -5.0)])
def test_non_positive_prices_rejected(column, value):
    raw = bars("AAPL")
    raw.loc[6, column] = value
    fails(raw, "AAPL", f"'{column}'", "not > 0", "row 6 (2024-01-09)")


def test_negative_volume_rejected():
    raw = bars("AAPL")
    raw.loc[2, VOLUME] = -10.0
    fails(raw, "AAPL", "'volume'", "not >= 0", "row 2")


def test_gap_policy_error_raises():
    raw = bars("AAPL")
    raw.loc[[4, 5], ADJ_CLOSE] = np.nan
    fails(raw, "AAPL", "'adj_close'", "empty in 2 rows", "row 4", "gap_policy='ffill'", gap_policy="error")


def test_ffill_fills_short_runs_and_counts():
    raw = bars("AAPL")
    raw.loc[[4, 5], ADJ_CLOSE] = np.nan
    raw.loc[8, ADJ_CLOSE] = np.nan
    panel, report = validate(raw, spec(max_ffill=2))
    assert report.tickers["AAPL"].ffilled == 3
    assert panel.loc[3, Y] == panel.loc[4, Y] == panel.loc[2, Y]  # panel rows are 0-based
    assert panel[Y].notna().all()


def test_ffill_refuses_runs_longer_than_max_ffill():
    raw = bars("AAPL")
    raw.loc[[4, 5, 6], ADJ_CLOSE] = np.nan
    fails(raw, "AAPL", "gap of 3 sessions", "2024-01-05", "2024-01-09", "rows 4..6", "max_ffill=2", max_ffill=2)


def test_leading_gap_cannot_be_filled():
    raw = bars("AAPL")
    raw.loc[[1, 2], ADJ_CLOSE] = np.nan
    fails(raw, "AAPL", "first 2 rows", "row 1 (2024-01-02)", "set start after 2024-01-03")


def test_zero_volume_unchanged_rows_dropped_as_non_sessions():
    raw = bars("005930", 6, price=70000)
    holiday = raw.loc[[3]].assign(**{DS: "2024-01-05", VOLUME: 0.0})  # a copy of the 4th with no trades
    raw = raw.drop(index=4)
    raw.loc[4] = holiday.iloc[0]
    panel, report = validate(raw.sort_index(), spec())
    assert report.tickers["005930"].zero_volume_dropped == 1
    assert "2024-01-05" not in panel[DS].dt.strftime("%Y-%m-%d").tolist()


def test_zero_volume_kept_when_volume_is_never_reported():
    raw = bars("USD/KRW", 5).assign(**{VOLUME: 0.0})
    raw.loc[3, [CLOSE, ADJ_CLOSE]] = raw.loc[2, [CLOSE, ADJ_CLOSE]]
    _, report = validate(raw, spec())
    assert report.tickers["USD/KRW"].zero_volume_dropped == 0 and report.tickers["USD/KRW"].rows_out == 5


def test_series_shorter_than_min_sessions():
    fails(bars("AAPL", 5), "AAPL", "5 sessions", "min_sessions=10", "lower min_sessions", min_sessions=10)


def test_unknown_ticker_lists_available():
    raw = pd.concat([bars("AAPL"), bars("005930")])
    fails(raw, "unknown ticker", "'5930'", "available: ['005930', 'AAPL']", tickers=("AAPL", "5930"))
    fails(raw, "did you mean 'AAPL'", tickers=("aapl",))


def test_start_end_filter_counted_and_empty_window_rejected():
    raw = bars("AAPL", 10)
    panel, report = validate(raw, spec(start="2024-01-04", end="2024-01-10"))
    assert panel[DS].min() == pd.Timestamp("2024-01-04") and panel[DS].max() == pd.Timestamp("2024-01-10")
    assert report.tickers["AAPL"].outside_range_dropped == 5
    fails(raw, "AAPL", "no rows between start=2025-01-01", "2024-01-02 .. 2024-01-15", start="2025-01-01")


def test_suspicious_jump_is_warned_not_altered(caplog):
    raw = bars("AAPL", 6, price=100.0)
    raw.loc[4:, [CLOSE, ADJ_CLOSE]] = raw.loc[4:, [CLOSE, ADJ_CLOSE]] / 10  # an unadjusted 1:10 split
    raw.loc[4:, "open"] = raw.loc[4:, "open"] / 10
    raw.loc[4:, ["high", "low"]] = raw.loc[4:, ["high", "low"]] / 10
    with caplog.at_level(logging.WARNING, logger="ingest.validate"):
        panel, report = validate(raw, spec())
    assert np.allclose(panel[ADJ_CLOSE].to_numpy(), raw[ADJ_CLOSE].to_numpy())  # untouched
    (warning,) = report.tickers["AAPL"].warnings
    assert "2024-01-05" in warning and "x0.1" in warning and "split" in warning
    assert "suspicious jump" in caplog.text


def test_blank_ticker_rows_rejected():
    raw = bars("AAPL")
    raw.loc[3, ID] = None
    fails(raw, "'unique_id'", "row 3")
