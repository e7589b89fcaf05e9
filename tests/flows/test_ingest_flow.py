"""The Prefect API starts (fastapi pin holds) and ingest_flow runs on it end to end."""

from __future__ import annotations

import pytest

from ingest.spec import SourceSpec

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]


def test_prefect_api_answers_health_check(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def health():
        async with get_client() as client:
            return await client.api_healthcheck()

    assert run_coro_as_sync(health()) is None  # None means healthy; an exception object otherwise


def test_ingest_flow_stores_sample_and_publishes_quality(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    from common.settings import store_path
    from flows.ingest import ingest_flow
    from ingest.price_store import PriceStore

    counts = ingest_flow(source=SourceSpec(tickers=["AAPL", "IBM"], start="2012-01-01"))
    assert set(counts) == {"AAPL", "IBM"} and all(n > 250 for n in counts.values())
    stored = PriceStore(store_path()).read("sample", ("AAPL", "IBM"), None, None)
    assert len(stored) == sum(counts.values())

    # Running it again adds nothing (idempotent writes).
    ingest_flow(source=SourceSpec(tickers=["AAPL", "IBM"], start="2012-01-01"))
    assert len(PriceStore(store_path()).read("sample", ("AAPL", "IBM"), None, None)) == len(stored)

    async def artifact():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    keys = {a.key for a in run_coro_as_sync(artifact())}
    assert "data-quality" in keys
