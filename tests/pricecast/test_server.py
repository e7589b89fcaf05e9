"""The CLI's background Prefect server as a user meets it: the first flow command starts it, the run is visible in
its API afterwards, `server status` reports it, `server stop` stops it and frees the port; an explicit
PREFECT_API_URL is used as-is; a port held by another program is one clear line.

Every command runs as a real `pricecast` process (the server must outlive the command that started it), in a
temporary PREFECT_HOME on a free port; a finalizer always stops what a test started.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pricecast import server
from tests.flows.live_server import api, free_port, wait_for

PRICECAST = [sys.executable, "-m", "pricecast.cli"]
FORECAST = ["forecast", "--tickers", "AAPL", "--models", "naive", "--horizon", "5"]
RUN_ID = re.compile(r"\(run\s+([0-9a-f-]{36})\)")  # the terminal may wrap the line before the id


def cli_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """A user's environment: no API configured, pricecast's background server on `port`, homes under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PRICECAST_HOME=str(tmp_path / "pricecast-home"),
        PRICECAST_SERVER="background",
        PRICECAST_SERVER_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    env.update(extra)
    return env


def pricecast(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PRICECAST, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, int]]:
    """The environment of a CLI user with no server yet; whatever server a test starts is stopped afterwards."""
    port = free_port()
    env = cli_env(tmp_path, port)
    home = Path(env["PREFECT_HOME"])
    yield env, home, port
    state = server.read_state(home)
    server.stop(home)
    if state is not None and server.alive(state.pid):  # stop() failed: never leave a server behind pytest
        os.kill(state.pid, 9)


def port_free(port: int) -> bool:
    return server._port_free(port)


@pytest.mark.slow
@pytest.mark.server
def test_the_first_forecast_starts_a_server_that_keeps_the_run_and_status_and_stop_manage_it(started, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient

    env, home, port = started
    first = pricecast(env, *FORECAST)
    assert first.returncode == 0, first.stderr
    state = server.read_state(home)
    assert state is not None and state.port == port, "the forecast started no background server"
    assert server.alive(state.pid), "the server died with the command that started it"

    # The run is in the server's database after the command exited: what the UI shows.
    run_id = RUN_ID.search(first.stdout).group(1)
    with SyncPrefectClient(state.api_url) as client:
        run = client.read_flow_run(run_id)
        assert run.state is not None and run.state.is_completed()
        assert client.read_flow(run.flow_id).name == "forecast"

    # A second process, pointed at this server explicitly (a user's own server), uses it and spawns nothing.
    other = cli_env(tmp_path / "other", port, PREFECT_API_URL=state.api_url)
    second = pricecast(other, *FORECAST)
    assert second.returncode == 0, second.stderr
    assert server.read_state(Path(other["PREFECT_HOME"])) is None, "an explicit PREFECT_API_URL spawned a server"
    second_id = RUN_ID.search(second.stdout).group(1)
    runs = api("POST", f"{state.api_url}/flow_runs/filter", json={"limit": 10}).json()
    assert {run_id, second_id} <= {r["id"] for r in runs}

    status = pricecast(env, "server", "status")
    assert status.returncode == 0, status.stderr
    assert state.api_url in status.stdout and str(state.pid) in status.stdout
    assert f"http://127.0.0.1:{port}" in status.stdout and "running" in status.stdout

    stopped = pricecast(env, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the Prefect server (pid {state.pid}" in stopped.stdout
    wait_for(lambda: not server.alive(state.pid), timeout=15, what="the server process to exit")
    wait_for(lambda: port_free(port), timeout=15, what=f"port {port} to be free")
    assert server.read_state(home) is None

    again = pricecast(env, "server", "stop")
    assert again.returncode == 0 and "no background Prefect server runs" in again.stdout
    after = pricecast(env, "server", "status")
    assert after.returncode == 0 and "no background Prefect server runs" in after.stdout


class _NotPrefect(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port held by an HTTP server that is not a Prefect API."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotPrefect)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("command", [["server", "start"], FORECAST])
def test_a_port_held_by_another_program_is_one_clear_line_and_nothing_starts(command, tmp_path, busy_port):
    env = cli_env(tmp_path, busy_port)
    result = pricecast(env, *command, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"port {busy_port}" in lines[0] and "not a Prefect API" in lines[0] and "PRICECAST_SERVER_PORT" in lines[0]
    assert server.read_state(Path(env["PREFECT_HOME"])) is None


def test_an_explicit_api_url_is_reported_by_status_and_no_server_is_started(tmp_path):
    env = cli_env(tmp_path, free_port(), PREFECT_API_URL="http://127.0.0.1:9/api")
    result = pricecast(env, "server", "status", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "PREFECT_API_URL=http://127.0.0.1:9/api is set" in result.stdout
    assert server.read_state(Path(env["PREFECT_HOME"])) is None


def test_temporary_mode_keeps_prefects_own_server_and_a_bad_mode_is_one_line(monkeypatch):
    monkeypatch.setenv(server.MODE_ENV, "temporary")
    assert server.mode() == "temporary"
    monkeypatch.setenv(server.MODE_ENV, "sometimes")
    with pytest.raises(server.ConfigError, match="PRICECAST_SERVER='sometimes'.*background or temporary"):
        server.mode()
