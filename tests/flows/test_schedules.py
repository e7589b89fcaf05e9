"""Schedules that fire, end to end, on a real `prefect server start` at a non-default loopback port.

The module runs the README's own server sequence in order (tests/flows/live_server.py reads it from the README):
API URL first, server, work pool with its concurrency limit, `prefect deploy --all`, the report server, a
process worker. Then it watches what a user watches in the UI:

- the scheduler itself creates SCHEDULED runs for every cron deployment of prefect.yaml;
- a per-minute schedule added to daily-forecast gives a run the scheduler made (auto_scheduled), which the
  worker executes to COMPLETED, with its artifacts;
- that run scores a live record seeded to be far worse than its backtest: the monitor emits a breach event and
  prefect.yaml's trigger starts weekly-backtest early; the worker runs it after the forecast (one writer), and
  its report link artifact is an http URL that returns the report;
- `pricecast serve` beside those deployments rewrites none of them, and stopping it pauses only its own;
- the server and worker logs hold no ERROR line.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.flows.live_server import (
    ROOT,
    api,
    api_json,
    error_lines,
    error_records,
    free_port,
    is_known_sqlite_race,
    readme_steps,
    run_step,
    start_background,
    stop,
    user_env,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.xdist_group("deploy")]

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# As a deployment run receives them: the typed BacktestParams as JSON (flows.params), nested under "params".
TINY = {"params": {"source": {"tickers": ["AAPL"], "start": "2012-01-01"}, "models": ["naive"], "windows": 2}}


class Session:
    """What the README's sequence left running: the server, the report server, the worker, and their logs."""

    def __init__(self, home: Path):
        self.home = home
        self.ports = {"api": free_port(), "reports": free_port()}
        self.url = f"http://127.0.0.1:{self.ports['api']}/api"
        self.env = user_env(home)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.timings: dict[str, float] = {}

    def flow_runs(self, **filters) -> list[dict]:
        return api_json("POST", f"{self.url}/flow_runs/filter", json={"limit": 200, **filters})

    def deployment(self, name: str) -> dict:
        return api_json("GET", f"{self.url}/deployments/name/{name}")

    def runs_of(self, name: str) -> list[dict]:
        return self.flow_runs(deployments={"id": {"any_": [self.deployment(name)["id"]]}})

    def run(self, flow_run_id: str) -> dict:
        return api_json("GET", f"{self.url}/flow_runs/{flow_run_id}")

    def wait_final(self, flow_run_id: str, *, timeout: float) -> dict:
        return wait_for(
            lambda: (r := self.run(flow_run_id)) and r["state_type"] in FINAL and r,
            timeout=timeout,
            what=f"flow run {flow_run_id} to finish",
            interval=1,
        )

    def artifacts(self, flow_run_id: str) -> dict[str, dict]:
        body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
        return {a["key"]: a for a in api_json("POST", f"{self.url}/artifacts/filter", json=body) if a["key"]}

    def log_errors(self) -> dict[str, list[str]]:
        return {name: error_lines(path.read_text()) for name, path in self.logs.items()}

    def tail(self, name: str) -> str:
        return self.logs[name].read_text()[-4000:]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The README's server sequence, each command as written (ports replaced), run in order."""
    s = Session(tmp_path_factory.mktemp("schedules"))
    started = time.monotonic()
    try:
        for step in readme_steps(s.ports):
            name = Path(step.argv[0]).name + ("-" + step.argv[1] if len(step.argv) > 1 else "")
            if step.background:
                role = "server" if "server" in step.argv else "reports" if "reports" in step.argv else name
                s.logs[role] = s.home / f"{role}.log"
                s.procs[role] = start_background(step.argv, env=s.env, log=s.logs[role])
                if role == "server":
                    _wait_healthy(s)
                elif role == "reports":
                    wait_for(lambda: _reports_up(s), timeout=60, what="`pricecast reports` to answer")
            elif "worker" in step.argv:  # the last step: a long-running worker
                s.logs["worker"] = s.home / "worker.log"
                s.procs["worker"] = start_background(step.argv, env=s.env, log=s.logs["worker"])
            else:
                run_step(step.argv, env=s.env)
            s.timings[step.text.split("  #")[0]] = round(time.monotonic() - started, 1)
        yield s
    finally:
        for proc in reversed(list(s.procs.values())):
            stop(proc)
        print("README sequence timings (s since start):", json.dumps(s.timings, indent=1))


def _wait_healthy(s: Session) -> None:
    def healthy() -> bool:
        assert s.procs["server"].poll() is None, s.tail("server")
        try:
            return api("GET", f"{s.url}/health", attempts=1, timeout=2).status_code == 200
        except Exception:
            return False

    wait_for(healthy, timeout=150, what="the Prefect server's /api/health")


def _reports_up(s: Session) -> bool:
    assert s.procs["reports"].poll() is None, s.tail("reports")
    try:
        return api("GET", f"http://127.0.0.1:{s.ports['reports']}/", attempts=1, timeout=2).status_code == 200
    except Exception:
        return False


def _cron_deployments() -> list[str]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    flows = {"flows.forecast:forecast_flow": "forecast", "flows.backtest:backtest_flow": "backtest"}
    flows |= {"flows.ingest:ingest_flow": "ingest", "flows.event_backtest:event_backtest_flow": "event-backtest"}
    return [
        f"{flows[d['entrypoint']]}/{d['name']}"
        for d in config["deployments"]
        if any("cron" in x for x in d.get("schedules") or [])
    ]


def test_the_ui_calls_the_api_on_the_port_the_readme_set(session):
    ui = api_json("GET", f"http://127.0.0.1:{session.ports['api']}/ui-settings")
    assert ui["api_url"] == session.url


def test_the_scheduler_creates_runs_for_every_cron_deployment(session):
    names = _cron_deployments()
    assert len(names) >= 2

    def scheduled() -> dict[str, int]:
        counts = {
            n: sum(r["state_type"] == "SCHEDULED" and r["auto_scheduled"] for r in session.runs_of(n)) for n in names
        }
        return counts if all(counts.values()) else {}

    counts = wait_for(scheduled, timeout=60, what=f"the scheduler to create runs for {names}", interval=2)
    assert all(c >= 1 for c in counts.values()), counts


def test_a_scheduled_run_completes_and_a_live_breach_starts_the_backtest(session):
    _seed_breaching_live_record(Path(session.env["PRICECAST_HOME"]))
    deployment = session.deployment("forecast/daily-forecast")
    before = {r["id"] for r in session.runs_of("forecast/daily-forecast")}
    run_step(
        [str(Path(sys.executable).parent / "prefect"), "deployment", "schedule", "create", "forecast/daily-forecast",
         "--cron", "* * * * *", "--timezone", "UTC"],
        env=session.env,
    )  # fmt: skip
    added = time.monotonic()

    def minute_run() -> dict | None:
        # The EARLIEST run the schedule made: two can be due within 75 s (the next minute and the one after), and
        # the API lists newest first. Taking the later one made the breach's backtest (triggered by the earlier
        # run, and run before the later one) look as if it had started beside a forecast run (seen once in CI).
        now = datetime.now(UTC)
        made = [r for r in session.runs_of("forecast/daily-forecast") if r["id"] not in before and r["auto_scheduled"]]
        soon = [r for r in made if (datetime.fromisoformat(r["expected_start_time"]) - now).total_seconds() < 75]
        return min(soon, key=lambda r: datetime.fromisoformat(r["expected_start_time"])) if soon else None

    run = wait_for(minute_run, timeout=60, what="the scheduler to create the per-minute run")
    final = session.wait_final(run["id"], timeout=300)
    session.timings["minute run completed (s after the schedule was added)"] = round(time.monotonic() - added, 1)
    _drop_minute_schedule(session, deployment["id"])
    assert final["state_type"] == "COMPLETED", (final["state"], session.tail("worker"))
    assert final["auto_scheduled"] and final["work_queue_name"] == "default"
    artifacts = session.artifacts(run["id"])
    assert {"live-forecast", "live-monitor", "live-breach"} <= set(artifacts), sorted(artifacts)
    assert artifacts["live-forecast"]["data"], "the live forecast table is empty"

    # The breach event started weekly-backtest through prefect.yaml's trigger; the worker runs it after the
    # forecast run, never beside it (the pool's concurrency limit of 1: one DuckDB writer).
    def triggered() -> dict | None:
        runs = [
            r
            for r in session.runs_of("backtest/weekly-backtest")
            if (r.get("created_by") or {}).get("type") == "AUTOMATION"
        ]
        return runs[0] if runs else None

    backtest = wait_for(triggered, timeout=90, what="the breach trigger to start weekly-backtest", interval=2)
    done = session.wait_final(backtest["id"], timeout=480)
    session.timings["triggered backtest completed (s after the schedule was added)"] = round(
        time.monotonic() - added, 1
    )
    assert done["state_type"] == "COMPLETED", (done["state"], session.tail("worker"))
    assert datetime.fromisoformat(done["start_time"]) >= datetime.fromisoformat(final["end_time"])
    link = session.artifacts(backtest["id"])["backtest-report"]["data"]  # Prefect stores a link as "[text](url)"
    url = re.fullmatch(r"\[HTML report\]\((http://[^)]+)\)", link)
    assert url and url[1].startswith(f"http://127.0.0.1:{session.ports['reports']}/"), (link, session.tail("reports"))
    page = api("GET", url[1])
    assert page.status_code == 200 and "<html" in page.text.lower()

    assert session.log_errors() == {name: [] for name in session.logs}
    races = sum(is_known_sqlite_race(r) for r in error_records(session.logs["server"].read_text()))
    session.timings["known SQLite heartbeat races tolerated (server log)"] = races
    # Whatever the server logged, the worker's heartbeats still reach it: the pool shows it ONLINE.
    workers = api_json("POST", f"{session.url}/work_pools/pricecast/workers/filter", json={})
    assert [w["status"] for w in workers] == ["ONLINE"], (workers, session.tail("server"))


def test_serve_coexists_with_prefect_deploy(session, tmp_path):
    """`pricecast serve` registers `<name>-served`; the deployments `prefect deploy` made keep their parameters,
    entrypoint and schedules, and stay active after serve stops. A served run completes."""
    names = [d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]]
    deployed = {n: session.deployment(n) for n in ("forecast/daily-forecast", "backtest/weekly-backtest")}
    env = {**session.env, "PREFECT_API_URL": session.url, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    log = tmp_path / "serve.log"
    serve = start_background([str(Path(sys.executable).parent / "pricecast"), "serve"], env=env, log=log)
    try:
        wait_for(lambda: "being served" in log.read_text() or serve.poll() is not None, timeout=120, what="serve")
        assert serve.poll() is None, log.read_text()[-3000:]
        served = session.deployment("backtest/weekly-backtest-served")
        assert served["work_pool_name"] is None and served["schedules"][0]["schedule"]["cron"] == "0 6 * * 6"
        run = api_json("POST", f"{session.url}/deployments/{served['id']}/create_flow_run", json={"parameters": TINY})
        state = session.wait_final(run["id"], timeout=240)
        assert state["state_type"] == "COMPLETED", (state["state"], log.read_text()[-3000:])
    finally:
        if serve.poll() is None:  # Ctrl-C, as a user stops it
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        stop(serve)
    for name, before in deployed.items():
        after = session.deployment(name)
        for field in ("parameters", "entrypoint", "work_pool_name", "paused"):
            assert after[field] == before[field], (name, field)
        assert not after["paused"]
    assert session.deployment("backtest/weekly-backtest-served")["paused"]  # serve pauses its own on shutdown
    assert len(names) == len({f"{n}-served" for n in names})


def _drop_minute_schedule(session: Session, deployment_id: str) -> None:
    for schedule in api_json("GET", f"{session.url}/deployments/{deployment_id}/schedules"):
        if schedule["schedule"].get("cron") == "* * * * *":
            response = api("DELETE", f"{session.url}/deployments/{deployment_id}/schedules/{schedule['id']}")
            assert response.status_code in (200, 204), response.text


def _seed_breaching_live_record(pricecast_home: Path) -> None:
    """A stored backtest of naive on AAPL (MASE 1, 95% coverage 0.95) and 25 earlier one-step live forecasts
    20% off the price, far outside their intervals: scored by the next forecast run, they breach."""
    from common.schema import DS, ID, Y
    from ingest.sources.sample import read_sample
    from ingest.spec import SourceSpec
    from store.results_store import ResultStore

    prices = read_sample(SourceSpec(tickers=("AAPL",)))
    prices = prices[prices[ID] == "AAPL"].sort_values(DS).reset_index(drop=True)
    y = prices["adj_close"].to_numpy()
    scale = float(abs(pd.Series(y).diff()).mean())
    store = ResultStore(pricecast_home / "pricecast.duckdb")
    metrics = pd.DataFrame(
        [
            {ID: "AAPL", "model": "naive", "fold": fold, "h": 1, "metric": metric, "value": value}
            for fold in range(5)
            for metric, value in (("mase", 1.0), ("coverage_95", 0.95))
        ]
    )
    last = prices.iloc[-1]
    forecasts = pd.DataFrame(
        [{ID: "AAPL", "model": "naive", "fold": 0, "cutoff": last[DS], DS: last[DS], "h": 1, Y: 1.0, "yhat": 1.0}]
    )
    for col in ("yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"):
        forecasts[col] = 1.0
    board = pd.DataFrame({"model": ["naive"], "mase": [1.0], "coverage_95": [0.95]})
    store.write_backtest(
        flow_run_id="seeded-backtest", forecasts=forecasts, metrics=metrics, leaderboard=board, meta={}
    )
    rows = []
    for i in range(len(prices) - 30, len(prices) - 5):
        yhat = y[i + 1] * 1.2
        band = {
            f"yhat_{side}_{level}": yhat + sign * scale for level in (80, 95) for side, sign in (("lo", -1), ("hi", 1))
        }
        rows.append(
            {"as_of": prices[DS].iloc[i], "source": "sample", "target": "adj_close", ID: "AAPL", "model": "naive",
             DS: prices[DS].iloc[i + 1], "h": 1, "yhat": yhat, **band, "last_y": y[i], "scale_mae": scale}
        )  # fmt: skip
    for i, row in enumerate(rows):  # one earlier live run per day, as daily-forecast would have stored them
        store.write_live(pd.DataFrame([row]), flow_run_id=f"seeded-live-{i:02d}")
