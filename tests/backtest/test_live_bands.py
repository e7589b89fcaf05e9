"""Live conformal bands: the backtest's split-conformal quantile over the latest origins whose outcomes are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import panel

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from backtest.live_bands import live_conformal_bands
from common.schema import HI_80, HI_95, LO_95, MODEL, YHAT, H, Y
from models import make_model
from models.base import fit_model


def test_live_bands_are_the_conformal_quantile_of_the_latest_known_origins():
    series = panel(1, 220, seed=8)
    horizon = 4
    forecast = fit_model(make_model("ensemble"), series, horizon).predict(horizon)
    banded = live_conformal_bands(series, forecast, model="ensemble", params={}, horizon=horizon)
    # The same origins backtested: 20 folds, `horizon` apart, the last ending at the last session.
    plan = FoldPlan(horizon=horizon, step=horizon, windows=20, min_train_size=2)
    calib = run_backtest(series, models=["ensemble"], plan=plan).forecasts
    calib = calib[calib[MODEL] == "ensemble"]
    for h, rows in calib.groupby(H):
        scores = np.sort(np.abs(np.log(rows[Y]) - np.log(rows[YHAT])).to_numpy())
        q95, q80 = scores[-1], scores[int(np.ceil(21 * 0.8)) - 1]  # ranks 20 and 17 of 20
        at = banded[banded[H] == h].iloc[0]
        assert at[HI_95] == pytest.approx(at[YHAT] * np.exp(q95))
        assert at[LO_95] == pytest.approx(at[YHAT] * np.exp(-q95))
        assert at[HI_80] == pytest.approx(at[YHAT] * np.exp(q80))
    pd.testing.assert_series_equal(banded[YHAT], forecast[YHAT])


def test_a_series_too_short_for_a_calibration_origin_keeps_its_forecast():
    series = panel(1, 5, seed=1)  # a calibration origin needs a training row and a known horizon: 1 + 5 sessions
    forecast = fit_model(make_model("naive"), series, 5).predict(5)
    out = live_conformal_bands(series, forecast, model="naive", params={}, horizon=5)
    pd.testing.assert_frame_equal(out, forecast)
