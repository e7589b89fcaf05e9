"""Ingest tasks: load a validated panel through the price store, publish the data-quality table."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.tasks import exponential_backoff

from common.errors import SourceError
from ingest.load import load_panel
from ingest.price_store import PriceStore
from ingest.quality import QualityReport
from ingest.spec import SourceSpec
from tasks.retry_conditions import retry_store_locks


@task(
    name="ingest-prices",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    # ONE retry layer for the network, and it is the source's (ingest.sources.live.fetch_live: DEFAULT_ATTEMPTS
    # tries with backoff per ticker): it knows which errors are transient (HTTP 429/5xx, timeouts, resets, not a
    # 404), and it is what `pricecast ingest` and the tests run outside Prefect too. Retrying network errors here
    # again hit a dead endpoint attempts x (retries + 1) = 16 times per ticker behind two backoffs. This task only
    # retries a price-store lock that outlasts PriceStore's own short wait (another run writing the file): no
    # layer below waits that long. Bad data, bad options and missing files never improve on a retry.
    retry_condition_fn=retry_store_locks,
)
def ingest_prices(spec: SourceSpec, store_file: str) -> tuple[pd.DataFrame, QualityReport]:
    """Fetch new bars into the store (incremental for live sources) and return the validated panel."""
    return load_panel(spec, store=PriceStore(store_file))


@task(name="publish-data-quality")
def publish_quality(quality: QualityReport, *, key: str = "data-quality") -> None:
    """Data-quality counts as a table artifact (one row per ticker and check)."""
    frame = quality.to_frame()
    create_table_artifact(
        table=frame.astype(str).to_dict(orient="records"),
        key=key,
        description="Ingest data-quality summary: every cleaning step, counted",
    )


__all__ = ["ingest_prices", "publish_quality", "SourceError"]
