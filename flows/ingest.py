"""ingest_flow: incremental, validated ingest of daily bars into the local DuckDB store.

Network failures are retried with exponential backoff (tasks.ingest.ingest_prices); bad data is not. After the
ingest, earlier live forecasts whose sessions now have prices are scored (the forecast track record).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from prefect import flow, get_run_logger

from common.schema import ID
from common.settings import store_path
from flows import enable_package_logs
from ingest.spec import SourceSpec
from tasks.ingest import ingest_prices, publish_quality
from tasks.monitor import monitor_live
from tasks.results_store import score_live


@flow(name="ingest", log_prints=False)
def ingest_flow(
    source: Literal["sample", "csv", "parquet", "yfinance", "fdr"] = "sample",
    tickers: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    path: str | None = None,
    target: Literal["auto", "adj_close", "close"] = "auto",
    calendars: dict[str, str] | None = None,  # trading calendar per ticker, "*" = all (SourceSpec.calendars)
) -> dict[str, int]:
    """Ingest `tickers` from `source` into the store; returns sessions per ticker."""
    enable_package_logs()
    spec = SourceSpec(
        source=source,
        path=path,
        tickers=tuple(tickers) if tickers else None,
        start=start,
        end=end,
        target=target,
        calendars=calendars,
    )
    store_file = str(store_path())
    panel, quality = ingest_prices(spec, store_file)
    publish_quality(quality)
    scored = score_live(store_file)
    monitor_live(store_file)  # artifacts and the breach event; the return value stays sessions per ticker
    counts = panel.groupby(ID).size().to_dict()
    get_run_logger().info("ingested %d tickers: %s; scored %d live forecast rows", len(counts), counts, scored)
    return {str(k): int(v) for k, v in counts.items()}
