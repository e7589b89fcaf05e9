"""The event flow in the production loop: the run is stored, `pricecast report` re-renders it from the store,
`report --list` lists it, and today's probabilities are stored and published."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from pricecast.cli import app
from tests.flows.helpers import event_params, latest_artifacts, sample_csv

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]

TICKERS = ("AAPL", "IBM")
DROPPED = 3  # IBM's csv ends 3 sessions before AAPL's: each ticker has its own as_of
PARAMS = {"models": ["base_rate", "logistic"], "threshold": 0.03, "lookahead": 5, "windows": 3, "step": 5}


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _without_generated(html: str) -> str:
    return re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "generated -", html)


@pytest.fixture
def stored_run(prefect_server, tmp_path):
    from flows.event_backtest import event_backtest_flow

    csv = sample_csv(tmp_path / "prices.csv", TICKERS, start="2011-01-01", end="2013-03-01", drop_last={"IBM": DROPPED})
    out = tmp_path / "run"
    state = event_backtest_flow(
        params=event_params(**PARAMS, tickers=list(TICKERS), source="csv", path=str(csv), start=None, out_dir=str(out)),
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result(), out, pd.read_csv(csv, dtype={"unique_id": str}, parse_dates=["ds"])


def test_an_event_run_is_stored_and_report_re_renders_it_with_the_same_figures(stored_run, tmp_path):
    from common.settings import store_path
    from store.results_store import ResultStore

    summary, out, _ = stored_run
    run_id = summary["flow_run_id"]
    assert ResultStore(store_path()).resolve_task_run("latest") == ("event", run_id)

    listed = _invoke("report", "--list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if run_id[:8] in line)
    assert "event" in row and "AAPL,IBM" in row and "base_rate,logistic" in row

    again = tmp_path / "again"
    rerendered = _invoke("report", run_id[:8], "--out", str(again))
    assert rerendered.exit_code == 0, rerendered.output + rerendered.stderr
    assert f"report: {again / 'report.html'}" in rerendered.output
    assert summary["verdict"] in " ".join(rerendered.output.split())
    assert "Event probabilities at the latest session" in rerendered.output
    for table in ("leaderboard.csv", "significance.csv", "calibration.csv", "per_series.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / table), pd.read_csv(again / table), check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "predictions.parquet"), pd.read_parquet(again / "predictions.parquet")
    )
    original, copy = (out / "report.html").read_text(), (again / "report.html").read_text()
    assert run_id in copy and summary["verdict"].split(";")[0] in copy
    board = pd.read_csv(out / "leaderboard.csv")
    for brier in board["brier"]:
        assert f"{brier:.4f}" in copy  # the leaderboard's key figure, as the report prints it
    assert _without_generated(copy) == _without_generated(original)  # every figure, table and chart the same


def test_todays_probabilities_are_stored_and_published_one_per_ticker_and_model(stored_run):
    from common.settings import store_path
    from store.results_store import ResultStore

    summary, _, prices = stored_run
    live = ResultStore(store_path()).live_event_probabilities(summary["flow_run_id"])
    assert len(live) == len(TICKERS) * len(PARAMS["models"])
    assert not live.duplicated(["unique_id", "model"]).any()
    assert set(live["model"]) == set(PARAMS["models"]) and set(live["unique_id"]) == set(TICKERS)
    assert live["p"].between(0.0, 1.0).all()
    assert (live["h"] == PARAMS["lookahead"]).all() and (live["threshold"] == PARAMS["threshold"]).all()
    last = prices.groupby("unique_id")["ds"].max()
    assert (live["as_of"].to_numpy() == last.loc[live["unique_id"]].to_numpy()).all()
    assert last["IBM"] < last["AAPL"]

    artifact = latest_artifacts()["event-probabilities"]
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert {(r["ticker"], r["model"]) for r in rows} == set(zip(live["unique_id"], live["model"], strict=True))
    assert {r["as_of"] for r in rows if r["ticker"] == "IBM"} == {str(last["IBM"].date())}
    assert set(rows[0]) >= {"ticker", "model", "as_of", "horizon", "threshold", "p"}
