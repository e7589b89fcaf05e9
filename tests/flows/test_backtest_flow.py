"""backtest_flow on the test API server: caching and resume, failure isolation, store, artifacts, run logs.

"Only what changed" with the statsforecast fold convention: the last fold ends at a ticker's last session, so
one new session moves every cutoff of that ticker and all its units rerun; other tickers' units stay cached.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.flows.helpers import (
    backtest_params,
    flow_run_id,
    latest_artifacts,
    register_boom,
    run_logs,
    sample_csv,
    unit_states,
)

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]

TINY = {"models": ["naive", "drift"], "windows": 2, "step": 3, "horizon": 3, "start": "2012-01-01"}


def _run(**params):
    from flows.backtest import backtest_flow

    return backtest_flow(params=backtest_params(**{**TINY, **params}), return_state=True)


def test_rerun_of_an_unchanged_backtest_is_all_cached_and_both_runs_are_stored(prefect_server, tmp_path):
    from common.settings import store_path
    from store.results_store import ResultStore

    first = _run(tickers=["AAPL"], out_dir=str(tmp_path / "a"))
    assert first.is_completed(), first.message
    assert set(unit_states(first, expected=2).values()) == {"Completed"}
    second = _run(tickers=["AAPL"], out_dir=str(tmp_path / "b"))
    assert second.is_completed(), second.message
    assert unit_states(second, expected=2) == {"naive on AAPL": "Cached", "drift on AAPL": "Cached"}
    a, b = (pd.read_parquet(tmp_path / d / "forecasts.parquet") for d in "ab")
    pd.testing.assert_frame_equal(a, b)

    store = ResultStore(store_path())
    runs = store.backtest_runs()
    assert set(runs["flow_run_id"]) == {flow_run_id(first), flow_run_id(second)}
    assert len(store.backtest_table("backtest_forecasts", flow_run_id(second))) == len(b)
    assert set(store.leaderboards()["model"]) == {"naive", "drift"}

    artifacts = latest_artifacts()
    for key in ("backtest-summary", "backtest-leaderboard", "backtest-report", "backtest-progress", "data-quality"):
        assert key in artifacts, key
    # No report server runs here: no dead file:// link, but where the file is and the command that serves it.
    report_note = artifacts["backtest-report"].data
    assert "(file://" not in report_note and "pricecast reports" in report_note
    assert artifacts["backtest-report"].description.startswith("The run's HTML report")
    assert "**Leakage audit:** passed: in all 2 folds of 1 series" in artifacts["backtest-summary"].data


def test_a_new_session_for_one_ticker_reruns_only_that_tickers_units(prefect_server, tmp_path):
    short = sample_csv(
        tmp_path / "short.csv", ("AAPL", "IBM"), start="2012-01-01", end="2012-12-31", drop_last={"AAPL": 1}
    )
    full = sample_csv(tmp_path / "full.csv", ("AAPL", "IBM"), start="2012-01-01", end="2012-12-31")
    first = _run(source="csv", path=str(short), out_dir=str(tmp_path / "a"))
    assert first.is_completed(), first.message
    second = _run(source="csv", path=str(full), out_dir=str(tmp_path / "b"))
    assert unit_states(second, expected=4) == {
        "naive on AAPL": "Completed",
        "drift on AAPL": "Completed",
        "naive on IBM": "Cached",
        "drift on IBM": "Cached",
    }


def test_a_run_that_dies_part_way_is_resumed_from_its_finished_units(prefect_server, tmp_path, monkeypatch):
    import backtest.units
    from backtest.units import run_unit

    def dies_on_drift(unit, series, **kwargs):
        if unit.model == "drift":
            raise RuntimeError("worker killed mid-unit")
        return run_unit(unit, series, **kwargs)

    monkeypatch.setattr(backtest.units, "run_unit", dies_on_drift)  # what the unit task calls
    crashed = _run(tickers=["AAPL"], out_dir=str(tmp_path / "a"))
    assert crashed.is_failed() and "drift on AAPL" in crashed.message
    assert unit_states(crashed, expected=2) == {"naive on AAPL": "Completed", "drift on AAPL": "Failed"}
    failures = pd.read_csv(tmp_path / "a" / "failures.csv")
    assert set(failures["model"]) == {"drift"} and failures["message"].str.contains("worker killed").all()

    monkeypatch.setattr(backtest.units, "run_unit", run_unit)  # the "restarted" process
    resumed = _run(tickers=["AAPL"], out_dir=str(tmp_path / "b"))
    assert resumed.is_completed(), resumed.message
    assert unit_states(resumed, expected=2) == {"naive on AAPL": "Cached", "drift on AAPL": "Completed"}


def test_a_failing_model_is_recorded_reported_and_fails_the_run_with_a_message(prefect_server, tmp_path, monkeypatch):
    register_boom(monkeypatch)
    state = _run(tickers=["AAPL"], models=["naive", "boom"], out_dir=str(tmp_path / "out"))
    assert state.is_failed()
    assert "1 of 2 units had failures: boom on AAPL (2 folds)" in state.message
    summary = state.result(raise_on_failure=False)
    assert summary["failures"] == 2
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert failures["model"].tolist() == ["boom", "boom"] and failures["message"].str.contains("always fails").all()
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert "naive" in set(board["model"])  # the other unit carried on
    assert "Failures:** 2 (boom 2)" in latest_artifacts()["backtest-summary"].data
    # The engine's stdlib logger (backtest.engine) reaches the flow run's logs in the API.
    logs = run_logs(state, contains="folds failed")
    assert any("boom on AAPL: 2 of 2 folds failed" in m for m in logs), logs


def test_unknown_model_fails_before_any_work(prefect_server):
    from common.errors import ConfigError
    from flows.backtest import backtest_flow

    with pytest.raises(ConfigError, match=r"unknown model 'arimaa' \(did you mean arima"):
        backtest_params(tickers=["AAPL"], models=["naive", "arimaa"])
    # As a deployment or the UI's run form passes it: plain JSON, validated by Prefect before the flow body runs.
    state = backtest_flow(params={"source": {"tickers": ["AAPL"]}, "models": ["naive", "arimaa"]}, return_state=True)
    assert state.is_failed() and "unknown model 'arimaa'" in str(state.result(raise_on_failure=False))


def test_a_wide_universe_runs_batches_with_each_unit_cached_alone(prefect_server, tmp_path):
    """batch_size=2 on four tickers: one task per (two tickers, model) and per two tickers' audit, the same
    forecasts as one task per unit; when one ticker's data changes, its batch reruns and only that ticker's
    units are recomputed."""
    tickers = ("AAPL", "GOOG", "IBM", "MSFT")
    path = sample_csv(tmp_path / "four.csv", tickers, start="2012-01-01", end="2012-12-31")
    common = {"source": "csv", "path": str(path), "start": None, "tickers": list(tickers)}
    single = _run(**common, out_dir=str(tmp_path / "single"), refresh_cache=True)
    batched = _run(**common, out_dir=str(tmp_path / "batched"), batch_size=2, refresh_cache=True)
    assert single.is_completed() and batched.is_completed(), batched.message
    assert unit_states(batched, expected=4) == {
        f"{model} on {a} … {b} (2 tickers)": "Completed"
        for model in TINY["models"]
        for a, b in (tickers[:2], tickers[2:])
    }
    a, b = (pd.read_parquet(tmp_path / d / "forecasts.parquet") for d in ("single", "batched"))
    pd.testing.assert_frame_equal(a, b)

    sample_csv(path, tickers, start="2012-01-01", end="2012-12-31", drop_last={"IBM": 1})  # IBM changes
    changed = _run(**common, out_dir=str(tmp_path / "changed"), batch_size=2)
    assert changed.is_completed(), changed.message
    states = unit_states(changed, expected=4)
    assert states["naive on AAPL … GOOG (2 tickers)"] == "Cached"
    assert states["naive on IBM … MSFT (2 tickers)"] == "Completed"
    # A unit read from its cache entry carries the timings of the run that computed it; a recomputed one its own.
    before, after = (pd.read_parquet(tmp_path / d / "timings.parquet") for d in ("batched", "changed"))
    same = before.merge(after, on=["unique_id", "model", "fold"], suffixes=("_a", "_b"))
    same = same.assign(equal=same["fit_seconds_a"] == same["fit_seconds_b"]).groupby("unique_id")["equal"].all()
    assert same.to_dict() == {"AAPL": True, "GOOG": True, "IBM": False, "MSFT": True}


def test_a_global_model_runs_as_one_task_keyed_on_every_tickers_data(prefect_server, tmp_path, monkeypatch):
    """A global model (one fit across tickers) is one task over the three tickers, beside naive's per-ticker units;
    when one ticker's data changes the panel reruns (its key covers every member), naive's other units stay cached."""
    from tests.backtest.bt_helpers import PanelDrift, register_panel_drift

    register_panel_drift(monkeypatch)
    tickers = ("AAPL", "GOOG", "IBM")
    path = sample_csv(tmp_path / "three.csv", tickers, start="2012-01-01", end="2012-12-31")
    common = {"source": "csv", "path": str(path), "start": None, "tickers": list(tickers)}
    common |= {"models": ["naive", "panel_drift"]}
    first = _run(**common, out_dir=str(tmp_path / "a"), refresh_cache=True)
    assert first.is_completed(), first.message
    panel_task = "panel_drift on AAPL … IBM (3 tickers)"
    assert unit_states(first, expected=4)[panel_task] == "Completed"
    forecasts = pd.read_parquet(tmp_path / "a" / "forecasts.parquet")
    assert forecasts.groupby("model")["unique_id"].nunique().to_dict() == {"naive": 3, "panel_drift": 3}
    fits = len(PanelDrift.fitted_until)
    assert fits > 0 and all(set(fit) == set(tickers) for fit in PanelDrift.fitted_until)

    sample_csv(path, tickers, start="2012-01-01", end="2012-12-31", drop_last={"IBM": 1})  # IBM changes
    changed = _run(**common, out_dir=str(tmp_path / "b"))
    assert changed.is_completed(), changed.message
    states = unit_states(changed, expected=4)
    assert states[panel_task] == "Completed" and len(PanelDrift.fitted_until) == 2 * fits
    assert states["naive on AAPL"] == "Cached" and states["naive on IBM"] == "Completed"
