"""ingest_flow: incremental, validated ingest of daily bars into the local DuckDB store."""

from __future__ import annotations

from datetime import date
from typing import Literal

from prefect import flow, get_run_logger

from features.schema import ID
from ingest.spec import SourceSpec
from pricecast.settings import store_path
from tasks.ingest import ingest_prices, publish_quality


@flow(name="ingest", log_prints=False)
def ingest_flow(
    source: Literal["sample", "csv", "parquet", "yfinance", "fdr"] = "sample",
    tickers: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    path: str | None = None,
    target: Literal["auto", "adj_close", "close"] = "auto",
) -> dict[str, int]:
    """Ingest `tickers` from `source` into the store; returns sessions per ticker."""
    spec = SourceSpec(
        source=source, path=path, tickers=tuple(tickers) if tickers else None, start=start, end=end, target=target
    )
    panel, quality = ingest_prices(spec, str(store_path()))
    publish_quality(quality)
    counts = panel.groupby(ID).size().to_dict()
    get_run_logger().info("ingested %d tickers: %s", len(counts), counts)
    return {str(k): int(v) for k, v in counts.items()}
