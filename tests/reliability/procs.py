"""Run the `pricecast` CLI as a separate process against the session's Prefect test server (to kill it, or to
run two at once), and read the results back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

PRICECAST = Path(sys.executable).with_name("pricecast")


def cli_env(home: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: this test's PRICECAST_HOME, the test server's API, a private PREFECT_HOME."""
    from prefect.settings import PREFECT_API_URL

    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PRICECAST_HOME=str(home),
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen([str(PRICECAST), *args], env=env, stdout=handle, stderr=subprocess.STDOUT)


def run(args: list[str], env: dict[str, str], log: Path, *, timeout: float = 300) -> int:
    proc = start(args, env, log)
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


def wait_for(predicate, *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def query(store: Path, sql: str) -> list[tuple]:
    """Read the store like a user would (read-only, so a crashed writer's lock never matters)."""
    if not store.exists():
        return []
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:  # the table is created by the first write that needs it
        return []
    finally:
        con.close()
