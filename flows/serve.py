"""`pricecast serve`: the one-process alternative to a work pool, serving the deployments of prefect.yaml.

prefect.yaml is the one place the deployments are declared (entrypoints, parameters, schedules, triggers);
`serve` reads it and registers each deployment under a name of its own, `<name>-served`. It never touches
the deployments `prefect deploy` made from the same file: those keep their parameters, entrypoint and
work pool, and when serve stops it pauses only what it registered (Prefect's runner pauses the schedules of
its own deployments on shutdown, so no runs pile up that nobody executes).

Entrypoints are module paths (flows.backtest:backtest_flow), as in prefect.yaml: a file entrypoint would load
flows/backtest.py as a top-level module `backtest`, shadowing the backtest package.

One writer: the runner executes one flow run at a time (`limit=1`), the same rule the work pool's
concurrency limit of 1 gives `prefect deploy` users, so two scheduled flows never queue on the DuckDB lock.
"""

from __future__ import annotations

import importlib
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import serve

from common.errors import ConfigError, PortInUseError
from common.settings import runs_dir
from flows import enable_package_logs
from reports.server import DEFAULT_PORT, start_report_server

log = logging.getLogger(__name__)

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
SERVED_SUFFIX = "-served"


@dataclass(frozen=True)
class DeploymentDecl:
    """One deployment as prefect.yaml declares it."""

    name: str
    entrypoint: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    triggers: tuple[dict[str, Any], ...] = ()

    @property
    def served_name(self) -> str:
        return f"{self.name}{SERVED_SUFFIX}"

    @property
    def flow_name(self) -> str:
        return load_flow(self.entrypoint).name


def declared_deployments(path: Path = PREFECT_YAML) -> list[DeploymentDecl]:
    """The deployments of prefect.yaml, in file order."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no prefect.yaml there; pass --file with the project's prefect.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    decls = []
    for item in spec.get("deployments") or []:
        if not item.get("name") or not item.get("entrypoint"):
            raise ConfigError(f"{path}: every deployment needs a name and an entrypoint, got {item!r}")
        decls.append(
            DeploymentDecl(
                name=item["name"],
                entrypoint=item["entrypoint"],
                description=(item.get("description") or "").strip(),
                parameters=dict(item.get("parameters") or {}),
                schedules=tuple(item.get("schedules") or ()),
                triggers=tuple(item.get("triggers") or ()),
            )
        )
    if not decls:
        raise ConfigError(f"{path}: declares no deployments")
    return decls


def load_flow(entrypoint: str):
    """The flow object of a module-path entrypoint ("flows.forecast:forecast_flow")."""
    module, _, attr = entrypoint.partition(":")
    if not attr:
        raise ConfigError(f"entrypoint {entrypoint!r} is not a module path 'package.module:flow'")
    return getattr(importlib.import_module(module), attr)


def _schedule(spec: dict[str, Any]):
    from prefect.schedules import Cron, Interval, RRule

    extra = {k: spec[k] for k in ("parameters", "active", "slug") if k in spec}
    if "cron" in spec:
        return Cron(spec["cron"], timezone=spec.get("timezone"), **extra)
    if "interval" in spec:
        return Interval(spec["interval"], anchor_date=spec.get("anchor_date"), timezone=spec.get("timezone"), **extra)
    if "rrule" in spec:
        return RRule(spec["rrule"], timezone=spec.get("timezone"), **extra)
    raise ConfigError(f"schedule {spec!r} has no cron, interval or rrule")


def _triggers(decl: DeploymentDecl) -> list:
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    adapter: TypeAdapter = TypeAdapter(DeploymentTriggerTypes)
    out = []
    for i, spec in enumerate(decl.triggers, start=1):
        spec = {"name": f"{decl.served_name}__automation_{i}", **spec}
        out.append(adapter.validate_python(spec))
    return out


def runner_deployments(decls: list[DeploymentDecl]) -> list:
    """RunnerDeployments for `serve`: the declared ones under their `-served` names."""
    from prefect.deployments.runner import EntrypointType

    return [
        load_flow(d.entrypoint).to_deployment(
            name=d.served_name,
            schedules=[_schedule(s) for s in d.schedules] or None,
            triggers=_triggers(d) or None,
            parameters=d.parameters,
            description=f"{d.description} (served by `pricecast serve`)".strip(),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for d in decls
    ]


def check_names(decls: list[DeploymentDecl]) -> list[str]:
    """Refuse to serve a name that another tool owns; return notes on `prefect deploy` twins also scheduled.

    A deployment named `<name>-served` that belongs to a work pool was made by `prefect deploy` (the runner's
    have none): serving would rewrite it, so this raises. Deployments that `prefect deploy` made under the
    plain names are left alone; when their schedules are active they fire too, and the notes say so.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read(name: str):
        async with get_client() as client:
            try:
                return await client.read_deployment_by_name(name)
            except ObjectNotFound:
                return None

    notes: list[str] = []
    for d in decls:
        served = run_coro_as_sync(read(f"{d.flow_name}/{d.served_name}"))
        if served is not None and served.work_pool_name:
            raise ConfigError(
                f"deployment {d.flow_name}/{d.served_name} belongs to work pool {served.work_pool_name!r} "
                "(made by `prefect deploy`); `pricecast serve` will not rewrite it. Rename or delete it first"
            )
        twin = run_coro_as_sync(read(f"{d.flow_name}/{d.name}"))
        if twin is not None and twin.schedules and not twin.paused:
            notes.append(
                f"{d.flow_name}/{d.name} (work pool {twin.work_pool_name}) is scheduled too: both it and "
                f"{d.served_name} will run; pause one with `prefect deployment pause`"
            )
    return notes


def serve_all(*, path: Path = PREFECT_YAML, limit: int = 1, report_port: int = DEFAULT_PORT) -> None:
    """Serve every deployment of prefect.yaml (as `<name>-served`) until interrupted, with a report server.

    The report server makes the runs' report link artifacts http links the UI can open; when another
    `pricecast reports` already holds the port, that one serves them and serve carries on.
    """
    enable_package_logs()  # the served runs run in child processes: they inherit the loggers' routing
    decls = declared_deployments(path)
    for note in check_names(decls):
        log.warning(note)
    try:
        reports = start_report_server(runs_dir(), port=report_port)
    except PortInUseError as exc:
        log.warning("%s; the report server already running there serves the report links", exc)
        reports = None
    # `kill` stops serve like Ctrl-C does: Prefect's runner pauses its deployments' schedules on the way out only
    # for KeyboardInterrupt, and a served schedule left active piles up runs that nobody executes.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(*runner_deployments(decls), limit=limit)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if reports is not None:
            reports.stop()


if __name__ == "__main__":  # pragma: no cover - `python -m flows.serve`
    serve_all()
