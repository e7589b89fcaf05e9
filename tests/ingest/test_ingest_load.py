"""load_panel: the entry point - incremental live fetches through the store, stored file sources, the report."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from common.errors import DataError
from common.schema import DS, ID, PANEL_COLUMNS
from ingest.load import fetch_start, load_panel
from ingest.price_store import PriceStore
from ingest.spec import SourceSpec


def yahoo_spec(**kw) -> SourceSpec:
    return SourceSpec(source="yfinance", tickers=("AAPL",), start=date(2024, 1, 2), **kw)


def test_incremental_fetch_requests_only_newer_bars(yahoo_wire, tmp_path, monkeypatch):
    store = PriceStore(tmp_path / "p.duckdb")
    panel, report = load_panel(yahoo_spec(end=date(2024, 1, 8)), store=store)
    assert panel[DS].max() == pd.Timestamp("2024-01-08") and len(panel) == 5
    assert yahoo_wire.history_starts() == [pd.Timestamp("2024-01-02", tz="America/New_York")]
    assert report.tickers["AAPL"].rows_in == 5 and report.tickers["AAPL"].fetch_start == "2024-01-02"

    yahoo_wire.calls.clear()
    panel, report = load_panel(yahoo_spec(end=date(2024, 1, 12)), store=store)
    assert yahoo_wire.history_starts() == [pd.Timestamp("2024-01-09", tz="America/New_York")]  # after the stored 8th
    assert len(panel) == 9 and panel[DS].max() == pd.Timestamp("2024-01-12")
    assert report.tickers["AAPL"].rows_in == 4 and report.tickers["AAPL"].rows_out == 9
    assert len(store.read("yfinance", ["AAPL"])) == 9

    yahoo_wire.calls.clear()
    again, _ = load_panel(yahoo_spec(end=date(2024, 1, 12)), store=store)  # nothing due: no request at all
    assert yahoo_wire.calls == [] and again.equals(panel)


def test_incremental_fetch_of_an_empty_new_range_is_fine(yahoo_wire, tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    load_panel(yahoo_spec(end=date(2024, 1, 12)), store=store)
    yahoo_wire.calls.clear()
    panel, report = load_panel(yahoo_spec(end=date(2024, 1, 14)), store=store)  # a weekend: Yahoo has no bars
    assert len(yahoo_wire.history_starts()) == 1 and len(panel) == 9 and report.tickers["AAPL"].rows_in == 0


def test_fdr_incremental_counts_client_calls(naver_wire, tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    spec = SourceSpec(source="fdr", tickers=("005930",), start=date(2024, 1, 2), end=date(2024, 1, 12))
    panel, _ = load_panel(spec, store=store)
    assert len(panel) == 9 and naver_wire.call_count == 1
    load_panel(spec, store=store)
    assert naver_wire.call_count == 1  # everything up to `end` is stored: no fetch


def test_fetch_start_rules():
    spec = SourceSpec(source="fdr", tickers=("005930",), start=date(2024, 1, 2))
    stored = (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-03-28"))
    assert fetch_start(spec, None) == date(2024, 1, 2)
    assert fetch_start(spec, stored) == date(2024, 3, 29)
    older = spec.model_copy(update={"start": date(2020, 1, 1)})  # asks for history the store never had
    assert fetch_start(older, stored) == date(2020, 1, 1)


def test_live_without_store_fetches_the_range(yahoo_wire):
    panel, _ = load_panel(yahoo_spec(end=date(2024, 1, 5)))
    assert tuple(panel.columns) == PANEL_COLUMNS and len(panel) == 4


def test_file_source_with_store_upserts_validated_rows(tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    spec = SourceSpec(tickers=("AAPL", "IBM"), start=date(2012, 1, 1))
    panel, _ = load_panel(spec, store=store)
    load_panel(spec, store=store)
    stored = store.read("sample", ("AAPL", "IBM"))
    assert len(stored) == len(panel) and stored[DS].min() >= pd.Timestamp("2012-01-01")


def test_unknown_live_ticker_is_a_data_error(yahoo_wire, tmp_path):
    spec = SourceSpec(source="yfinance", tickers=("AAPL", "NOPE"), start=date(2024, 1, 2))
    with pytest.raises(DataError, match="NOPE: unknown ticker"):
        load_panel(spec, store=PriceStore(tmp_path / "p.duckdb"))


def test_quality_report_shapes():
    _, report = load_panel(SourceSpec(tickers=("AAPL", "IBM"), start=date(2013, 1, 1)))
    frame = report.to_frame()
    assert list(frame.columns) == [ID, "check", "count", "detail"]
    assert set(frame[ID]) == {"AAPL", "IBM"}
    row = frame[(frame[ID] == "AAPL") & (frame["check"] == "outside_range_dropped")].iloc[0]
    assert row["count"] == 3270 - report.tickers["AAPL"].rows_out
    lines = report.summary_lines()
    cut = 3270 - 41 + report.tickers["IBM"].outside_range_dropped
    assert lines[0].startswith(f"--start 2013-01-01 cut {cut:,} rows before it (AAPL 3,229, IBM ")
    assert lines[1].startswith("AAPL: 41 sessions 2013-01-02 .. 2013-03-01, target adj_close")
    assert json.loads(json.dumps(report.to_dict()))["tickers"]["IBM"]["target"] == "adj_close"
