"""ingest_flow: incremental, validated ingest of daily bars into the local DuckDB store.

Network failures are retried with exponential backoff (tasks.ingest.ingest_prices); bad data is not. After the
ingest, earlier live forecasts whose sessions now have prices are scored (the forecast track record).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from common.schema import ID
from common.settings import store_path
from flows import enable_package_logs
from ingest.spec import SourceSpec
from tasks.ingest import ingest_prices, publish_quality
from tasks.monitor import monitor_live
from tasks.results_store import score_live


@flow(name="ingest", log_prints=False, validate_parameters=True)
def ingest_flow(source: SourceSpec = SourceSpec()) -> dict[str, int]:  # noqa: B008 - frozen, validated once
    """Ingest `source` (its tickers, dates, calendars and cleaning policy) into the store; sessions per ticker."""
    enable_package_logs()
    spec = source
    store_file = str(store_path())
    panel, quality = ingest_prices(spec, store_file)
    publish_quality(quality)
    scored = score_live(store_file)
    monitor_live(store_file)  # artifacts and the breach event; the return value stays sessions per ticker
    counts = panel.groupby(ID).size().to_dict()
    get_run_logger().info("ingested %d tickers: %s; scored %d live forecast rows", len(counts), counts, scored)
    return {str(k): int(v) for k, v in counts.items()}
