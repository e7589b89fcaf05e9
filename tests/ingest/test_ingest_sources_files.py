"""The bundled sample and CSV/Parquet sources: layouts, column spellings, string tickers, unreadable files."""

from __future__ import annotations

import pandas as pd
import pytest
from ingest_helpers import bars

from common.errors import DataError, SourceError
from common.schema import ADJ_CLOSE, CLOSE, DS, ID, PANEL_COLUMNS, Y
from ingest.load import load_panel
from ingest.sources import read_source
from ingest.spec import SourceSpec


def as_file_frame(raw: pd.DataFrame, *, with_ticker: bool = False) -> pd.DataFrame:
    """Bars as a typical downloaded file spells them: Date, Open, ..., Adj Close, Volume."""
    names = {DS: "Date", "open": "Open", "high": "High", "low": "Low", CLOSE: "Close", ADJ_CLOSE: "Adj Close"}
    out = raw.rename(columns={**names, "volume": "Volume", ID: "Ticker"})
    return out if with_ticker else out.drop(columns=["Ticker"])


# ---------------------------------------------------------------------------------------------- sample


def test_sample_loads_four_tickers_2000_to_2013_with_adj_close_target():
    panel, report = load_panel(SourceSpec())
    assert tuple(panel.columns) == PANEL_COLUMNS
    assert sorted(panel[ID].unique()) == ["AAPL", "GOOG", "IBM", "MSFT"]
    assert panel[DS].min() == pd.Timestamp("2000-03-01") and panel[DS].max() == pd.Timestamp("2013-03-01")
    assert (panel[Y] == panel[ADJ_CLOSE]).all()
    assert {q.target for q in report.tickers.values()} == {ADJ_CLOSE}
    assert report.tickers["AAPL"].rows_out == 3270


def test_sample_fb_only_when_asked_and_unknown_listed():
    panel, _ = load_panel(SourceSpec(tickers=("FB",), start="2013-01-01"))
    assert set(panel[ID]) == {"FB"} and panel[DS].min() >= pd.Timestamp("2013-01-01")
    with pytest.raises(DataError, match=r"unknown ticker.*'TSLA'.*available: \['AAPL', 'FB', 'GOOG', 'IBM', 'MSFT'\]"):
        load_panel(SourceSpec(tickers=("TSLA",)))


# ---------------------------------------------------------------------------------------------- csv layouts


def test_krx_ticker_survives_csv_round_trip_as_string(tmp_path):
    as_file_frame(bars("005930", 6, price=70000)).to_csv(tmp_path / "005930.csv", index=False)
    as_file_frame(bars("000660", 6, price=130000), with_ticker=True).to_csv(tmp_path / "long.csv", index=False)
    panel, _ = load_panel(SourceSpec(source="csv", path=tmp_path))
    assert sorted(panel[ID].unique()) == ["000660", "005930"]
    assert panel[ID].map(type).eq(str).all()


@pytest.mark.parametrize(
    "date, close, adj", [("date", "close", "adj_close"), ("DATE", "CLOSE", "ADJ-CLOSE"), ("Date", "Close", "adjclose")]
)
def test_column_spellings_are_matched(tmp_path, date, close, adj):
    raw = bars("MSFT", 5).rename(columns={DS: date, CLOSE: close, ADJ_CLOSE: adj}).drop(columns=[ID])
    raw.to_csv(tmp_path / "MSFT.csv", index=False)
    panel, report = load_panel(SourceSpec(source="csv", path=tmp_path / "MSFT.csv"))
    assert len(panel) == 5 and report.tickers["MSFT"].target == ADJ_CLOSE


@pytest.mark.parametrize("ticker_column", ["ticker", "Symbol", "code", "unique_id"])
def test_long_file_ticker_column_names(tmp_path, ticker_column):
    raw = pd.concat([bars("AAPL", 4), bars("IBM", 4)]).rename(columns={ID: ticker_column})
    raw.to_csv(tmp_path / "prices.csv", index=False)
    panel, _ = load_panel(SourceSpec(source="csv", path=tmp_path / "prices.csv", tickers=("IBM",)))
    assert set(panel[ID]) == {"IBM"}


def test_directory_with_mixed_types_reads_the_kind_asked_and_counts_the_rest(tmp_path):
    as_file_frame(bars("AAPL", 4)).to_csv(tmp_path / "AAPL.csv", index=False)
    as_file_frame(bars("IBM", 4)).to_parquet(tmp_path / "IBM.parquet")
    (tmp_path / "notes.txt").write_text("downloaded 2024-01-20")
    panel, report = load_panel(SourceSpec(source="csv", path=tmp_path))
    assert set(panel[ID]) == {"AAPL"}
    assert report.ignored_files == ["IBM.parquet", "notes.txt"]
    row = report.to_frame().query("check == 'ignored_files'").iloc[0]
    assert row["count"] == 2 and "notes.txt" in row["detail"]
    panel, report = load_panel(SourceSpec(source="parquet", path=tmp_path))
    assert set(panel[ID]) == {"IBM"} and report.ignored_files == ["AAPL.csv", "notes.txt"]


def test_directory_without_matching_files_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match=r"no parquet files.*notes\.txt"):
        read_source(SourceSpec(source="parquet", path=tmp_path))


def test_missing_path_raises(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        read_source(SourceSpec(source="csv", path=tmp_path / "nope"))


def test_non_utf8_file_names_file_and_suggests_reencoding(tmp_path):
    path = tmp_path / "005930.csv"
    path.write_bytes("날짜,종가\n2024-01-02,79600\n".encode("cp949"))
    with pytest.raises(DataError, match=r"005930\.csv: not UTF-8.*re-encode it as UTF-8"):
        read_source(SourceSpec(source="csv", path=path))


def test_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "AAPL.csv"
    path.write_bytes(as_file_frame(bars("AAPL", 3)).to_csv(index=False).encode("utf-8-sig"))
    panel, _ = load_panel(SourceSpec(source="csv", path=path))
    assert len(panel) == 3


@pytest.mark.parametrize("content", ["", "Date,Open,High,Low,Close,Volume\n"])
def test_empty_file_or_header_only_names_file(tmp_path, content):
    (tmp_path / "AAPL.csv").write_text(content)
    with pytest.raises(DataError, match=r"AAPL\.csv: (empty file|no data rows)"):
        read_source(SourceSpec(source="csv", path=tmp_path))


def test_csv_errors_quote_file_row_numbers(tmp_path):
    raw = as_file_frame(bars("AAPL", 5))
    raw["Close"] = raw["Close"].astype(object)
    raw.loc[4, "Close"] = "abc"
    raw.to_csv(tmp_path / "AAPL.csv", index=False)
    with pytest.raises(DataError, match=r"AAPL: column 'close'.*row 4 \(2024-01-05\): close='abc'"):
        load_panel(SourceSpec(source="csv", path=tmp_path))


# ---------------------------------------------------------------------------------------------- parquet


def test_parquet_with_date_index_and_stem_ticker(tmp_path):
    frame = as_file_frame(bars("005930", 5, price=70000))
    frame["Date"] = pd.to_datetime(frame["Date"])
    frame.set_index("Date").to_parquet(tmp_path / "005930.parquet")
    panel, _ = load_panel(SourceSpec(source="parquet", path=tmp_path / "005930.parquet"))
    assert set(panel[ID]) == {"005930"} and len(panel) == 5


def test_parquet_numeric_ticker_column_becomes_string(tmp_path):
    raw = bars("1234", 3)
    raw[ID] = 1234
    raw.to_parquet(tmp_path / "long.parquet")
    panel, _ = load_panel(SourceSpec(source="parquet", path=tmp_path))
    assert set(panel[ID]) == {"1234"}


def test_unreadable_parquet_names_file(tmp_path):
    (tmp_path / "AAPL.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"AAPL\.parquet: not a readable Parquet"):
        read_source(SourceSpec(source="parquet", path=tmp_path))
