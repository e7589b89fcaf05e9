"""Live-monitor task: the live record against the newest backtest; artifacts, and an event on a breach.

The event `pricecast.live.breach` (resource `pricecast.live-record`) is what the `weekly-backtest` deployment's
trigger in prefect.yaml listens for. Events go through Prefect's EventsWorker, which sends them in the
background and is drained when the process exits, like the run's own state events.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.tasks import exponential_backoff

from store.monitor import DEFAULT_POLICY, breach_markdown, live_monitor, monitor_records
from store.results_store import ResultStore
from tasks.retry_conditions import retry_network_errors

BREACH_EVENT = "pricecast.live.breach"
RECORD_RESOURCE = {"prefect.resource.id": "pricecast.live-record", "prefect.resource.name": "live forecast record"}
MAX_PAYLOAD_BREACHES = 200  # keeps the event far below the server's 1.5 MB limit on any panel size
NEXT_STEP = (
    f"a `{BREACH_EVENT}` event was sent. Where prefect.yaml is deployed, its trigger starts `weekly-backtest` now "
    "instead of on Saturday, so the next comparison is against a backtest that includes these sessions. Until "
    "then, treat the forecasts of these models with caution."
)


@task(
    name="monitor-live", retries=3, retry_delay_seconds=exponential_backoff(2), retry_condition_fn=retry_network_errors
)
def monitor_live(store_file: str) -> dict[str, Any]:
    """Compare each (ticker, model)'s recent live record with its newest backtest; table artifact `live-monitor`,
    and on a breach a `live-breach` notification and one `pricecast.live.breach` event naming every breach."""
    frame = live_monitor(ResultStore(store_file), DEFAULT_POLICY)
    records = monitor_records(frame)
    breaches = [r for r in records if r["breach"]]
    summary = f"{len(records)} live (ticker, model) pairs against their newest backtest, {len(breaches)} breached"
    create_table_artifact(table=records, key="live-monitor", description=summary)
    event = None
    if breaches:
        notice = breach_markdown(frame, DEFAULT_POLICY, next_step=NEXT_STEP)
        create_markdown_artifact(markdown=notice, key="live-breach", description=summary)
        payload = {"n_breaches": len(breaches), "breaches": breaches[:MAX_PAYLOAD_BREACHES]}
        event = emit_event(event=BREACH_EVENT, resource=RECORD_RESOURCE, payload=payload)
        get_run_logger().warning("live breach: %s", "; ".join(f"{r['model']} on {r['unique_id']}" for r in breaches))
    brief = [{k: r[k] for k in ("unique_id", "model", "reason")} for r in breaches]
    return {"pairs": len(records), "breaches": brief, "event_id": str(event.id) if event else None}
