"""Split-conformal bands for a LIVE forecast of a model without intervals of its own (the ensemble).

The live forecast fits the model on a ticker's whole history and forecasts the next `horizon` sessions; a model
with no native intervals (models declare `supports_intervals`) would publish a bare point. This gives it the
backtest's bands (backtest.conformal): the same model is backtested on the `windows` latest origins whose whole
`horizon` is already known (origins `horizon` sessions apart, the last one ending at the last session), through
the same block loop and refit policy as a backtest unit, and the band of each step h is the split-conformal
quantile of those origins' step-h scores. Everything read is history: the live origin's own outcomes do not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from backtest.blocks import resolve_refit_every, run_blocks
from backtest.conformal import DEFAULT_WINDOW, conformal_intervals
from backtest.engine import ModelFactory, PriceTask, calibration_table, prepare_series
from backtest.folds import FoldPlan, make_folds
from common.schema import CUTOFF, DS, ID, INTERVAL_COLUMNS, MODEL, Y
from models import make_model, model_class

log = logging.getLogger(__name__)


def live_conformal_bands(
    series: pd.DataFrame,
    forecast: pd.DataFrame,
    *,
    model: str,
    params: Mapping[str, Any],
    horizon: int,
    calendar: str | None = None,
    windows: int = DEFAULT_WINDOW,
    factory: ModelFactory = make_model,
) -> pd.DataFrame:
    """`forecast` (unique_id, ds, h, yhat, ...: the model's forecast from the last session of `series`) with its
    interval columns set to split-conformal bands; unchanged, with a log line, when the series is too short for
    even one calibration origin."""
    frame = prepare_series(series)
    uid = str(frame[ID].iloc[0])
    need = int(getattr(model_class(model), "min_train_size", 1) or 1)
    fit = max(0, (len(frame) - need - horizon) // horizon + 1)  # origins whose training and outcomes both fit
    if fit < 1:
        log.info("%s on %s: too short for a calibration origin (%d sessions); no live bands", model, uid, len(frame))
        return forecast
    plan = FoldPlan(horizon=horizon, step=horizon, windows=min(windows, fit), min_train_size=need)
    folds = make_folds(pd.DatetimeIndex(frame[DS]), plan, unique_id=uid)
    task = PriceTask(frame=frame, model=model, params=params, factory=factory, calendar=calendar)
    run = run_blocks(folds, task, refit_every=resolve_refit_every(model, None), name=f"{model} on {uid} (live bands)")
    calibration = calibration_table(run, uid=uid, model=model)
    live = forecast.assign(**{MODEL: model, CUTOFF: frame[DS].iloc[-1], Y: np.nan})
    banded = conformal_intervals(live, calibration, window=windows)
    out = forecast.copy()
    for col in INTERVAL_COLUMNS:
        out[col] = banded[col].to_numpy()
    log.info("%s on %s: live bands from %d calibration origins (step %d)", model, uid, len(folds), horizon)
    return out
