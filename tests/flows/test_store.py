"""ResultStore: idempotent transactional writes keyed by flow run, live-forecast scoring, history reads, locks."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from common.errors import DataError, SourceError
from ingest.price_store import PriceStore
from store.results_store import ResultStore, leaderboard_long, live_forecast_frame, score_live_forecasts

DS = pd.bdate_range("2021-03-01", periods=12)


def _bars(n: int) -> pd.DataFrame:
    close = 100.0 + np.arange(n)
    return pd.DataFrame(
        {"unique_id": "AAA", "ds": DS[:n], "open": close, "high": close, "low": close, "close": close,
         "adj_close": close / 2, "volume": 1.0}
    )  # fmt: skip


def _live(model: str = "naive", *, target: str = "close", yhat=(108.0, 108.0, 108.0)) -> pd.DataFrame:
    history = _bars(8).assign(y=lambda f: f["close"])
    forecast = pd.DataFrame({"unique_id": "AAA", "ds": DS[8:11], "h": [1, 2, 3], "yhat": list(yhat)})
    forecast["yhat_lo_95"], forecast["yhat_hi_95"] = forecast["yhat"] - 1.5, forecast["yhat"] + 1.5
    return live_forecast_frame(forecast, history, model=model, source="sample", target=target)


def test_live_forecast_frame_adds_as_of_last_y_and_mase_scale():
    live = _live()
    assert (live["as_of"] == DS[7]).all() and (live["last_y"] == 107.0).all() and (live["scale_mae"] == 1.0).all()
    assert live["yhat_lo_80"].isna().all()  # absent intervals are stored as NULL, not invented


def test_write_live_is_idempotent_per_run_and_keeps_other_runs(tmp_path):
    store = ResultStore(tmp_path / "s.duckdb")
    assert store.write_live(_live(), flow_run_id="r1") == 3
    store.write_live(_live(yhat=(1.0, 2.0, 3.0)), flow_run_id="r1")  # same run again: replaced, not appended
    store.write_live(_live("drift"), flow_run_id="r2")
    stored = store.live_forecasts()
    assert len(stored) == 6
    assert stored.loc[stored["flow_run_id"] == "r1", "yhat"].tolist() == [1.0, 2.0, 3.0]


def test_failed_write_leaves_the_previous_run_intact(tmp_path):
    store = ResultStore(tmp_path / "s.duckdb")
    store.write_live(_live(), flow_run_id="r1")
    with pytest.raises(DataError, match="repeat"):
        store.write_live(pd.concat([_live(), _live()]), flow_run_id="r1")
    assert len(store.live_forecasts("r1")) == 3


def test_forecasts_are_scored_once_their_sessions_have_prices(tmp_path):
    path = tmp_path / "s.duckdb"
    prices, store = PriceStore(path), ResultStore(path)
    prices.upsert(_bars(8), "sample")
    store.write_live(_live(), flow_run_id="r1")  # naive: 107 -> 108 flat
    store.write_live(_live("drift", target="adj_close", yhat=(54.0, 54.5, 55.0)), flow_run_id="r2")
    assert score_live_forecasts(store) == 0  # no prices for the forecast sessions yet
    prices.upsert(_bars(10), "sample")  # two of the three sessions trade
    assert score_live_forecasts(store) == 4
    assert score_live_forecasts(store) == 0  # idempotent
    scores = store.live_scores().set_index(["model", "h"])
    # naive forecast 108 for closes 108, 109; drift on adj_close (close / 2) 54, 54.5 for 54, 54.5: exact
    assert scores.loc[("naive", 1), "abs_error"] == 0.0 and scores.loc[("naive", 2), "abs_error"] == 1.0
    assert scores.loc[("drift", 1), "abs_error"] == 0.0 and scores.loc[("drift", 2), "abs_error"] == 0.0
    assert scores.loc[("naive", 2), "covered_95"] == True  # noqa: E712 - nullable boolean column
    assert pd.isna(scores.loc[("naive", 1), "covered_80"])
    record = store.live_record().set_index("model")
    assert record.loc["naive", ["n_forecasts", "n_scored"]].tolist() == [3, 2]
    assert record.loc["naive", "mae"] == pytest.approx(0.5) and record.loc["naive", "mase"] == pytest.approx(0.5)
    assert record.loc["drift", "hit_rate"] == pytest.approx(1.0)
    assert record.index[0] == "drift"  # best live MASE first


def test_scoring_without_prices_or_file_is_a_no_op(tmp_path):
    assert ResultStore(tmp_path / "absent.duckdb").score_live() == 0
    store = ResultStore(tmp_path / "s.duckdb")
    store.write_live(_live(), flow_run_id="r1")
    assert store.score_live() == 0


def test_backtest_runs_are_replaced_by_run_id_and_leaderboards_read_back(tmp_path):
    store = ResultStore(tmp_path / "s.duckdb")
    forecasts = pd.DataFrame(
        {"unique_id": "AAA", "model": ["naive", "drift"], "fold": 0, "cutoff": DS[5], "ds": DS[6], "h": 1,
         "y": 1.0, "yhat": [1.0, 2.0], "yhat_lo_80": np.nan, "yhat_hi_80": np.nan, "yhat_lo_95": np.nan,
         "yhat_hi_95": np.nan}
    )  # fmt: skip
    metrics = pd.DataFrame({"unique_id": "AAA", "model": ["naive"], "fold": 0, "h": 1, "metric": "mae", "value": 0.0})
    board = pd.DataFrame({"model": ["naive", "drift"], "mase": [0.9, 1.1], "beats_naive_dm": [pd.NA, False]})
    for run, created in (("r1", "2024-01-06T06:00:00"), ("r2", "2024-01-13T06:00:00"), ("r1", "2024-01-06T06:00:00")):
        store.write_backtest(
            flow_run_id=run, forecasts=forecasts, metrics=metrics, leaderboard=board, meta={"created_at": created}
        )
    assert store.backtest_runs()["flow_run_id"].tolist() == ["r2", "r1"]
    assert len(store.backtest_table("backtest_forecasts", "r1")) == 2
    boards = store.leaderboards()
    assert boards["flow_run_id"].iloc[0] == "r2" and len(boards) == 2 * 2 * 2  # runs x models x metrics
    assert store.leaderboards(last=1)["flow_run_id"].unique().tolist() == ["r2"]
    long = leaderboard_long(board).set_index(["model", "metric"])["value"]
    assert long[("drift", "beats_naive_dm")] == 0.0 and np.isnan(long[("naive", "beats_naive_dm")])


def test_lock_conflicts_are_retried_with_backoff_then_reported(tmp_path, monkeypatch):
    waits: list[float] = []
    real = duckdb.connect
    calls = {"n": 0}

    def flaky(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise duckdb.IOException("Could not set lock on file: Conflicting lock is held by pid 1")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", flaky)
    store = ResultStore(tmp_path / "s.duckdb", sleep=waits.append)
    assert store.write_live(_live(), flow_run_id="r1") == 3
    assert waits == [0.1, 0.2]

    calls["n"] = -100  # always locked now
    with pytest.raises(SourceError, match="locked by another process"):
        ResultStore(tmp_path / "s.duckdb", lock_attempts=3, sleep=waits.append).live_forecasts()


def test_a_stored_run_reads_back_whole_and_runs_resolve_by_prefix(tmp_path):
    store = ResultStore(tmp_path / "s.duckdb")
    forecasts = pd.DataFrame(
        {"unique_id": "AAA", "model": "naive", "fold": 0, "cutoff": DS[5], "ds": DS[6], "h": 1, "y": 1.0,
         "yhat": 1.0, "yhat_lo_80": np.nan, "yhat_hi_80": np.nan, "yhat_lo_95": np.nan, "yhat_hi_95": np.nan},
        index=[0],
    )  # fmt: skip
    metrics = pd.DataFrame({"unique_id": "AAA", "model": ["naive"], "fold": 0, "h": 1, "metric": "mae", "value": 0.0})
    fold_info = pd.DataFrame(
        {"unique_id": "AAA", "fold": [0], "cutoff": DS[5], "train_start": DS[0], "train_end": DS[5], "last_y": 1.0,
         "scale_mae": 0.5, "scale_mse": 0.25}
    )  # fmt: skip
    quality = pd.DataFrame({"unique_id": ["AAA"], "check": ["rows_in"], "count": [6], "detail": [""]})
    failures = pd.DataFrame(
        {"unique_id": ["AAA"], "model": ["drift"], "fold": [0], "error_type": ["E"], "message": ["x"]}
    )
    for run, created in (("abc-1", "2024-01-06T06:00:00"), ("abd-2", "2024-01-13T06:00:00")):
        store.write_backtest(
            flow_run_id=run, forecasts=forecasts, metrics=metrics, leaderboard=pd.DataFrame({"model": ["naive"]}),
            meta={"created_at": created, "plan": {"step": 1}}, fold_info=fold_info, quality=quality, failures=failures,
        )  # fmt: skip
    assert store.resolve_run(None) == "abd-2" == store.resolve_run("latest") == store.resolve_run("abd")
    with pytest.raises(DataError, match="matches 2"):
        store.resolve_run("ab")
    with pytest.raises(DataError, match="matches no"):
        store.resolve_run("zzz")
    tables, meta = store.backtest_run("abc-1")
    assert meta["plan"] == {"step": 1}
    pd.testing.assert_frame_equal(tables["quality"], quality, check_dtype=False)
    assert tables["fold_info"]["scale_mae"].tolist() == [0.5] and tables["failures"]["model"].tolist() == ["drift"]
    assert tables["timings"].empty and "flow_run_id" not in tables["forecasts"].columns
