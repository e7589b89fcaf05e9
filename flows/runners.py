"""Task runner chosen by setting: threads or processes on one machine, or a Dask cluster (prefect-dask)."""

from __future__ import annotations

import os
from typing import Any

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

RUNNER_ENV = "PRICECAST_TASK_RUNNER"  # threads (default) | processes | dask
DASK_ENV = "PRICECAST_DASK_ADDRESS"  # tcp://host:8786 of a running scheduler; empty = a local cluster
WORKERS_ENV = "PRICECAST_WORKERS"


def task_runner(kind: str | None = None, *, address: str | None = None, workers: int | None = None) -> TaskRunner[Any]:
    """The runner for `kind` (default from PRICECAST_TASK_RUNNER)."""
    kind = (kind or os.environ.get(RUNNER_ENV) or "threads").lower()
    workers = workers or int(os.environ.get(WORKERS_ENV) or os.cpu_count() or 1)
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        address = address or os.environ.get(DASK_ENV) or None
        if address:
            return DaskTaskRunner(address=address)
        from flows import EXTRA_LOGGERS_ENV, extra_loggers

        # The workers start before a flow's first line runs: they get the package loggers' routing from here.
        env = {EXTRA_LOGGERS_ENV: ",".join(extra_loggers())}
        cluster = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "env": env}
        return DaskTaskRunner(cluster_kwargs=cluster)
    raise ValueError(f"{RUNNER_ENV}={kind!r} is not a task runner; use threads, processes or dask")
