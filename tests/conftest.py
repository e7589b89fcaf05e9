"""Suite-wide settings: no network, an isolated PRICECAST_HOME, and one Prefect test server per worker."""

from __future__ import annotations

import os

import pytest

# Must be set before prefect is imported anywhere (no network here, keep runs quiet).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI under test uses the harness's API or a temporary server, never leaves a background one running
# (tests/pricecast/test_server.py asks for one explicitly).
os.environ.setdefault("PRICECAST_SERVER", "temporary")
# A flow run routes the package loggers to the API (flows.enable_package_logs); tests that log outside any flow
# run afterwards, in the same process, are not flow runs: nothing to send, nothing to warn about.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

# Prefect configures its logging with dictConfig when prefect.main is first imported, which flushes and closes every
# handler in the process and binds Prefect's console handler to the sys.stderr of that moment. Done here, once per
# worker at collection, it never happens in the middle of a test (inside pytest's capture or a CliRunner invoke,
# whose streams are swapped and closed afterwards).
import prefect.main  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own PRICECAST_HOME, so no test touches ~/.pricecast or another test's store."""
    monkeypatch.setenv("PRICECAST_HOME", str(tmp_path / "pricecast-home"))
    monkeypatch.delenv("PRICECAST_STORE", raising=False)


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API server (SQLite) for the whole session; starting one costs 8-20 s."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
