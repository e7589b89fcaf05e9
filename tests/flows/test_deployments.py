"""Both ways of running on a schedule work against a real Prefect server: prefect.yaml + a process worker,
and `serve` (flows/serve.py). Each test triggers a tiny weekly-backtest run and waits for Completed.

The server is a `prefect server start` subprocess on 127.0.0.1 with a free port and a temporary PREFECT_HOME.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.xdist_group("deploy")]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = {"tickers": ["AAPL"], "models": ["naive"], "windows": 2, "start": "2012-01-01"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started (its own session), escalating to SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A Prefect server subprocess; yields (api_url, env for CLI subprocesses talking to it)."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PRICECAST_HOME": str(home / "pricecast"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PREFECT_API_KEY", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def healthy() -> bool:
        assert server.poll() is None, (home / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait(healthy, timeout=150, what="the Prefect server's /api/health")
        yield url, env
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _run_deployment(url: str, name: str, params: dict) -> str:
    """Trigger a run now, as `prefect deployment run NAME --params ...` does: through Prefect's client, which
    retries the 503 a SQLite-backed server answers while another process (here `serve`) holds the database."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(url) as client:
        deployment = client.read_deployment_by_name(name)
        return str(client.create_flow_run_from_deployment(deployment.id, parameters=params).id)


def _flow_run_state(url: str, flow_run_id: str) -> dict:
    response = httpx.get(f"{url}/flow_runs/{flow_run_id}", timeout=10)
    response.raise_for_status()
    return response.json()["state"]


def _wait_final(url: str, flow_run_id: str, *, timeout: float) -> dict:
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    return _wait(
        lambda: (s := _flow_run_state(url, flow_run_id)) and s["type"] in final and s,
        timeout=timeout,
        what=f"flow run {flow_run_id} to finish",
        interval=1,
    )


def test_prefect_yaml_deploys_and_a_process_worker_runs_weekly_backtest(api):
    url, env = api
    pool = httpx.post(f"{url}/work_pools/", json={"name": "pricecast", "type": "process"}, timeout=10)
    assert pool.status_code == 201, pool.text  # what `prefect work-pool create pricecast --type process` does
    out = _prefect(env, "--no-prompt", "deploy", "--all")
    for name in ("daily-forecast", "weekly-backtest", "daily-ingest"):
        assert name in out
    deployment = httpx.get(f"{url}/deployments/name/forecast/daily-forecast", timeout=10).json()
    schedule = deployment["schedules"][0]["schedule"]
    assert (schedule["cron"], schedule["timezone"]) == ("30 17 * * 1-5", "America/New_York")

    flow_run_id = _run_deployment(url, "backtest/weekly-backtest", TINY)
    worker = subprocess.run(
        [str(BIN / "prefect"), "worker", "start", "--pool", "pricecast", "--run-once", "--prefetch-seconds", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    state = _wait_final(url, flow_run_id, timeout=60)
    assert state["type"] == "COMPLETED", (state, worker.stdout[-3000:], worker.stderr[-3000:])
    assert "1 units backtested" in state["message"]


def test_serve_runs_weekly_backtest_without_a_work_pool(api, tmp_path):
    url, env = api
    for name in ("backtest/weekly-backtest", "forecast/daily-forecast"):  # left by the worker test, if it ran
        found = httpx.get(f"{url}/deployments/name/{name}", timeout=10)
        if found.status_code == 200:
            httpx.delete(f"{url}/deployments/{found.json()['id']}", timeout=10).raise_for_status()
    log = (tmp_path / "serve.log").open("w")
    code = "from flows.serve import serve_all; serve_all()"
    server = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:

        def serving() -> bool:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            return "being served" in (tmp_path / "serve.log").read_text()

        _wait(serving, timeout=120, what="`serve` to register its deployments")
        deployment = httpx.get(f"{url}/deployments/name/backtest/weekly-backtest", timeout=10).json()
        assert deployment["work_pool_name"] is None  # served by the runner, not a pool
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 6 * * 6"
        flow_run_id = _run_deployment(url, "backtest/weekly-backtest", TINY)
        state = _wait_final(url, flow_run_id, timeout=180)
        assert state["type"] == "COMPLETED", (state, (tmp_path / "serve.log").read_text()[-3000:])
    finally:
        _stop(server)
        log.close()
