"""Champion per ticker: the lowest-MASE model that beats naive significantly (the leaderboard's DM rule on one
series), naive when none does; failed units are no candidates; the store keeps every run's champions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bt_helpers import panel

from backtest.champion import champions_from_backtest, choose_champions
from backtest.engine import run_backtest
from backtest.evaluate import evaluate
from backtest.folds import FoldPlan
from backtest.significance import ALPHA, beats_reference, dm_table
from common.schema import CHAMPION_COLUMNS, CHAMPION_TABLE_COLUMNS, ID, LIVE, MODEL, RESOLVED_MODEL, Y

PLAN = FoldPlan(horizon=2, step=1, windows=20)


@pytest.fixture(scope="module")
def backtest():
    """A random walk (nothing can beat naive) and a strong linear trend (drift must), 20 folds each."""
    walk = panel(1, 200, seed=4).assign(**{ID: "WALK"})
    rng = np.random.default_rng(7)
    trend = walk.assign(**{ID: "TREND", Y: 50 + 1.0 * np.arange(len(walk)) + rng.normal(0, 0.2, len(walk))})
    result = run_backtest(
        pd.concat([walk, trend]), models={"naive": {}, "drift": {}, "ses": {"alpha": 0.5}}, plan=PLAN, refit_every=1
    )
    return result, evaluate(result)


def test_naive_is_champion_when_nothing_beats_it_and_drift_wins_a_trend(backtest):
    result, evaluation = backtest
    champions = champions_from_backtest(result, evaluation).set_index(ID)
    assert list(champions.reset_index().columns) == list(CHAMPION_COLUMNS)

    walk = champions.loc["WALK"]
    assert walk[MODEL] == "naive" and np.isnan(walk["p_value"]) and walk["mase"] == walk["naive_mase"]
    assert walk["reason"].startswith("nothing beats naive significantly (closest: ")

    trend = champions.loc["TREND"]
    assert trend[MODEL] == "drift" and trend["p_value"] < ALPHA and trend["mase"] < trend["naive_mase"]
    assert trend["reason"].startswith("beats naive (DM p=")
    per_series = evaluation.per_series.set_index([ID, MODEL])["mase"]
    assert trend["mase"] == per_series[("TREND", "drift")] and trend["naive_mase"] == per_series[("TREND", "naive")]
    assert json.loads(champions.loc["TREND", "params"]) == {} and json.loads(walk["params"]) == {}
    assert json.loads(champions_from_backtest(result, evaluation)["params"].iloc[0]) == {}  # naive's


def test_the_rule_is_the_leaderboards_beats_naive_on_each_series_alone(backtest):
    """Same loss (squared), side (one-sided, lower loss) and level as `beats_naive_dm`, applied per series."""
    result, evaluation = backtest
    champions = champions_from_backtest(result, evaluation).set_index(ID)
    for uid, forecasts in result.forecasts.groupby(ID):
        beats = beats_reference(dm_table(forecasts, "naive", step=PLAN.step))
        winners = sorted(m for m, b in beats.items() if b)
        assert (champions.loc[uid, MODEL] != "naive") == bool(winners), uid
        if winners:
            assert champions.loc[uid, MODEL] in winners


def _dm(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{ID: u, "model": m, "reference": "naive", "h": h, "loss": "squared", "p_less": p} for u, m, h, p in rows]
    )


def _per_series(mase: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{ID: u, MODEL: m, "mase": v} for (u, m), v in mase.items()])


def test_lowest_mase_winner_failed_units_excluded_and_every_step_must_be_significant():
    per_series = _per_series(
        {("A", "naive"): 1.0, ("A", "ses"): 0.7, ("A", "arima"): 0.8, ("A", "ets"): 0.9, ("A", "holt"): 0.5}
    )
    dm = _dm(
        [
            ("A", "ses", 1, 0.001),
            ("A", "ses", 2, 0.01),  # fmt: skip
            ("A", "arima", 1, 0.001),
            ("A", "arima", 2, 0.02),  # fmt: skip
            ("A", "ets", 1, 0.001),
            ("A", "ets", 2, 0.03),  # fmt: skip
            ("A", "holt", 1, 0.001),
            ("A", "holt", 2, np.nan),  # untestable step: not significant  # fmt: skip
        ]
    )
    params = {"arima": {"max_p": 3}}
    got = choose_champions(per_series, dm, params=params).iloc[0]
    assert got[MODEL] == "ses" and got["p_value"] == pytest.approx(0.01)  # the largest step's p (IUT)
    failures = pd.DataFrame({ID: ["A"], MODEL: ["ses"], "fold": [3], "error_type": ["ModelFitError"]})
    got = choose_champions(per_series, dm, failures=failures, params=params).iloc[0]
    assert got[MODEL] == "arima" and json.loads(got["params"]) == {"max_p": 3}
    assert got["reason"] == "beats naive (DM p=0.02; MASE 0.8 vs 1)"


def test_a_squared_error_win_with_a_worse_mase_is_no_champion_and_naive_failing_keeps_naive():
    per_series = _per_series({("A", "naive"): 1.0, ("A", "holt"): 1.1, ("B", "naive"): np.nan, ("B", "ses"): 0.5})
    dm = _dm([("A", "holt", 1, 0.001), ("B", "ses", 1, 0.001)])
    got = choose_champions(per_series, dm).set_index(ID)
    assert got.loc["A", MODEL] == "naive"
    assert got.loc["A", "reason"] == "nothing beats naive significantly (closest: holt, DM p=0.001 but not on MASE)"
    assert got.loc["B", MODEL] == "naive" and got.loc["B", "reason"].startswith("naive did not run cleanly")
    only_naive = choose_champions(_per_series({("C", "naive"): 1.0}), _dm([]))
    assert only_naive["reason"].iloc[0] == "nothing beats naive significantly (no other model ran cleanly)"


def test_no_champions_without_naive_in_the_backtest():
    result = run_backtest(panel(1, 60, seed=1), models=["drift"], plan=FoldPlan(horizon=1, step=1, windows=3))
    champions = champions_from_backtest(result, evaluate(result))
    assert champions.empty and list(champions.columns) == list(CHAMPION_COLUMNS)


# ---- the store's champions table ----------------------------------------------------------------------------
def _write_run(store, run_id: str, created_at: str, champions: pd.DataFrame) -> None:
    empty = pd.DataFrame({c: [] for c in (ID, MODEL, "fold", "cutoff", "ds", "h", "y", "yhat")})
    store.write_backtest(
        flow_run_id=run_id,
        forecasts=empty.assign(**{c: [] for c in ("yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95")}),
        metrics=pd.DataFrame({c: [] for c in (ID, MODEL, "fold", "h", "metric", "value")}),
        leaderboard=pd.DataFrame(),
        meta={"created_at": created_at},
        champions=champions,
    )


def _champions(models: dict[str, str]) -> pd.DataFrame:
    rows = [
        {ID: u, MODEL: m, "mase": 0.9, "naive_mase": 1.0, "p_value": 0.01, "reason": "r", "params": "{}"}
        for u, m in models.items()
    ]
    return pd.DataFrame(rows, columns=list(CHAMPION_COLUMNS))


def test_store_keeps_every_runs_champions_idempotently_newest_per_ticker_and_the_changes(tmp_path):
    from store.results_store import ResultStore

    store = ResultStore(tmp_path / "s.duckdb")
    assert store.champions().empty and store.champion_history().empty
    _write_run(store, "run-1", "2024-01-06T06:00:00", _champions({"AAPL": "naive", "MSFT": "naive"}))
    _write_run(store, "run-2", "2024-01-13T06:00:00", _champions({"AAPL": "ses"}))  # MSFT not in this run
    _write_run(store, "run-2", "2024-01-13T06:00:00", _champions({"AAPL": "ses"}))  # a retried write
    _write_run(store, "run-3", "2024-01-20T06:00:00", _champions({"AAPL": "ses", "MSFT": "drift"}))

    latest = store.champions(latest=True).set_index(ID)
    assert latest[MODEL].to_dict() == {"AAPL": "ses", "MSFT": "drift"}
    assert list(store.champions(latest=True).columns) == list(CHAMPION_TABLE_COLUMNS)
    assert latest.loc["AAPL", "flow_run_id"] == "run-3" and str(latest.loc["AAPL", "created_at"])[:10] == "2024-01-20"
    assert len(store.champions(latest=False)) == 5  # run-2 written twice, stored once

    history = store.champion_history()
    changes = history.loc[history[MODEL].ne(history["previous_model"])]
    got = [(r.flow_run_id, r.unique_id, r.previous_model, r.model) for r in changes.itertuples()]
    assert [(run, uid, None if pd.isna(p) else p, m) for run, uid, p, m in got] == [
        ("run-1", "AAPL", None, "naive"),
        ("run-1", "MSFT", None, "naive"),
        ("run-2", "AAPL", "naive", "ses"),
        ("run-3", "MSFT", "naive", "drift"),
    ]
    _write_run(store, "run-3", "2024-01-20T06:00:00", _champions({}))  # a rewrite without champions clears them
    assert store.champions(latest=True).set_index(ID)[MODEL].to_dict() == {"AAPL": "ses", "MSFT": "naive"}


def test_an_existing_live_table_gains_the_resolved_model_column(tmp_path):
    """Stores made before champions existed: the DDL adds resolved_model (NULL on old rows) on first connect."""
    import duckdb

    from store.results_store import ResultStore

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {LIVE} (flow_run_id VARCHAR, unique_id VARCHAR, model VARCHAR, h INTEGER)")
    con.execute(f"INSERT INTO {LIVE} VALUES ('old', 'AAPL', 'naive', 1)")
    con.close()
    store = ResultStore(path)
    assert store.champions().empty
    with store._connect() as con:
        rows = con.execute(f"SELECT model, {RESOLVED_MODEL} FROM {LIVE}").fetchall()
    assert rows == [("naive", None)]
