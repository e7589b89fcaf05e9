"""Event runs in the results store: one idempotent write per run id, read back whole, listed beside price runs."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from backtest.event_live import live_event_probabilities
from backtest.event_task import evaluate_events, event_frame, model_specs, normalize_predictions, run_event_backtest
from common.errors import DataError
from common.schema import (
    EV_LEADERBOARD,
    EVENT_RUN_TABLES,
    ID,
    INTERVAL_COLUMNS,
    LIVE_EVENT_COLUMNS,
    MODEL,
    RUN_ID,
    RUNS,
    P,
)
from store.results_store import ResultStore
from store.tables import DDL
from tests.events.event_helpers import SMALL_FEATURES, panel, plan

HORIZON, RISE = 5, 0.03


@pytest.fixture(scope="module")
def event_run():
    data = panel(n_series=2, seed=9)
    result = run_event_backtest(
        data,
        threshold=RISE,
        lookahead=HORIZON,
        plan=plan(windows=3),
        models=["base_rate", "logistic"],
        feature_config=SMALL_FEATURES,
    )
    frame, columns = event_frame(data, threshold=RISE, lookahead=HORIZON, config=SMALL_FEATURES)
    frames = {str(u): g.reset_index(drop=True) for u, g in frame.groupby(ID)}
    live = live_event_probabilities(
        frames, models=model_specs(["base_rate", "logistic"]), threshold=RISE, lookahead=HORIZON, columns=columns
    )
    return result, evaluate_events(result), live.probabilities


def _write(store: ResultStore, run_id: str, run) -> None:
    result, evaluation, probabilities = run
    store.write_event_backtest(
        flow_run_id=run_id,
        predictions=result.predictions,
        metrics=evaluation.metrics,
        leaderboard=evaluation.leaderboard,
        meta={**result.meta, "created_at": "2024-05-01T21:45:00+00:00"},
        timings=result.timings,
        failures=result.failures,
        probabilities=probabilities,
    )


def test_an_event_run_reads_back_whole_and_rewriting_it_replaces_it(tmp_path, event_run):
    result, evaluation, probabilities = event_run
    store = ResultStore(tmp_path / "store.duckdb")
    _write(store, "run-a", event_run)
    _write(store, "run-a", event_run)  # a retried task: the same rows, not twice as many
    tables, meta = store.event_run("run-a")
    assert set(tables) == set(EVENT_RUN_TABLES)
    pd.testing.assert_frame_equal(normalize_predictions(tables["predictions"]), result.predictions)
    assert len(tables["metrics"]) == len(evaluation.metrics)
    assert len(tables["timings"]) == len(result.timings) and tables["failures"].empty
    stored = tables["probabilities"]
    pd.testing.assert_frame_equal(stored[list(LIVE_EVENT_COLUMNS)], probabilities, check_dtype=False)
    assert list(meta) == list(result.meta)  # key order kept: the report lists the plan in this order
    assert meta["threshold"] == RISE and meta["horizon"] == HORIZON

    runs = store.event_runs()
    assert list(runs[RUN_ID]) == ["run-a"] and runs["n_prediction_rows"].iloc[0] == len(result.predictions)
    live = store.live_event_probabilities("run-a")
    assert len(live) == 2 * 2 and live[P].between(0, 1).all()
    board = store._query(f"SELECT * FROM {EV_LEADERBOARD} WHERE {RUN_ID} = 'run-a'", [])
    assert set(board[MODEL]) == {"base_rate", "logistic"} and "brier" in set(board["metric"])


def test_stored_runs_list_both_tasks_and_resolve_ids_prefixes_and_latest(tmp_path, event_run):
    store = ResultStore(tmp_path / "store.duckdb")
    assert store.stored_runs().empty
    with pytest.raises(DataError, match="no backtest runs stored"):
        store.resolve_task_run("latest")
    forecasts = pd.DataFrame(
        {
            ID: ["A"],
            MODEL: ["naive"],
            "fold": [0],
            "cutoff": ["2024-01-02"],
            "ds": ["2024-01-03"],
            "h": [1],
            "y": [1.0],
            "yhat": [1.0],
            **{c: [None] for c in INTERVAL_COLUMNS},
        }
    )
    metrics = pd.DataFrame({ID: ["A"], MODEL: ["naive"], "fold": [0], "h": [1], "metric": ["mae"], "value": [0.0]})
    store.write_backtest(
        flow_run_id="price-1",
        forecasts=forecasts,
        metrics=metrics,
        leaderboard=pd.DataFrame({MODEL: ["naive"]}),
        meta={"created_at": "2024-04-27T10:00:00+00:00"},
    )
    _write(store, "event-1", event_run)  # created 2024-05-01: the newer one

    runs = store.stored_runs()
    assert list(zip(runs["task"], runs[RUN_ID], strict=True)) == [("event", "event-1"), ("price", "price-1")]
    assert store.resolve_task_run("latest") == ("event", "event-1")
    assert store.resolve_task_run("pri") == ("price", "price-1")
    assert store.resolve_task_run("event-1") == ("event", "event-1")
    with pytest.raises(DataError, match="matches no stored backtest run"):
        store.resolve_task_run("zzz")
    _write(store, "event-2", event_run)
    with pytest.raises(DataError, match="matches 2"):
        store.resolve_task_run("event-")
    assert list(store.backtest_runs()[RUN_ID]) == ["price-1"]  # the price readers never see event runs
    with pytest.raises(DataError, match="no event run"):
        store.event_run("price-1")


def test_a_store_written_before_the_event_tables_keeps_working(tmp_path, event_run):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(DDL)  # the tables an earlier pricecast created, and nothing else
    con.execute(
        f"INSERT INTO {RUNS} VALUES ('old-run', TIMESTAMP '2023-01-01 00:00:00', 'A', 'naive', 1, 0, ?)",
        [json.dumps({})],
    )
    con.close()
    store = ResultStore(path)
    assert list(store.stored_runs()["task"]) == ["price"]
    _write(store, "event-1", event_run)
    assert list(store.stored_runs()[RUN_ID]) == ["event-1", "old-run"]
