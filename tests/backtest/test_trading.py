"""Trading evaluation: positions, costs, returns, drawdown and Sharpe on a hand-checked example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.trading import equity_curves, max_drawdown, trading_table
from common.schema import CUTOFF, DS, EQUITY_COLUMNS, FOLD, ID, MODEL, TRADING_COLUMNS, YHAT, H, Y

# Four origins; last_y is 100 each time so returns are easy: +2%, -1%, +3%, -2%.
LAST_Y = [100.0, 100.0, 100.0, 100.0]
TRUTH = [102.0, 99.0, 103.0, 98.0]
FORECAST = [101.0, 101.0, 99.0, 99.0]  # directions: up, up, down, down


@pytest.fixture()
def tables():
    cutoffs = pd.bdate_range("2024-01-01", periods=4)
    forecasts = pd.DataFrame(
        {
            ID: "A",
            MODEL: "m",
            FOLD: range(4),
            CUTOFF: cutoffs,
            DS: cutoffs + pd.offsets.BDay(1),
            H: 1,
            Y: TRUTH,
            YHAT: FORECAST,
        }
    )
    h2 = forecasts.assign(**{H: 2, Y: 0.0})  # other steps are ignored
    info = pd.DataFrame({ID: "A", FOLD: range(4), "last_y": LAST_Y})
    return pd.concat([forecasts, h2], ignore_index=True), info


def test_long_short_and_long_flat_by_hand(tables):
    forecasts, info = tables
    table = trading_table(forecasts, info, cost_bps=10.0)
    assert tuple(table.columns) == TRADING_COLUMNS
    table = table.set_index("rule")
    r = np.array([0.02, -0.01, 0.03, -0.02])
    c = 10 / 1e4
    ls = np.array([1, 1, -1, -1]) * r - c * np.array([1, 0, 2, 0])
    lf = np.array([1, 1, 0, 0]) * r - c * np.array([1, 0, 1, 0])
    assert table.loc["long_short", "cum_return"] == pytest.approx(np.prod(1 + ls) - 1)
    assert table.loc["long_flat", "cum_return"] == pytest.approx(np.prod(1 + lf) - 1)
    assert table.loc["long_short", "buy_hold_return"] == pytest.approx(np.prod(1 + r) - 1)
    assert table.loc["long_short", "hit_rate"] == pytest.approx(2 / 4)  # +2% long, -1% long, +3% short, -2% short
    assert table.loc["long_flat", "hit_rate"] == pytest.approx(1 / 2)
    assert table.loc["long_short", "turnover"] == pytest.approx(3 / 4)
    assert table.loc["long_short", "sharpe"] == pytest.approx(ls.mean() / ls.std(ddof=1) * np.sqrt(252))
    assert table.loc["long_short", "n_origins"] == 4


def test_equity_curves_are_long_and_compound(tables):
    forecasts, info = tables
    curves = equity_curves(forecasts, info, cost_bps=0.0)
    assert tuple(curves.columns) == EQUITY_COLUMNS
    assert len(curves) == 8
    flat = curves.loc[curves["rule"] == "long_flat"]
    assert flat["equity"].iloc[-1] == pytest.approx(1.02 * 0.99)
    assert flat["buy_hold"].iloc[-1] == pytest.approx(1.02 * 0.99 * 1.03 * 0.98)


def test_max_drawdown():
    assert max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0
