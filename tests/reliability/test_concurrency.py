"""Two backtests writing to the same PRICECAST_HOME at once: both complete and neither loses a row.

DuckDB allows one writing process per file. Every store operation opens a short-lived connection and waits out
another process's lock with exponential backoff (common/duckdb_io.py), and each run's rows are written in one
transaction keyed by its flow-run id. The two runs share units (naive on both tickers), so they also race on
the unit cache.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.reliability.procs import cli_env, query, start

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("prefect")]

COMMON = ["backtest", "--tickers", "AAPL,IBM", "--start", "2011-01-01", "--windows", "4", "--step", "5"]


def test_two_backtests_on_one_store_both_complete_with_every_row(prefect_server, tmp_path):
    home = tmp_path / "home"
    env = cli_env(home)
    runs = {"a": "naive,ses,drift", "b": "naive,holt,moving_average"}
    procs = {
        k: start([*COMMON, "--models", m, "--out", str(tmp_path / k)], env, tmp_path / f"{k}.log")
        for k, m in runs.items()
    }
    codes = {k: p.wait(timeout=300) for k, p in procs.items()}
    assert codes == {"a": 0, "b": 0}, {k: (tmp_path / f"{k}.log").read_text()[-2000:] for k in runs}

    store = home / "pricecast.duckdb"
    stored = dict(query(store, "SELECT models, n_forecast_rows FROM backtest_runs"))
    assert stored == {"drift,naive,ses": 2 * 3 * 4 * 5, "holt,moving_average,naive": 2 * 3 * 4 * 5}
    per_run = query(store, "SELECT flow_run_id, count(*) FROM backtest_forecasts GROUP BY ALL")
    assert sorted(n for _, n in per_run) == [120, 120]
    for k in runs:
        frame = pd.read_parquet(tmp_path / k / "forecasts.parquet")
        assert len(frame) == 120 and not frame.duplicated(["unique_id", "model", "fold", "h"]).any()
    a, b = (pd.read_parquet(tmp_path / k / "forecasts.parquet") for k in runs)
    pd.testing.assert_frame_equal(  # the shared unit is identical whichever run computed it
        a[a["model"] == "naive"].reset_index(drop=True), b[b["model"] == "naive"].reset_index(drop=True)
    )
    prices = query(store, "SELECT count(*), count(DISTINCT (source, unique_id, ds)) FROM prices")
    assert prices[0][0] == prices[0][1] > 0
