"""Prefect @flow definitions: typed parameters (flows.params) and composition only, no maths.

Importing `flows` changes nothing. Starting any flow (and `pricecast serve`) routes the pure packages' stdlib
loggers into the Prefect run logs, see `enable_package_logs`; deployments set the same variable in prefect.yaml
and Dask workers get it from flows.runners.
"""

from __future__ import annotations

import logging
import os

EXTRA_LOGGERS_ENV = "PREFECT_LOGGING_EXTRA_LOGGERS"
PACKAGE_LOGGERS = ("common", "ingest", "features", "models", "backtest", "reports", "store")


def extra_loggers() -> list[str]:
    """PREFECT_LOGGING_EXTRA_LOGGERS's names with the pure packages' added (the value child processes need)."""
    current = [n for n in os.environ.get(EXTRA_LOGGERS_ENV, "").split(",") if n.strip()]
    return list(dict.fromkeys([*current, *PACKAGE_LOGGERS]))


def enable_package_logs() -> None:
    """Send records of the pure packages' loggers to the Prefect API (the run's logs in the UI).

    Sets PREFECT_LOGGING_EXTRA_LOGGERS, which prefect reads when it loads its settings: processes started
    later (a worker's flow runs, `serve`'s runs, Dask workers) route the loggers themselves. In this process
    prefect may have loaded its settings before the variable was set (a worker's `python -m prefect.engine`,
    a test session), so the handlers prefect configured for extra loggers are attached here too - the same
    handler objects, never twice. Flows call this again when they start, once prefect's logging is surely
    configured. Levels are left alone: the loggers keep their effective level (WARNING unless configured).
    """
    names = extra_loggers()
    os.environ[EXTRA_LOGGERS_ENV] = ",".join(names)
    quiet_thread_timeout_notice()
    extra = logging.getLogger("prefect.extra")  # prefect's configured handlers for extra loggers
    for name in names:
        logger = logging.getLogger(name)
        for handler in extra.handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)


class _ThreadTimeoutNotice(logging.Filter):
    """Drop Prefect's per-task warning that a timeout cannot interrupt a blocking call in a worker thread.

    Every backtest unit has a timeout (`unit_timeout_seconds`), so the warning would repeat once per unit on
    every run; the limitation it describes (a hang inside C code or I/O is only stopped when the call returns)
    is documented once in the README instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Timeout of") and "worker thread" in message)


def quiet_thread_timeout_notice() -> None:
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _ThreadTimeoutNotice) for f in logger.filters):
        logger.addFilter(_ThreadTimeoutNotice())
