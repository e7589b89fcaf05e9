"""forecast_flow on the test API server: next-session forecasts with intervals and the ensemble, stored and
shown as the `live-forecast` artifact; a later ingest scores them; a failing model is recorded, not fatal."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest.spec import SourceSpec
from tests.flows.helpers import flow_run_id, forecast_params, latest_artifacts, register_boom, sample_csv

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]

PARAMS = {"models": ["naive", "drift", "ses"], "horizon": 3, "start": "2012-01-01"}
ENSEMBLE = {"ensemble": {"members": ["naive", "drift", "ses"]}}


def test_forecast_is_stored_shown_and_scored_after_the_next_ingest(prefect_server, tmp_path):
    from common.settings import store_path
    from flows.forecast import forecast_flow
    from flows.ingest import ingest_flow
    from store.results_store import ResultStore

    short = sample_csv(tmp_path / "short.csv", ("AAPL",), start="2012-01-01", end="2012-06-29", drop_last={"AAPL": 0})
    full = sample_csv(tmp_path / "full.csv", ("AAPL",), start="2012-01-01", end="2012-07-31")
    state = forecast_flow(
        params=forecast_params(source="csv", path=str(short), **PARAMS, model_params=ENSEMBLE), return_state=True
    )
    assert state.is_completed(), state.message

    store = ResultStore(store_path())
    live = store.live_forecasts(flow_run_id(state))
    assert sorted(live["model"].unique()) == ["drift", "ensemble", "naive", "ses"]  # the ensemble always runs
    assert (live["as_of"] == pd.Timestamp("2012-06-29")).all()
    # Next NYSE sessions after Friday 2012-06-29 (Independence Day closed).
    days = live.loc[live["model"] == "naive", "ds"].dt.strftime("%Y-%m-%d").tolist()
    assert days == ["2012-07-02", "2012-07-03", "2012-07-05"]
    assert live.loc[live["model"] != "ensemble", "yhat_lo_95"].notna().all()
    artifact = latest_artifacts()["live-forecast"]
    assert "naive" in artifact.data and "2012-07-05" in artifact.data
    assert store.live_record()["n_scored"].sum() == 0

    counts = ingest_flow(source=SourceSpec(source="csv", path=str(full), tickers=["AAPL"]))  # the actual prices arrive
    assert counts["AAPL"] > 120
    record = store.live_record().set_index("model")
    assert record["n_scored"].to_dict() == {"drift": 3, "ensemble": 3, "naive": 3, "ses": 3}
    prices = pd.read_csv(full).set_index("ds")["adj_close"]
    naive = live[live["model"] == "naive"]
    want = (prices.loc[naive["ds"].dt.strftime("%Y-%m-%d")].to_numpy() - naive["yhat"].to_numpy()).__abs__().mean()
    assert record.loc["naive", "mae"] == pytest.approx(want)
    assert 0 <= record.loc["naive", "hit_rate"] <= 1 and record.loc["naive", "mase"] > 0


def test_a_failing_model_is_recorded_and_the_others_are_stored(prefect_server, monkeypatch):
    from common.settings import store_path
    from flows.forecast import forecast_flow
    from store.results_store import ResultStore

    register_boom(monkeypatch)
    state = forecast_flow(
        params=forecast_params(
            tickers=["AAPL"],
            models=["naive", "boom"],
            horizon=2,
            start="2012-01-01",
            model_params={"ensemble": {"members": ["naive", "drift"]}},
        ),
        return_state=True,
    )
    assert state.is_failed()
    assert state.message.startswith("1 of 3 forecast units failed: boom on AAPL")
    live = ResultStore(store_path()).live_forecasts(flow_run_id(state))
    assert sorted(live["model"].unique()) == ["ensemble", "naive"]
    assert "always fails" in latest_artifacts()["live-forecast"].data


def test_a_global_model_is_fitted_once_across_the_tickers(prefect_server, tmp_path, monkeypatch):
    from common.settings import store_path
    from flows.forecast import forecast_flow
    from store.results_store import ResultStore
    from tests.backtest.bt_helpers import PanelDrift, register_panel_drift

    register_panel_drift(monkeypatch)
    path = sample_csv(tmp_path / "two.csv", ("AAPL", "MSFT"), start="2012-01-01", end="2012-06-29")
    state = forecast_flow(
        params=forecast_params(
            source="csv",
            path=str(path),
            tickers=["AAPL", "MSFT"],
            models=["naive", "panel_drift"],
            horizon=3,
            start=None,
            model_params=ENSEMBLE,
        ),
        return_state=True,
    )
    assert state.is_completed(), state.message
    live = ResultStore(store_path()).live_forecasts(flow_run_id(state))
    rows = live[live["model"] == "panel_drift"]
    assert sorted(rows["unique_id"].unique()) == ["AAPL", "MSFT"] and len(rows) == 6
    assert (rows["ds"].dt.strftime("%Y-%m-%d").unique() == ["2012-07-02", "2012-07-03", "2012-07-05"]).all()
    assert PanelDrift.fitted_until == [{"AAPL": pd.Timestamp("2012-06-29"), "MSFT": pd.Timestamp("2012-06-29")}]
