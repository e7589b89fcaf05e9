"""Where pricecast keeps its files: PRICECAST_HOME (default ~/.pricecast), the DuckDB store and runs in it, and
where the report server publishes itself."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "PRICECAST_HOME"


def home() -> Path:
    """The pricecast home directory, created on first use."""
    path = Path(os.environ.get(HOME_ENV) or Path.home() / ".pricecast").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path() -> Path:
    """The embedded DuckDB store (prices, forecasts, backtest results)."""
    return Path(os.environ.get("PRICECAST_STORE") or home() / "pricecast.duckdb")


def runs_dir() -> Path:
    """Where backtest run directories (parquet, csv, report.html) go by default."""
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


# A report server run elsewhere or behind a proxy: the base URL that serves REPORTS_ROOT_ENV (default runs_dir()).
REPORTS_URL_ENV = "PRICECAST_REPORTS_URL"
REPORTS_ROOT_ENV = "PRICECAST_REPORTS_ROOT"


def reports_url() -> str | None:
    """The base URL of an external report server (PRICECAST_REPORTS_URL), if one is configured."""
    return os.environ.get(REPORTS_URL_ENV) or None


def reports_root() -> Path:
    """The directory that PRICECAST_REPORTS_URL serves (PRICECAST_REPORTS_ROOT, default runs_dir())."""
    root = os.environ.get(REPORTS_ROOT_ENV)
    return Path(root).expanduser() if root else runs_dir()


def report_server_file() -> Path:
    """Discovery file of the local report server (url, root, pid): present while `pricecast reports` runs."""
    return home() / "report-server.json"
