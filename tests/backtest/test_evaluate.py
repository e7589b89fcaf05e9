"""evaluate(): the leaderboard, the MCS and SPA tables, and the interval tests come from one call, agree with
each other and with arch called directly on the same loss matrix, and are saved with the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import panel

from backtest.engine import run_backtest
from backtest.evaluate import evaluate
from backtest.folds import FoldPlan
from backtest.multiple_testing import DEFAULT_REPS, DEFAULT_SEED, block_length, loss_matrix
from common.schema import IN_MCS, INTERVAL_LEVEL, MASE, MCS_P_VALUE, MODEL, SPA_P_CONSISTENT

PLAN = FoldPlan(horizon=5, step=5, windows=12)


@pytest.fixture(scope="module")
def evaluation():
    data = panel(3, 200, seed=11)
    result = run_backtest(data, models=["naive", "drift", "ses", "ensemble"], plan=PLAN, calibration_windows=20)
    return result, evaluate(result)


def test_the_leaderboard_is_by_mase_and_its_mcs_column_is_the_mcs_table(evaluation):
    _, ev = evaluation
    board = ev.leaderboard
    assert board[MASE].is_monotonic_increasing
    members = ev.mcs.set_index(MODEL)[IN_MCS]
    assert board.set_index(MODEL)[IN_MCS].to_dict() == members.reindex(board[MODEL]).to_dict()
    for col in ("scaled_crps", "pinball", "oos_r2"):
        assert board[col].notna().all(), col
    assert board.set_index(MODEL).loc["naive", "oos_r2"] == 0.0  # no change is the zero-return forecast, exactly


def test_mcs_and_spa_are_arch_on_the_same_loss_matrix(evaluation):
    from arch.bootstrap import MCS, SPA

    result, ev = evaluation
    losses = loss_matrix(result.forecasts, result.fold_info)
    block = block_length(len(losses), horizon=PLAN.horizon, step=PLAN.step)
    spa = SPA(losses["naive"], losses.drop(columns="naive"), block_size=block, reps=DEFAULT_REPS, seed=DEFAULT_SEED)
    spa.compute()
    assert ev.spa[SPA_P_CONSISTENT].iloc[0] == pytest.approx(float(spa.pvalues["consistent"]))
    mcs = MCS(losses, size=0.10, reps=DEFAULT_REPS, block_size=block, method="R", seed=DEFAULT_SEED)
    mcs.compute()
    mine = ev.mcs.set_index(MODEL)
    assert set(mine.index[mine[IN_MCS]]) == set(mcs.included)
    np.testing.assert_allclose(mine[MCS_P_VALUE].reindex(mcs.pvalues.index), mcs.pvalues["Pvalue"])


def test_every_model_has_interval_tests_and_the_conformal_ensemble_has_bands(evaluation):
    result, ev = evaluation
    assert set(ev.interval_tests[MODEL]) == {"naive", "drift", "ses", "ensemble"}
    assert set(ev.interval_tests[INTERVAL_LEVEL]) == {80, 95}
    assert result.meta["conformal_models"] == ["ensemble"]
    ensemble = result.forecasts[result.forecasts[MODEL] == "ensemble"]
    assert ensemble["yhat_lo_95"].notna().all() and result.meta["conformal_rows_without_95_band"] == {}


def test_a_series_too_short_for_every_calibration_origin_counts_its_bandless_rows():
    data = panel(1, 100, seed=2)  # 40 sessions before the first cutoff: few calibration origins fit
    result = run_backtest(data, models=["naive", "ensemble"], plan=PLAN, intervals="conformal")
    counts = result.meta["conformal_rows_without_95_band"]
    rows = result.forecasts.groupby(MODEL)["yhat_lo_95"].apply(lambda s: int(s.isna().sum()))
    assert counts == {m: n for m, n in rows.items() if n} and sum(counts.values()) > 0


def test_the_tables_are_saved_with_the_run(evaluation, tmp_path):
    _, ev = evaluation
    ev.save(tmp_path)
    for name in ("mcs", "spa", "interval_tests", "leaderboard"):
        assert (tmp_path / f"{name}.csv").exists(), name
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert {"scaled_crps", "pinball", "oos_r2", "in_mcs"} <= set(board.columns)
