"""tasks.monitor.monitor_live on the test API server: `live-monitor` / `live-breach` artifacts and the breach event."""

from __future__ import annotations

import time
from uuid import UUID

import pytest

from tests.flows.helpers import _sync, latest_artifacts
from tests.store.monitor_helpers import seed_backtest, seed_live

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]


def _read_event(event_id: str, *, timeout: float = 60):
    """The stored event with this id, polled: the server persists events in batches, a moment after they arrive."""
    from prefect.events.filters import EventFilter, EventIDFilter, EventNameFilter

    from tasks.monitor import BREACH_EVENT

    deadline = time.monotonic() + timeout
    while True:
        # A new filter each time: its `occurred.until` defaults to the moment it is built. The client's default
        # limit (100) is above the server's maximum (50) in prefect 3.8.8, which answers 422: pass one.
        wanted = EventFilter(event=EventNameFilter(name=[BREACH_EVENT]), id=EventIDFilter(id=[UUID(event_id)]))
        page = _sync(lambda c, f=wanted: c.read_events(filter=f, limit=10))
        if page.events:
            return page.events[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"event {event_id} not stored by the server after {timeout}s")
        time.sleep(0.5)


def test_a_breach_publishes_both_artifacts_and_one_event_the_server_stores(prefect_server, tmp_path):
    from prefect import flow

    from tasks.monitor import monitor_live

    path = tmp_path / "s.duckdb"
    seed_live(path, "AAA", {"naive": (1, 2, 3), "drift": (2, 4, 5)}, n_as_of=25)
    seed_backtest(path, "bt-1", "2023-01-07T06:00:00", {("AAA", "naive"): (1, 2), ("AAA", "drift"): (1, 2)})

    @flow(name="monitor-test")
    def monitor_flow(store_file: str) -> dict:
        return monitor_live(store_file)

    out = monitor_flow(str(path))
    assert out["pairs"] == 2 and [(b["unique_id"], b["model"]) for b in out["breaches"]] == [("AAA", "drift")]
    assert out["breaches"][0]["reason"].startswith("live MASE") and out["event_id"]

    artifacts = latest_artifacts()
    assert '"model": "naive"' in artifacts["live-monitor"].data and '"breach": true' in artifacts["live-monitor"].data
    notice = artifacts["live-breach"].data
    assert "| AAA | drift |" in notice and "naive" not in notice and "weekly-backtest" in notice

    event = _read_event(out["event_id"])
    assert event.resource.id == "pricecast.live-record"
    assert event.payload["n_breaches"] == 1 and event.payload["breaches"][0]["model"] == "drift"
    assert event.payload["breaches"][0]["backtest_run_id"] == "bt-1"
    assert any(r.id.startswith("prefect.flow-run.") for r in event.related)  # attached from the run context


def test_no_breach_publishes_the_table_only_and_sends_no_event(prefect_server, tmp_path):
    from prefect import flow

    from tasks.monitor import monitor_live

    path = tmp_path / "s.duckdb"
    seed_live(path, "AAA", {"naive": (1, 2, 3)}, n_as_of=25)
    seed_backtest(path, "bt-1", "2023-01-07T06:00:00", {("AAA", "naive"): (1, 2)})

    @flow(name="monitor-test")
    def monitor_flow(store_file: str) -> dict:
        return monitor_live(store_file)

    before = latest_artifacts().get("live-breach")
    out = monitor_flow(str(path))
    assert out == {"pairs": 1, "breaches": [], "event_id": None}
    after = latest_artifacts()
    assert '"reason": "within policy"' in after["live-monitor"].data
    assert getattr(after.get("live-breach"), "id", None) == getattr(before, "id", None)  # no new notification
