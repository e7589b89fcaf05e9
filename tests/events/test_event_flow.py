"""event_backtest_flow on the test API server: outputs, artifacts under stable keys, cached rerun, bad input."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from tests.flows.helpers import event_params, latest_artifacts, unit_states

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]

TINY = {
    "tickers": ["AAPL"],
    "models": ["base_rate", "logistic"],
    "threshold": 0.03,
    "lookahead": 5,
    "windows": 3,
    "step": 5,
    "start": "2011-06-01",
}


def _run(**params):
    from flows.event_backtest import event_backtest_flow

    return event_backtest_flow(params=event_params(**{**TINY, **params}), return_state=True)


def test_event_flow_writes_outputs_publishes_artifacts_and_reruns_from_cache(prefect_server, tmp_path):
    first = _run(out_dir=str(tmp_path / "a"))
    assert first.is_completed(), first.message
    summary = first.result()
    assert set(summary) == {"out_dir", "report", "leaderboard", "verdict", "failures", "flow_run_id", "quality"}
    assert summary["failures"] == 0 and summary["verdict"]
    out = tmp_path / "a"
    for name in ("predictions.parquet", "metrics.parquet", "leaderboard.csv", "calibration.csv", "significance.csv"):
        assert (out / name).exists(), name
    assert (out / "report.html").exists() and (out / "plotly.min.js").exists()
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["model"]) == {"base_rate", "logistic"} and len(predictions) == 2 * 3 * 5
    board = pd.read_csv(summary["leaderboard"])
    assert set(board["model"]) == {"base_rate", "logistic"}

    artifacts = latest_artifacts()
    for key in ("event-summary", "event-leaderboard", "event-report", "event-progress", "data-quality"):
        assert key in artifacts, key
    # No report server runs here: no dead file:// link, but where the file is and the command that serves it.
    assert "(file://" not in artifacts["event-report"].data and "pricecast reports" in artifacts["event-report"].data

    second = _run(out_dir=str(tmp_path / "b"))
    assert second.is_completed(), second.message
    assert unit_states(second, expected=2) == {"base_rate on AAPL": "Cached", "logistic on AAPL": "Cached"}
    pd.testing.assert_frame_equal(predictions, pd.read_parquet(tmp_path / "b" / "predictions.parquet"))


def test_unknown_event_model_fails_before_any_work(prefect_server):
    from common.errors import ConfigError
    from flows.event_backtest import event_backtest_flow

    with pytest.raises(ConfigError, match="unknown event model 'lstm_evnt'"):
        event_params(**{**TINY, "models": ["base_rate", "lstm_evnt"]})
    # As a deployment or the UI's run form passes it: plain JSON, validated by Prefect before the flow body runs.
    state = event_backtest_flow(params={"models": ["base_rate", "lstm_evnt"]}, return_state=True)
    assert state.is_failed() and "unknown event model 'lstm_evnt'" in str(state.result(raise_on_failure=False))


class HangingEvent:
    """Registered for the test below: an event classifier whose fit never returns (an interruptible loop)."""

    @staticmethod
    def make():
        import time

        from models.classifiers import BaseRate

        class Hangs(BaseRate):
            def _fit(self, X, y, rows):
                while True:
                    time.sleep(0.05)

        return Hangs


def test_the_unit_timeout_stops_a_hung_event_unit_and_the_rest_completes(prefect_server, monkeypatch, tmp_path):
    """--unit-timeout reaches the event task too (it was silently ignored there before the typed parameters)."""
    import models

    monkeypatch.setitem(
        models.EVENT_REGISTRY, "hangs_event", models.ModelSpec("tests.events.test_event_flow:X", "hangs")
    )
    monkeypatch.setattr(sys.modules[__name__], "X", HangingEvent.make(), raising=False)
    state = _run(models=["base_rate", "hangs_event"], unit_timeout_seconds=3, out_dir=str(tmp_path))
    assert state.is_failed() and "hangs_event on AAPL" in state.message, state.message
    states = unit_states(state, expected=2)
    # The unit is stopped inside its task (tasks.batches), recorded as timed out, and its task ends Failed.
    assert states == {"base_rate on AAPL": "Completed", "hangs_event on AAPL": "Failed"}
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert set(failures["model"]) == {"hangs_event"} and failures["message"].str.contains("timed out").all()
