"""`pricecast serve`: the one-process alternative to a work pool, with the schedules of prefect.yaml.

`serve` registers the deployments with the API and runs their flow runs in subprocesses of this process.
Entrypoints are module paths (flows.backtest:backtest_flow), as in prefect.yaml: a file entrypoint would load
flows/backtest.py as a top-level module `backtest`, shadowing the backtest package.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron

from flows.backtest import backtest_flow
from flows.forecast import forecast_flow

TIMEZONE = "America/New_York"
DAILY_FORECAST_CRON = "30 17 * * 1-5"  # weekdays, 90 minutes after the US close
WEEKLY_BACKTEST_CRON = "0 6 * * 6"  # Saturday morning, when no forecast runs


def deployments(
    *, forecast_params: dict[str, Any] | None = None, backtest_params: dict[str, Any] | None = None
) -> list:
    """The daily-forecast and weekly-backtest deployments (names and schedules as in prefect.yaml)."""
    return [
        forecast_flow.to_deployment(
            name="daily-forecast",
            schedule=Cron(DAILY_FORECAST_CRON, timezone=TIMEZONE),
            parameters=forecast_params or {},
            description="Forecast the next sessions after the US close; store and score them.",
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        backtest_flow.to_deployment(
            name="weekly-backtest",
            schedule=Cron(WEEKLY_BACKTEST_CRON, timezone=TIMEZONE),
            parameters=backtest_params or {},
            description="Weekly rolling-origin backtest of every model family.",
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def serve_all(*, limit: int | None = None, **params: Any) -> None:
    """Serve both deployments until interrupted (Ctrl-C pauses their schedules)."""
    serve(*deployments(**params), limit=limit)


if __name__ == "__main__":  # pragma: no cover - `python -m flows.serve`
    serve_all()
