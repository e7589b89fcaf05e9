"""The production loop on the test API server: the weekly backtest stores each ticker's champion, the daily
forecast runs `champion` as that model (naive with a warning when none is stored) and, a session later, updates
the stored fit instead of refitting it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.flows.helpers import backtest_params, flow_run_id, forecast_params, run_logs, sample_csv

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]

ENSEMBLE = {"ensemble": {"members": ["naive", "drift"]}}


def _prices(tmp_path, *, drop_last: int) -> str:
    """AAPL's 2012 sessions (nothing beats naive on them) and TRND, a strong linear trend on the same sessions
    (drift beats naive with p < 1e-6), as one long CSV without its last `drop_last` sessions."""
    aapl = pd.read_csv(sample_csv(tmp_path / "aapl.csv", ("AAPL",), start="2012-01-01", end="2012-12-31"))
    rng = np.random.default_rng(7)
    trend = 50 + 1.0 * np.arange(len(aapl)) + rng.normal(0, 0.2, len(aapl))
    trnd = aapl.assign(unique_id="TRND", open=trend, high=trend + 0.1, low=trend - 0.1, close=trend, adj_close=trend)
    both = pd.concat([aapl.iloc[: len(aapl) - drop_last], trnd.iloc[: len(trnd) - drop_last]])
    path = tmp_path / f"prices-{drop_last}.csv"
    both.to_csv(path, index=False)
    return str(path)


def test_backtest_stores_champions_and_the_forecast_runs_them_then_updates_their_fits(prefect_server, tmp_path):
    from common.settings import store_path
    from flows.backtest import backtest_flow
    from flows.forecast import forecast_flow
    from models import make_model
    from store.results_store import ResultStore

    short, full = _prices(tmp_path, drop_last=1), _prices(tmp_path, drop_last=0)
    backtest = backtest_flow(
        params=backtest_params(
            source="csv",
            path=short,
            models=["naive", "drift"],
            horizon=2,
            windows=20,
            step=1,
            start="2012-01-01",
            out_dir=str(tmp_path / "bt"),
        ),
        return_state=True,
    )
    assert backtest.is_completed(), backtest.message
    store = ResultStore(store_path())
    champions = store.champions(latest=True).set_index("unique_id")
    assert champions["model"].to_dict() == {"AAPL": "naive", "TRND": "drift"}
    assert set(champions["flow_run_id"]) == {flow_run_id(backtest)}
    assert champions.loc["TRND", "p_value"] < 1e-6 and champions.loc["TRND", "reason"].startswith("beats naive")
    assert champions.loc["AAPL", "reason"].startswith("nothing beats naive significantly")

    params = {"source": "csv", "models": ["champion", "ensemble"], "horizon": 3, "start": "2012-01-01"}
    first = forecast_flow(params=forecast_params(path=short, model_params=ENSEMBLE, **params), return_state=True)
    assert first.is_completed(), first.message
    summary = first.result()
    assert summary["champions"] == {"AAPL": "naive", "TRND": "drift"}
    assert set(summary["fits"].values()) == {"fit"}
    live = store.live_forecasts(flow_run_id(first))
    champ = live.loc[live["model"] == "champion"].set_index("unique_id")
    assert champ.groupby(level=0)["resolved_model"].first().to_dict() == {"AAPL": "naive", "TRND": "drift"}
    assert live.loc[live["model"] == "ensemble", "resolved_model"].isna().all()
    trnd = pd.read_csv(short).query("unique_id == 'TRND'").rename(columns={"adj_close": "y"})[["unique_id", "ds", "y"]]
    want = make_model("drift").fit(trnd.assign(ds=pd.to_datetime(trnd["ds"]))).predict(3)["yhat"].to_numpy()
    np.testing.assert_allclose(champ.loc["TRND", "yhat"].to_numpy(), want)

    second = forecast_flow(
        params=forecast_params(path=full, model_params=ENSEMBLE, **params), return_state=True
    )  # one more session
    assert second.is_completed(), second.message
    assert second.result()["fits"] == {
        "champion on AAPL": "update",
        "champion on TRND": "update",
        "ensemble on AAPL": "update",
        "ensemble on TRND": "update",
    }  # the paths' sentences ("updated TRND drift with 1 new session ...") are INFO logs, muted in tests
    live = store.live_forecasts(flow_run_id(second))
    assert (live["as_of"] == pd.Timestamp("2012-12-31")).all()


def test_champion_without_a_stored_one_is_naive_with_a_warning(prefect_server):
    from common.settings import store_path
    from flows.forecast import forecast_flow
    from store.results_store import ResultStore

    state = forecast_flow(
        params=forecast_params(
            tickers=["AAPL"], models=["champion"], horizon=2, start="2012-01-01", model_params=ENSEMBLE
        ),
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert state.result()["champions"] == {"AAPL": "naive"}
    logs = run_logs(state, contains="no stored champion for AAPL")
    assert any("no stored champion for AAPL: forecasting it with naive" in m for m in logs), logs
    live = ResultStore(store_path()).live_forecasts(flow_run_id(state))
    champ = live.loc[live["model"] == "champion"]
    assert (champ["resolved_model"] == "naive").all() and len(champ) == 2
    assert sorted(live["model"].unique()) == ["champion", "ensemble"]
