"""The store tells the truth and never hides damage: a corrected file replaces what it covers (issue #14 item 2),
tickers that look like paths never shape file paths (item 14), and a damaged DuckDB file is refused with one
line naming it and the recovery step, never written to (item 15; `pricecast store check`)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.duckdb_io import is_lock_error
from common.errors import StoreDamagedError
from common.fileio import name_of, safe_name
from common.schema import CLOSE, DS, ID
from common.settings import home, store_path
from ingest.load import load_panel
from ingest.price_store import PriceStore
from ingest.spec import SourceSpec
from pricecast.cli import app
from store.results_store import ResultStore
from tests.flows.helpers import backtest_params, forecast_params
from tests.ingest.ingest_helpers import bars

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
START = "2024-04-01"  # 30 weekdays without an NYSE holiday: every bar is a session
TYPO_DAY = "2024-04-09"  # the 7th session from START
TYPO = 2.5  # a typo the spike check (x3 round trips) lets through: only a corrected file can fix it


def _bars(ticker: str, n: int, **kwargs) -> pd.DataFrame:
    return bars(ticker, n, start=kwargs.pop("start", START), **kwargs)


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _with_typo(frame: pd.DataFrame) -> pd.DataFrame:
    """The file with one row's prices x2.5 (a typo in the source)."""
    out = frame.copy()
    at = out[DS] == TYPO_DAY
    out.loc[at, ["open", "high", "low", CLOSE, "adj_close"]] *= TYPO
    return out


def _ingest(path: Path, store: PriceStore):
    return load_panel(SourceSpec(source="csv", path=path, target="close"), store=store)


def _one_line(stderr: str, prefix: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in stderr, stderr
    return lines[0]


# ---------------------------------------------------------------------- item 2: deleted rows do not survive


def test_a_corrected_file_removes_the_deleted_row_and_keeps_rows_outside_its_span(tmp_path):
    store = PriceStore(tmp_path / "s.duckdb")
    older = _bars("AAPL", 5, start="2024-03-01")  # history the corrected file does not cover: kept
    _ingest(_csv(tmp_path / "old.csv", pd.concat([older, _bars("MSFT", 12)])), store)
    _ingest(_csv(tmp_path / "typo.csv", _with_typo(_bars("AAPL", 12))), store)
    assert store.read("csv", ["AAPL"]).set_index(DS).loc[TYPO_DAY, CLOSE] > 200

    corrected = _bars("AAPL", 12)
    corrected = corrected[corrected[DS] != TYPO_DAY]  # the typo row deleted from the file
    panel, report = _ingest(_csv(tmp_path / "fixed.csv", corrected), store)

    stored = store.read("csv")
    aapl = stored[stored[ID] == "AAPL"]
    assert pd.Timestamp(TYPO_DAY) not in set(aapl[DS]) and aapl[CLOSE].max() < 200
    assert len(aapl) == 5 + 11  # the older rows outside the file's span are kept
    assert len(stored[stored[ID] == "MSFT"]) == 12  # another ticker is untouched
    quality = report.tickers["AAPL"]
    assert quality.rows_removed_from_store == 1
    assert any(TYPO_DAY in w and "removed from the store" in w for w in quality.warnings)
    assert any("1 stored rows removed (no longer in the file)" in line for line in report.summary_lines())


def test_the_ingest_summary_names_the_removed_rows(tmp_path):
    source = _csv(tmp_path / "a.csv", _bars("AAPL", 12))
    assert CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(source)]).exit_code == 0
    fixed = _bars("AAPL", 12)
    _csv(source, fixed[fixed[DS] != TYPO_DAY])
    result = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(source)])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())  # rich wraps long lines
    assert "1 stored rows removed (no longer in the file)" in shown
    assert f"no longer in the file, removed from the store: {TYPO_DAY}" in shown


def test_replacing_a_span_is_all_or_nothing(tmp_path, monkeypatch):
    store = PriceStore(tmp_path / "s.duckdb")
    store.upsert(_bars("AAPL", 12), "csv")
    fixed = _bars("AAPL", 12)
    fixed = fixed[fixed[DS] != TYPO_DAY]

    def crash(self, con, chunk):
        raise OSError("disk full")

    monkeypatch.setattr(PriceStore, "_insert_chunk", crash)
    with pytest.raises(OSError, match="disk full"):
        store.replace(fixed, "csv")
    assert len(store.read("csv")) == 12  # the deletion rolled back with the failed insert


def test_live_sources_keep_rows_a_fetch_does_not_bring(tmp_path):
    store = PriceStore(tmp_path / "s.duckdb")
    store.upsert(_bars("AAPL", 12), "yfinance")
    store.upsert(_bars("AAPL", 12).iloc[-2:], "yfinance")  # an incremental fetch brings only the last sessions
    assert len(store.read("yfinance")) == 12


def _live_forecast(day: str, yhat: float, *, last_y: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of": [pd.Timestamp(day) - pd.offsets.BDay(1)],
            "source": "csv",
            "target": "close",
            "unique_id": "AAPL",
            "model": "naive",
            "ds": [pd.Timestamp(day)],
            "h": 1,
            "yhat": yhat,
            "yhat_lo_80": np.nan,
            "yhat_hi_80": np.nan,
            "yhat_lo_95": yhat - 5,
            "yhat_hi_95": yhat + 5,
            "last_y": last_y,
            "scale_mae": 0.5,
        }
    )


@pytest.mark.parametrize("fix", ["row deleted", "value corrected"])
def test_live_scores_against_a_typo_follow_the_corrected_file(tmp_path, fix):
    path = store_path()
    good = _bars("AAPL", 12)
    source = _csv(tmp_path / "a.csv", _with_typo(good))
    assert CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(source)]).exit_code == 0
    actual = float(good.set_index(DS).loc[TYPO_DAY, CLOSE])
    results = ResultStore(path)
    results.write_live(_live_forecast(TYPO_DAY, actual, last_y=actual), flow_run_id="live-1")
    assert results.score_live() == 1
    typo_mase = results.live_record()["mase"].iloc[0]
    assert typo_mase > 100  # scored against the typo: (2.5 - 1) x the price over a scale of 0.5

    _csv(source, good[good[DS] != TYPO_DAY] if fix == "row deleted" else good)
    assert CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(source)]).exit_code == 0
    history = CliRunner().invoke(app, ["history"])  # `history` scores against the prices as they are now
    assert history.exit_code == 0, history.output
    record = results.live_record().iloc[0]
    if fix == "row deleted":
        assert record["n_scored"] == 0 and pd.isna(record["mase"])  # nothing left to score it against
    else:
        assert record["n_scored"] == 1 and record["mase"] == pytest.approx(0.0)
    assert f"{typo_mase:.4g}" not in history.stdout


# ------------------------------------------------------------- item 14: tickers never shape file paths

HOSTILE = ["../evil", "a/b", "..", ".", "a\\b", "C:evil", "nul\x00byte", "100%", "a%2Fb", "a_b", "USD/KRW", "../../x"]


def test_safe_names_stay_one_component_never_collide_and_round_trip(tmp_path):
    names = {t: safe_name(t) for t in HOSTILE + ["AAPL", "005930.KS", "^GSPC", "BTC-USD", "btc-usd", "삼성전자"]}
    assert len(set(names.values())) == len(names)  # collision-free, also case-insensitively
    assert len({n.lower() for n in names.values()}) == len(names)
    for ticker, name in names.items():
        assert not any(c in name for c in "/\\:\x00") and not name.startswith("."), (ticker, name)
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
        assert name_of(name) == ticker
    assert names["AAPL"] == "AAPL" and names["005930.KS"] == "005930.KS" and names["USD/KRW"] == "USD%2FKRW"
    long = "X" * 400
    assert len(safe_name(long)) < 120 and safe_name(long) != safe_name(long + "Y")


def test_fit_directories_and_cache_keys_of_path_like_tickers_stay_inside_their_roots(tmp_path):
    from backtest.folds import FoldPlan, panel_folds
    from tasks.backtest import audit_cache_key, price_batch_key, price_unit_key
    from tasks.fitted import fit_dir

    for ticker in HOSTILE:
        directory = fit_dir(tmp_path, ticker, "naive", {})
        assert directory.parent.parent == tmp_path and name_of(directory.parent.name) == ticker
        assert directory.resolve().is_relative_to(tmp_path.resolve())
        series = bars(ticker, 40).assign(**{DS: pd.bdate_range("2024-01-02", periods=40)})
        series["y"] = series[CLOSE]
        folds = panel_folds(series, FoldPlan(horizon=2, step=2, windows=2))[ticker]
        from backtest.units import PriceUnit

        unit = PriceUnit(uid=ticker, model="naive", params={}, folds=tuple(folds), refit_every=10, horizon=2)
        audit = {"series": {ticker: series}, "folds": {ticker: folds}, "config": _Config()}
        batch = {"units": [unit], "series": {ticker: series}}
        for key in (price_unit_key(unit, series), price_batch_key(None, batch), audit_cache_key(None, audit)):
            assert not any(c in key for c in "/\\:\x00") and safe_name(ticker) in key, key
            assert (tmp_path / key).resolve().parent == tmp_path.resolve()


class _Config:
    def fingerprint(self) -> str:
        return "config"


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_forecast_and_backtest_of_path_like_tickers_write_only_inside_home_and_the_run(prefect_server, tmp_path):
    from flows.backtest import backtest_flow
    from flows.forecast import forecast_flow

    tickers = ["../evil", "a/b", ".."]
    data = tmp_path / "data"
    data.mkdir()
    source = _csv(data / "hostile.csv", pd.concat([_bars(t, 40) for t in tickers]))
    before = {p for p in tmp_path.parent.iterdir()}
    out = tmp_path / "run"
    common = {"source": "csv", "path": str(source), "models": ["naive"], "horizon": 2}
    state = forecast_flow(params=forecast_params(**common), return_state=True)
    assert state.is_completed(), state.message
    state = backtest_flow(params=backtest_params(**common, windows=2, step=2, out_dir=str(out)), return_state=True)
    assert state.is_completed(), state.message

    root = home().resolve()
    for path in tmp_path.rglob("*"):
        inside = path.resolve().is_relative_to(root) or path.resolve().is_relative_to(out)
        assert inside or path == data or path.parent == data, path
    assert {p for p in tmp_path.parent.iterdir()} - before <= set()  # nothing next to this test's directory
    fitted = {name_of(p.name) for p in (root / "models").iterdir()}
    assert fitted == set(tickers)  # one directory per ticker, each name decodes back to its ticker
    results = root / "results"
    assert all(p.parent == results for p in results.rglob("*") if p.is_file())  # no ticker made a subdirectory
    keys = [p.name for p in results.iterdir() if p.name.startswith("unit-")]
    assert {k.split("-naive-")[0].removeprefix("unit-") for k in keys} == {safe_name(t) for t in tickers}


# ---------------------------------------------------------------- item 15: a damaged store is refused


def _stored(path: Path) -> Path:
    PriceStore(path).upsert(_bars("AAPL", 30), "csv")
    con = duckdb.connect(str(path))  # a second table large enough to span several blocks
    con.execute("CREATE TABLE filler AS SELECT range AS i, range * 0.5 AS x FROM range(300000)")
    con.close()
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _corrupt_a_block(path: Path, table: str = "filler") -> None:
    """Flip bytes inside one data block of `table` (found with DuckDB's storage_info), past its checksum."""
    con = duckdb.connect(str(path))
    block = con.execute(
        f"SELECT block_id FROM pragma_storage_info('{table}') WHERE block_id >= 0 ORDER BY block_id DESC LIMIT 1"
    ).fetchone()[0]
    size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
    con.close()
    offset = 3 * 4096 + int(block) * int(size) + 64  # after the file's three header blocks and the block checksum
    with path.open("r+b") as fh:
        fh.seek(offset)
        chunk = fh.read(256)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {"truncated": _truncate, "random bytes": _random_bytes, "corrupt block": _corrupt_a_block}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_ingest_into_a_damaged_store_stops_with_one_line_and_writes_nothing(tmp_path, damage):
    path = _stored(store_path())
    DAMAGE[damage](path)
    damaged = path.read_bytes()
    source = _csv(tmp_path / "a.csv", _bars("MSFT", 12))
    result = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(source)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    line = _one_line(result.stderr, "error: ")
    assert f"price store {path} is damaged" in line and "mv " in line and "re-ingesting rebuilds" in line
    assert "stored in" not in result.stdout  # no success message
    assert path.read_bytes() == damaged  # not written to, not even the table DDL


def test_load_panel_raises_the_damaged_store_error_and_it_is_never_retried(tmp_path):
    from tasks.retry_conditions import is_network_error

    path = _stored(tmp_path / "s.duckdb")
    _corrupt_a_block(path)
    with pytest.raises(StoreDamagedError, match=r"filler: the block at location \d+ fails its checksum") as info:
        _ingest(_csv(tmp_path / "a.csv", _bars("MSFT", 12)), PriceStore(path))
    assert not is_network_error(info.value)  # "block" is not a "lock": Prefect does not retry it
    assert is_lock_error(duckdb.IOException('Could not set lock on file "x": Conflicting lock is held'))


def test_a_read_that_meets_a_corrupt_block_names_the_file(tmp_path):
    path = _stored(tmp_path / "s.duckdb")
    _corrupt_a_block(path, "filler")
    with pytest.raises(StoreDamagedError, match=f"results store {path} is damaged"):
        ResultStore(path)._query("SELECT sum(x) FROM filler", [])


def test_store_check_prints_row_counts_and_the_verdict(tmp_path):
    path = _stored(tmp_path / "s.duckdb")
    ResultStore(path).write_live(_live_forecast(TYPO_DAY, 100.0, last_y=100.0), flow_run_id="r1")
    healthy = CliRunner().invoke(app, ["store", "check", "--path", str(path)])
    assert healthy.exit_code == 0, healthy.output
    assert "prices" in healthy.stdout and "300000" in healthy.stdout and "live_forecasts" in healthy.stdout
    assert f"healthy: {path}" in healthy.stdout.replace("\n", "")

    _corrupt_a_block(path)
    damaged = CliRunner().invoke(app, ["store", "check", "--path", str(path)])
    assert damaged.exit_code == EXIT_FAILED
    line = _one_line(damaged.stderr, "damaged: ")
    assert f"store {path} is damaged (table filler: the block at location" in line and "mv " in line
    assert "unreadable" in damaged.stdout  # the per-table row counts show which table


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_store_check_of_a_file_that_cannot_be_opened(tmp_path, damage):
    path = _stored(tmp_path / "s.duckdb")
    DAMAGE[damage](path)
    result = CliRunner().invoke(app, ["store", "check", "--path", str(path)])
    assert result.exit_code == EXIT_FAILED
    line = _one_line(result.stderr, "damaged: ")
    assert f"store {path} is damaged" in line and "restore a backup" in line


def test_store_check_of_a_missing_file_or_a_directory_exits_2(tmp_path):
    for target in (tmp_path / "absent.duckdb", tmp_path):
        result = CliRunner().invoke(app, ["store", "check", "--path", str(target)])
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        _one_line(result.stderr, "error: ")
    assert not (tmp_path / "absent.duckdb").exists()  # checking never creates a store


def test_store_check_defaults_to_the_configured_store(monkeypatch, tmp_path):
    monkeypatch.setenv("PRICECAST_STORE", str(_stored(tmp_path / "custom.duckdb")))
    result = CliRunner().invoke(app, ["store", "check"])
    assert result.exit_code == 0 and "custom.duckdb" in result.stdout.replace("\n", "")
    assert os.environ["PRICECAST_STORE"].endswith("custom.duckdb")
