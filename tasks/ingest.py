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
from tasks.retry import retry_network_errors


@task(
    name="ingest-prices",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    # Bad data, bad options and missing files will not improve on retry; network errors and store locks may.
    retry_condition_fn=retry_network_errors,
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
