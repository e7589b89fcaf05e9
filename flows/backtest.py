"""backtest_flow: every model on identical rolling-origin folds, scored against the naive random walk.

Composition only: ingest -> features per ticker -> fold plan -> one cached task per (ticker, model) ->
gather, score, report -> artifacts. The maths lives in backtest/, models/ and features/.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, unmapped
from prefect.states import Completed, Failed
from pydantic import Field

from backtest.engine import DEFAULT_REFIT_EVERY
from backtest.folds import FoldPlan
from features.build import FeatureConfig
from features.schema import ID, MODEL
from flows.runners import task_runner
from ingest.spec import SourceSpec
from pricecast.settings import store_path
from tasks.backtest import (
    build_ticker_features,
    gather_and_score,
    plan_folds,
    publish_artifacts,
    run_unit,
    write_outputs,
)
from tasks.ingest import ingest_prices, publish_quality
from tasks.units import collect_units, run_meta, run_out_dir

DEFAULT_MODELS = ["naive", "drift", "moving_average", "ses", "holt", "ets", "arima", "prophet", "lstm", "ensemble"]


@flow(name="backtest", task_runner=task_runner(), validate_parameters=True)
def backtest_flow(
    tickers: list[str] | None = None,
    models: list[str] = DEFAULT_MODELS,  # noqa: B006 - Prefect parameters are copied per run
    horizon: Annotated[int, Field(gt=0)] = 5,
    windows: Annotated[int, Field(gt=0)] = 20,
    step: Annotated[int, Field(gt=0)] = 5,
    refit_every: Annotated[int, Field(ge=0)] = DEFAULT_REFIT_EVERY,
    window_type: Literal["expanding", "sliding"] = "expanding",
    train_size: Annotated[int, Field(gt=0)] | None = None,
    source: Literal["sample", "csv", "parquet", "yfinance", "fdr"] = "sample",
    path: str | None = None,
    start: date | None = date(2005, 3, 1),
    end: date | None = None,
    target: Literal["auto", "adj_close", "close"] = "auto",
    model_params: dict[str, dict[str, Any]] | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Backtest `models` on `tickers` and write forecasts, metrics, leaderboard and report.html to out_dir."""
    log = get_run_logger()
    started = datetime.now(UTC)
    spec = SourceSpec(
        source=source, path=path, tickers=tuple(tickers) if tickers else None, start=start, end=end, target=target
    )
    plan = FoldPlan(horizon=horizon, step=step, windows=windows, window_type=window_type, train_size=train_size)
    out = run_out_dir(out_dir)
    panel, quality = ingest_prices(spec, str(store_path()))
    publish_quality(quality)
    features = build_ticker_features(panel, FeatureConfig())
    folds = plan_folds(panel, plan)
    params = {name: dict((model_params or {}).get(name, {})) for name in models}
    units = [(uid, name) for uid in sorted(features) for name in models]
    futures = run_unit.map(
        series=[features[uid] for uid, _ in units],
        uid=[uid for uid, _ in units],
        model=[name for _, name in units],
        params=[params[name] for _, name in units],
        folds=[folds[uid] for uid, _ in units],
        refit_every=unmapped(refit_every),
        horizon=unmapped(horizon),
    )
    results = collect_units(futures, units, features, folds)
    meta = run_meta(spec=spec, plan=plan, refit_every=refit_every, models=params, panel=panel, started=started)
    result, evaluation = gather_and_score(results, meta)
    report = write_outputs(result, evaluation, quality, str(out))
    verdict = publish_artifacts(result, evaluation, report, quality.to_frame())
    summary = {"out_dir": str(out), "report": str(report), "verdict": verdict, "failures": len(result.failures)}
    log.info("report: %s", report)
    if len(result.failures):
        failed = result.failures.groupby([ID, MODEL]).size()
        what = ", ".join(f"{m} on {u} ({n} folds)" for (u, m), n in failed.items())
        return Failed(message=f"{len(failed)} of {len(units)} units had failures: {what}; see {report}", data=summary)
    return Completed(message=f"{len(units)} units backtested; report at {report}", data=summary)
