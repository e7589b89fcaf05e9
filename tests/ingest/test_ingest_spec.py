"""SourceSpec validation, plus a property: whatever order and exact repeats come in, the panel is clean."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_helpers import bars

from common.errors import ConfigError
from common.schema import DS, ID
from ingest.spec import SourceSpec
from ingest.validate import validate


def test_defaults_and_coercion():
    spec = SourceSpec()
    assert (spec.source, spec.tickers, spec.target, spec.gap_policy, spec.max_ffill, spec.min_sessions) == (
        "sample",
        None,
        "auto",
        "ffill",
        3,
        1,
    )
    spec = SourceSpec(
        source="csv", path="prices/", tickers=["005930", " AAPL "], start="2020-01-02", end=datetime(2021, 1, 1, 9)
    )
    assert spec.path == Path("prices") and spec.tickers == ("005930", "AAPL")
    assert spec.start == date(2020, 1, 2) and spec.end == date(2021, 1, 1)
    assert SourceSpec(tickers="AAPL,MSFT").tickers == ("AAPL", "MSFT")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"start": "2024-02-01", "end": "2024-01-01"}, "start 2024-02-01 is after end 2024-01-01"),
        ({"tickers": [5930]}, "not a string.*leading zeros"),
        ({"source": "csv"}, "needs path"),
        ({"source": "yfinance"}, "needs tickers"),
        ({"target": "open"}, "target"),
        ({"max_ffill": -1}, "max_ffill"),
        ({"min_sessions": 0}, "min_sessions"),
        ({"tickers": []}, "tickers is empty"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SourceSpec(**kwargs)


def test_spec_is_frozen_and_hashable():
    spec = SourceSpec(tickers=("AAPL",))
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        spec.source = "csv"  # type: ignore[misc]
    assert hash(spec) == hash(SourceSpec(tickers=("AAPL",)))


@settings(max_examples=10, deadline=None)
@given(order=st.permutations(list(range(1, 9))), repeats=st.lists(st.integers(1, 8), max_size=4))
def test_any_order_and_exact_repeats_give_one_sorted_row_per_session(order, repeats):
    raw = bars("AAPL", 8)
    shuffled = pd.concat([raw.loc[list(order)], raw.loc[repeats]])
    panel, report = validate(shuffled, SourceSpec())
    assert panel[DS].is_monotonic_increasing and panel[DS].is_unique and len(panel) == 8
    assert report.tickers["AAPL"].exact_duplicates_dropped == len(repeats)
    assert panel.equals(validate(raw, SourceSpec())[0])
    assert set(panel[ID]) == {"AAPL"}
