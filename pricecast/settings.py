"""Where pricecast keeps its files: PRICECAST_HOME (default ~/.pricecast) and the DuckDB store in it."""

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
