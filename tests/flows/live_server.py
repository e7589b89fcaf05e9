"""A real `prefect server start` for the tests that need one, and an API client that retries like Prefect's.

The SQLite-backed server answers 503 while another process holds its database (a worker, `serve`, the
scheduler): every call here goes through `api()`, which retries 503/502/429 and dropped connections with
exponential backoff, as `prefect.client` does, so a loaded machine never turns a busy server into a red run.

`readme_steps()` reads the README's own server sequence, so the end-to-end test runs what users run.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RETRY_STATUS = {429, 502, 503}
README_PORTS = {"4200": "api", "4210": "reports"}  # the ports the README's commands use


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def api(method: str, url: str, *, attempts: int = 8, **kwargs: Any) -> httpx.Response:
    """One HTTP call to a test server, retried on 503/502/429 and connection errors (bounded: about 30 s)."""
    kwargs.setdefault("timeout", 15)
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.request(method, url, **kwargs)
            if response.status_code not in RETRY_STATUS or attempt == attempts:
                return response
        except (httpx.TransportError, httpx.TimeoutException):
            if attempt == attempts:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def api_json(method: str, url: str, **kwargs: Any) -> Any:
    response = api(method, url, **kwargs)
    assert response.status_code < 300, f"{method} {url}: HTTP {response.status_code} {response.text[:500]}"
    return response.json() if response.content else None


def stop(proc: subprocess.Popen) -> None:
    """Stop a process a test started in its own session, escalating to SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


_LEVEL = re.compile(r"(^|\|\s*|\s)(ERROR|CRITICAL)(\s|\s*\||:)")
_RECORD_START = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} \|")  # Prefect's console format: "21:10:54.956 | LEVEL | ..."

# Prefect 3.8.8's server persists a worker-channel heartbeat in a DEFERRED SQLite transaction that reads the work
# pool, then writes. When another writer commits in between, SQLite answers SQLITE_BUSY at once (a read
# transaction cannot be upgraded; busy_timeout does not apply), the server logs this ERROR and closes the channel,
# and the worker reconnects with backoff (prefect/workers/_worker_channel/_sync.py). Seen only under load, on the
# SQLite backend (PostgreSQL locks rows instead). The test tolerates exactly this record, and separately checks
# that the worker is still ONLINE afterwards: a failure that did not recover stays red.
KNOWN_SQLITE_RACE = ("Worker channel heartbeat persistence failed", "sqlite3.OperationalError: database is locked")


def error_records(log_text: str) -> list[str]:
    """ERROR/CRITICAL log records, each with the traceback lines that follow it (up to the next record)."""
    records: list[list[str]] = []
    inside = False
    for line in log_text.splitlines():
        if _LEVEL.search(line):
            records.append([line])
            inside = True
        elif inside and not _RECORD_START.match(line):
            records[-1].append(line)
        else:
            inside = False
    return ["\n".join(r) for r in records]


def error_lines(log_text: str) -> list[str]:
    """The first line of every ERROR/CRITICAL record except Prefect's known, self-healing SQLite heartbeat race."""
    return [r.splitlines()[0] for r in error_records(log_text) if not is_known_sqlite_race(r)]


def is_known_sqlite_race(record: str) -> bool:
    """True for the worker-channel heartbeat that lost SQLite's write lock (see KNOWN_SQLITE_RACE)."""
    first, cause = KNOWN_SQLITE_RACE
    return record.splitlines()[0].find(first) >= 0 and cause in record


@dataclass
class Step:
    """One command of the README's server sequence; `background` for lines ending in `&`."""

    argv: list[str]
    background: bool
    text: str


def readme_steps(ports: dict[str, int], *, heading: str = "## Running on a schedule") -> list[Step]:
    """The shell block under `heading` in README.md, with its ports replaced ({"api": 4321, "reports": 4322})."""
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    steps = []
    for raw in block.strip().splitlines():
        line = raw.split("  #", 1)[0].strip()  # trailing comments are two spaces then '#'
        if not line or line.startswith("#"):
            continue
        for readme_port, role in README_PORTS.items():
            line = line.replace(readme_port, str(ports[role]))
        background = line.endswith("&")
        argv = shlex.split(line.rstrip("&").strip())
        if argv[0].startswith(".venv/bin/"):
            argv[0] = str(BIN / argv[0].removeprefix(".venv/bin/"))
        steps.append(Step(argv=argv, background=background, text=raw.strip()))
    return steps


def start_background(argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def run_step(argv: list[str], *, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def user_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell with its own PREFECT_HOME and PRICECAST_HOME under `home`."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "prefect"),
        "PRICECAST_HOME": str(home / "pricecast"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for var in ("PREFECT_API_KEY", "PREFECT_API_URL", "PREFECT_PROFILES_PATH", "PRICECAST_STORE"):
        env.pop(var, None)
    return env
