"""Synthetic live records and backtest runs in a ResultStore, for the live-monitor tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ingest.price_store import PriceStore
from store.results_store import ResultStore

DAYS = pd.bdate_range("2023-01-02", periods=60)
BACKTEST_COV = 0.95


def seed_live(path: Path, uid: str, models: dict[str, tuple[float, float, float]], *, n_as_of: int) -> None:
    """`n_as_of` daily forecast runs of steps h = 1, 2 for each model, scored against a stored close of 100 + i.

    models maps a name to (error at h=1, error at h=2, interval half-width): yhat = actual + error, the MASE
    scale is 1 (so the scaled error is the error) and a row is covered when |error| <= half-width. Prices end
    at the session after the last as_of, so the latest as_of has only its h = 1 row scored.
    """
    close = 100.0 + np.arange(len(DAYS))
    bars = pd.DataFrame(
        {"unique_id": uid, "ds": DAYS, "open": close, "high": close, "low": close, "close": close, "adj_close": close,
         "volume": 1.0}
    )  # fmt: skip
    PriceStore(path).upsert(bars.iloc[: n_as_of + 1], "sample")
    store = ResultStore(path)
    for t in range(n_as_of):
        rows = []
        for model, (e1, e2, half) in models.items():
            for h, err in ((1, e1), (2, e2)):
                yhat = close[t + h] + err
                rows.append(
                    {"as_of": DAYS[t], "source": "sample", "target": "close", "unique_id": uid, "model": model,
                     "ds": DAYS[t + h], "h": h, "yhat": yhat, "yhat_lo_80": np.nan, "yhat_hi_80": np.nan,
                     "yhat_lo_95": yhat - half, "yhat_hi_95": yhat + half, "last_y": close[t], "scale_mae": 1.0}
                )  # fmt: skip
        store.write_live(pd.DataFrame(rows), flow_run_id=f"live-{uid}-{t:03d}")
    store.score_live()


def seed_backtest(path: Path, run: str, created: str, pairs: dict[tuple[str, str], tuple[float, float]], **extra):
    """A stored backtest run whose pairs have MASE (h=1, h=2) as given and 95% coverage BACKTEST_COV, 2 folds.

    `extra` metrics (e.g. brier=0.2) replace mase/coverage_95 entirely: a run of another task type.
    """
    metrics, forecasts = [], []
    for (uid, model), mase in pairs.items():
        forecasts.append({"unique_id": uid, "model": model, "fold": 0, "cutoff": DAYS[0], "ds": DAYS[1], "h": 1,
                          "y": 1.0, "yhat": 1.0, "yhat_lo_80": np.nan, "yhat_hi_80": np.nan, "yhat_lo_95": np.nan,
                          "yhat_hi_95": np.nan})  # fmt: skip
        values = extra or {"mase": mase, "coverage_95": (BACKTEST_COV, BACKTEST_COV)}
        for metric, by_h in values.items():
            by_h = by_h if isinstance(by_h, tuple) else (by_h, by_h)
            for fold in (0, 1):
                for h in (1, 2):
                    metrics.append({"unique_id": uid, "model": model, "fold": fold, "h": h, "metric": metric,
                                    "value": by_h[h - 1]})  # fmt: skip
    ResultStore(path).write_backtest(
        flow_run_id=run,
        forecasts=pd.DataFrame(forecasts),
        metrics=pd.DataFrame(metrics),
        leaderboard=pd.DataFrame({"model": sorted({m for _, m in pairs})}),
        meta={"created_at": created},
    )
