"""Shared helpers of the flow tests: a model that always fails, sample CSVs, reading runs back from the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from models.base import Forecaster

UNIT_SEP = " on "  # unit task runs are named "{model} on {ticker}"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Boom(Forecaster):
    """A registered-for-the-test model whose fit always raises."""

    name: ClassVar[str] = "boom"

    def _fit(self, y: np.ndarray, X: pd.DataFrame | None) -> None:
        raise ValueError("boom: this test model always fails")

    def _predict(self, horizon: int):  # pragma: no cover - never fitted
        raise AssertionError


def register_boom(monkeypatch) -> None:
    import models

    spec = models.ModelSpec("tests.flows.helpers:Boom", "always fails (tests only)")
    monkeypatch.setitem(models.REGISTRY, "boom", spec)


def sample_csv(path: Path, tickers: tuple[str, ...], *, start: str, end: str, drop_last: dict[str, int] | None = None):
    """Write the bundled sample's rows of `tickers` in [start, end] to a CSV, dropping the last n rows per ticker."""
    from ingest.sources.sample import read_sample
    from ingest.spec import SourceSpec

    raw = read_sample(SourceSpec(tickers=tickers))
    raw = raw[raw["unique_id"].isin(tickers) & (raw["ds"] >= start) & (raw["ds"] <= end)]
    parts = []
    for uid, g in raw.groupby("unique_id"):
        n = (drop_last or {}).get(str(uid), 0)
        parts.append(g.iloc[: len(g) - n] if n else g)
    pd.concat(parts).to_csv(path, index=False)
    return path


def flow_run_id(state) -> str:
    """The run's id: a state the flow returned itself (Failed(...)) carries no details, its summary does."""
    run_id = state.state_details.flow_run_id or state.result(raise_on_failure=False)["flow_run_id"]
    assert run_id, state
    return str(run_id)


def _sync(coro_fn):
    from prefect.client.orchestration import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def run():
        async with get_client() as client:
            return await coro_fn(client)

    return run_coro_as_sync(run())


def unit_states(state, *, expected: int, timeout: float = 30) -> dict[str, str]:
    """{"naive on AAPL": "Cached", ...} for a flow run's unit tasks, once all `expected` reached a final state.

    Prefect 3 records task states from events, a moment after the flow returns: poll until they are final.
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id(state)]))
    deadline = time.monotonic() + timeout
    while True:
        runs = _sync(lambda c: c.read_task_runs(flow_run_filter=run_filter))
        units = {r.name: r.state for r in runs if UNIT_SEP in r.name and r.state is not None}
        if len(units) >= expected and all(s.type.value in FINAL for s in units.values()):
            return {name: s.name for name, s in units.items()}
        if time.monotonic() > deadline:
            raise AssertionError(f"unit task states not final after {timeout}s: {units}")
        time.sleep(0.5)


def run_logs(state, *, contains: str, timeout: float = 30) -> list[str]:
    """Messages of a flow run's logs, polled until one contains `contains` (logs are shipped in batches)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id(state)]))
    deadline = time.monotonic() + timeout
    while True:
        messages = [log.message for log in _sync(lambda c: c.read_logs(log_filter=log_filter))]
        if any(contains in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def latest_artifacts() -> dict[str, Any]:
    """{key: artifact} of the latest artifact under each key."""
    return {a.key: a for a in _sync(lambda c: c.read_latest_artifacts()) if a.key}


def flow_params(model: type, **flat: Any) -> Any:
    """A flow's typed parameters from flat test keywords: SourceSpec's fields (tickers, start, path, ...) go into
    `source`, the rest onto `model` (flows.params.BacktestParams, ...) - the object the CLI and deployments pass."""
    from ingest.spec import SourceSpec

    source = {k: flat.pop(k) for k in list(flat) if k in SourceSpec.model_fields}
    return model(source=SourceSpec(**source), **flat)


def backtest_params(**flat: Any) -> Any:
    from flows.params import BacktestParams

    return flow_params(BacktestParams, **flat)


def event_params(**flat: Any) -> Any:
    from flows.params import EventBacktestParams

    return flow_params(EventBacktestParams, **flat)


def forecast_params(**flat: Any) -> Any:
    from flows.params import ForecastParams

    return flow_params(ForecastParams, **flat)


def deployment_parameters(model: type, **flat: Any) -> dict[str, Any]:
    """The JSON a deployment stores for these parameters: {"params": {...}}, as prefect.yaml writes it."""
    return {"params": flow_params(model, **flat).model_dump(mode="json", exclude_defaults=True)}
