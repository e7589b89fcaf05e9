"""PriceStore: idempotent upserts, all-or-nothing transactions, reads, lock-conflict retries."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from ingest_helpers import bars

from common.errors import DataError, SourceError
from common.schema import BAR_COLUMNS, DS, ID
from common.settings import store_path
from ingest.price_store import PriceStore
from ingest.spec import SourceSpec
from ingest.validate import validate


def panel_of(*raws: pd.DataFrame) -> pd.DataFrame:
    return validate(pd.concat(raws), SourceSpec())[0]


def count_rows(store: PriceStore) -> int:
    with duckdb.connect(str(store.path)) as con:
        return con.execute("SELECT count(*) FROM prices").fetchone()[0]


def test_upsert_is_idempotent_and_replaces_values(tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    panel = panel_of(bars("AAPL", 8), bars("005930", 5, price=70000))
    assert store.upsert(panel, "csv") == 13
    store.upsert(panel, "csv")
    assert count_rows(store) == 13
    changed = panel.assign(close=panel["close"] + 1)
    store.upsert(changed.head(3), "csv")
    back = store.read("csv", ["005930"])
    assert count_rows(store) == 13 and back["close"].iloc[0] == changed["close"].iloc[0]


def test_read_filters_and_keeps_panel_dtypes(tmp_path):
    store = PriceStore(tmp_path / "p.duckdb")
    store.upsert(panel_of(bars("AAPL", 8), bars("005930", 5, price=70000)), "csv")
    store.upsert(panel_of(bars("AAPL", 3)), "sample")
    back = store.read("csv", ("005930",), "2024-01-03", "2024-01-05")
    assert back[ID].tolist() == ["005930"] * 3 and str(back[DS].dtype) == "datetime64[ns]"
    assert tuple(back.columns) == (ID, DS, *BAR_COLUMNS)
    assert len(store.read("csv")) == 13 and len(store.read("sample")) == 3 and store.sources() == ["csv", "sample"]


def test_last_session_and_missing_file(tmp_path):
    store = PriceStore(tmp_path / "absent" / "p.duckdb")
    assert store.last_session("csv", "AAPL") is None and store.read("csv").empty
    assert not store.path.exists()  # reading does not create the file
    store.upsert(panel_of(bars("AAPL", 8)), "csv")
    assert store.last_session("csv", "AAPL") == pd.Timestamp("2024-01-11")
    assert store.session_range("csv", "AAPL") == (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-11"))
    assert store.last_session("csv", "MSFT") is None


def test_crash_mid_write_leaves_no_partial_rows(tmp_path, monkeypatch):
    store = PriceStore(tmp_path / "p.duckdb")
    store.upsert(panel_of(bars("IBM", 4)), "csv")
    before = store.read("csv")
    calls = {"n": 0}
    real = PriceStore._insert_chunk

    def crash_on_second_chunk(self, con, chunk):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real(self, con, chunk)

    monkeypatch.setattr(PriceStore, "_insert_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        store.upsert(panel_of(bars("AAPL", 10), bars("IBM", 6)), "csv", chunk_rows=5)
    assert calls["n"] == 2  # the first chunk was written inside the transaction, then rolled back
    pd.testing.assert_frame_equal(store.read("csv"), before)


def test_duplicate_keys_refused(tmp_path):
    panel = panel_of(bars("AAPL", 3))
    with pytest.raises(DataError, match="duplicate .* AAPL 2024-01-02"):
        PriceStore(tmp_path / "p.duckdb").upsert(pd.concat([panel, panel.head(1)]), "csv")


def test_lock_conflict_retried_with_backoff_then_source_error(tmp_path, monkeypatch):
    waits: list[float] = []
    real_connect = duckdb.connect
    failures = [duckdb.IOException('Could not set lock on file "p.duckdb": Conflicting lock is held')] * 2

    def flaky_connect(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", flaky_connect)
    store = PriceStore(tmp_path / "p.duckdb", lock_delay=0.1, sleep=waits.append)
    store.upsert(panel_of(bars("AAPL", 3)), "csv")
    assert waits == [0.1, 0.2]
    failures.extend([duckdb.IOException("Could not set lock on file")] * 10)
    with pytest.raises(SourceError, match="locked by another process"):
        PriceStore(tmp_path / "p.duckdb", lock_attempts=3, sleep=waits.append).upsert(panel_of(bars("IBM", 3)), "csv")


def test_default_store_lives_in_pricecast_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRICECAST_HOME", str(tmp_path / "home"))
    store = PriceStore(store_path())
    store.upsert(panel_of(bars("AAPL", 3)), "sample")
    assert (tmp_path / "home" / "pricecast.duckdb").exists()
