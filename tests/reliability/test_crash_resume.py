"""kill -9 in the middle of a backtest and of an ingest, then run the same command again.

The rerun completes; the backtest's finished units come from the cache; the store holds no partial and no
duplicated rows at any point (DuckDB commits each write in one transaction, output files are renamed into
place). The CLI runs as a real subprocess against the session's Prefect test server.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from tests.reliability.procs import cli_env, query, run, start, wait_for

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("prefect")]

# naive units finish in a blink, arima refitting at every fold takes seconds: the kill lands in between.
BACKTEST = [
    "backtest", "--tickers", "AAPL,IBM", "--models", "naive,arima", "--start", "2010-01-01",
    "--windows", "15", "--step", "5", "--horizon", "5", "--refit-every", "1",
]  # fmt: skip


def _unit_states(flow_run_id: str) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tests.flows.helpers import FINAL, UNIT_SEP, _sync

    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    states: dict[str, str] = {}

    def final() -> bool:
        runs = _sync(lambda c: c.read_task_runs(flow_run_filter=run_filter))
        states.clear()
        states.update({r.name: r.state for r in runs if UNIT_SEP in r.name and r.state is not None})
        return len(states) == 4 and all(s.type.value in FINAL for s in states.values())

    assert wait_for(final, timeout=30, interval=0.5), states
    return {name: s.name for name, s in states.items()}


def test_a_backtest_killed_midway_resumes_from_its_finished_units(prefect_server, tmp_path):
    home = tmp_path / "home"
    env = cli_env(home)
    results = home / "results"
    out = tmp_path / "run"
    proc = start([*BACKTEST, "--out", str(out)], env, tmp_path / "killed.log")

    def units_done() -> int:
        # Finished unit TASKS: their results persisted under the task's cache key ("units-<unit key>"). A unit's own
        # entry ("unit-...") is written inside the task, a moment before the task's result: killing between the two
        # left a unit that the rerun read from its entry but whose task showed Completed, not Cached (a flaky run).
        return len(list(results.glob("units-*"))) if results.exists() else 0

    finished = wait_for(lambda: units_done() >= 2, timeout=240)
    assert finished, (tmp_path / "killed.log").read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = home / "pricecast.duckdb"
    assert query(store, "SELECT count(*) FROM backtest_runs") in ([], [(0,)])  # nothing half-stored
    assert query(store, "SELECT count(*) FROM backtest_forecasts") in ([], [(0,)])
    assert not (out / "meta.json").exists()

    code = run([*BACKTEST, "--out", str(out)], env, tmp_path / "rerun.log")
    assert code == 0, (tmp_path / "rerun.log").read_text()
    (run_id,) = query(store, "SELECT flow_run_id FROM backtest_runs")[0]
    states = _unit_states(run_id)
    assert "Cached" in states.values(), states  # the units finished before the kill were not recomputed
    assert set(states.values()) <= {"Cached", "Completed"}

    forecasts = pd.read_parquet(out / "forecasts.parquet")
    assert len(forecasts) == 2 * 2 * 15 * 5 and not forecasts.duplicated(["unique_id", "model", "fold", "h"]).any()
    stored = query(store, "SELECT count(*), count(DISTINCT (unique_id, model, fold, h)) FROM backtest_forecasts")
    assert stored == [(len(forecasts), len(forecasts))]


def _big_csv(path, *, tickers: int = 100, sessions: int = 2500) -> int:
    rng = np.random.default_rng(0)
    ds = pd.bdate_range("2005-01-03", periods=sessions)
    with path.open("w") as fh:
        fh.write("ticker,date,open,high,low,close,volume\n")
        for i in range(tickers):
            y = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, sessions)))
            part = pd.DataFrame({"ticker": f"T{i:03d}", "date": ds, "open": y, "high": y * 1.01, "low": y * 0.99,
                                 "close": y, "volume": 1000})  # fmt: skip
            part.to_csv(fh, header=False, index=False)
    return tickers * sessions


def test_an_ingest_killed_at_any_moment_leaves_all_or_nothing(tmp_path):
    """Kill at several moments of one ingest; after each kill the store holds 0 or every row, never a part."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"PRICECAST_HOME": str(home)}
    path = tmp_path / "big.csv"
    rows = _big_csv(path)
    args = ["ingest", "--source", "csv", "--path", str(path)]
    store = home / "pricecast.duckdb"
    seen = set()
    for delay in (1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0):
        proc = start(args, env, tmp_path / "ingest.log")
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        count = query(store, "SELECT count(*), count(DISTINCT (unique_id, ds)) FROM prices")
        n = count[0][0] if count else 0
        assert n in (0, rows), f"killed after {delay}s: {n} of {rows} rows stored"
        assert not count or count[0][0] == count[0][1]
        seen.add(n)
    assert 0 in seen, "every kill came after the ingest finished: the file is too small to test anything"
    assert run(args, env, tmp_path / "final.log") == 0, (tmp_path / "final.log").read_text()
    assert query(store, "SELECT count(*), count(DISTINCT (unique_id, ds)) FROM prices") == [(rows, rows)]
