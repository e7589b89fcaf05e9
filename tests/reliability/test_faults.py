"""Fault injection: on one series a model raises, hangs past its timeout, returns NaN or the wrong length.

That unit is recorded as failed (series, model, fold, error), every other unit completes, and both the
report and the flow's final state say what failed. The engine-level cases run without Prefect; the flow case
runs all four faults in one backtest on the session's test server.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.reliability.faults import FAULTS, FAULTY, register_faults

TINY = {"windows": 2, "step": 3, "horizon": 3, "start": "2012-01-01", "tickers": ["AAPL", FAULTY]}


@pytest.mark.parametrize(
    ("model", "error_type", "message"),
    [
        ("raises", "ModelFitError", "optimiser blew up"),
        ("returns_nan", "ModelFitError", "not finite"),
        ("wrong_length", "ModelFitError", "expected h = 1..3"),
    ],
)
def test_the_engine_records_a_faulty_unit_and_keeps_the_healthy_one(monkeypatch, model, error_type, message):
    from backtest.engine import run_backtest
    from backtest.folds import FoldPlan
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    register_faults(monkeypatch)
    panel, _ = load_panel(SourceSpec(tickers=("AAPL", FAULTY), start="2012-01-01"))
    result = run_backtest(panel, models=["naive", model], plan=FoldPlan(horizon=3, step=3, windows=2))
    failures = result.failures
    assert set(zip(failures["unique_id"], failures["model"], strict=True)) == {(FAULTY, model)}
    assert (failures["error_type"] == error_type).all() and failures["message"].str.contains(message).all()
    assert sorted(failures["fold"]) == [0, 1]
    done = result.forecasts.groupby(["unique_id", "model"]).size()
    assert done[("AAPL", model)] == done[("AAPL", "naive")] == done[(FAULTY, "naive")] == 2 * 3
    assert (FAULTY, model) not in done.index


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_a_flow_with_every_fault_completes_the_rest_and_says_what_failed(prefect_server, tmp_path, monkeypatch):
    from flows.backtest import backtest_flow
    from tests.flows.helpers import backtest_params, unit_states

    register_faults(monkeypatch)
    models = ["naive", *FAULTS]
    params = backtest_params(**TINY, models=models, out_dir=str(tmp_path), unit_timeout_seconds=4)
    state = backtest_flow(params=params, return_state=True)

    assert state.is_failed()
    for name in FAULTS:
        assert f"{name} on {FAULTY}" in state.message
    assert "on AAPL" not in state.message
    states = unit_states(state, expected=2 * len(models))
    assert states[f"hangs on {FAULTY}"] == "Failed"  # stopped inside its task (tasks.batches), recorded below
    assert {k: v for k, v in states.items() if FAULTY not in k or k.startswith("naive")} == {
        f"{m} on {u}": "Completed" for m in models for u in ("AAPL", FAULTY) if u == "AAPL" or m == "naive"
    }

    failures = pd.read_csv(tmp_path / "failures.csv")
    assert set(failures["model"]) == set(FAULTS) and set(failures["unique_id"].astype(str)) == {FAULTY}
    hung = failures[failures["model"] == "hangs"]
    assert hung["message"].str.contains("timed out").all() and "unit_timeout_seconds" in hung["message"].iloc[0]

    forecasts = pd.read_parquet(tmp_path / "forecasts.parquet")
    healthy = forecasts.groupby(["unique_id", "model"]).size()
    assert len(healthy) == len(models) + 1  # every model on AAPL, only naive on the faulty series

    html = (tmp_path / "report.html").read_text()
    for name in FAULTS:
        assert name in html.split('id="failures"')[1]
