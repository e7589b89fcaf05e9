"""Scale-out: backtest_flow on a local Dask cluster (2 worker processes) gives the in-process forecast table."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.flows.helpers import backtest_params

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.xdist_group("prefect")]

PARAMS = {"tickers": ["AAPL", "IBM"], "models": ["naive", "drift", "ses"], "windows": 2, "step": 3, "horizon": 3}


def test_dask_two_process_workers_match_the_thread_runner(prefect_server, tmp_path, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.backtest import backtest_flow

    threads = backtest_flow(
        params=backtest_params(**PARAMS, start="2012-01-01", out_dir=str(tmp_path / "threads")), return_state=True
    )
    assert threads.is_completed(), threads.message
    monkeypatch.setenv("PRICECAST_HOME", str(tmp_path / "dask-home"))  # fresh unit cache: Dask must compute
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "processes": True, "threads_per_worker": 1})
    dask = backtest_flow.with_options(task_runner=runner)(
        params=backtest_params(**PARAMS, start="2012-01-01", out_dir=str(tmp_path / "dask")), return_state=True
    )
    assert dask.is_completed(), dask.message
    a, b = (pd.read_parquet(tmp_path / d / "forecasts.parquet") for d in ("threads", "dask"))
    assert len(a) == 2 * 3 * 2 * 3
    pd.testing.assert_frame_equal(a, b)  # timings live in timings.parquet, not in the forecast table
