"""MCS and SPA over the fold × model loss matrix: equal to arch's own, honest about gaps and edge cases."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import MCS, SPA

from backtest.metrics import metrics_table
from backtest.multiple_testing import (
    DEFAULT_REPS,
    DROPPED_MODELS,
    MIN_FOLDS,
    SpaResult,
    block_length,
    loss_matrix,
    model_confidence_set,
    multiple_testing_tables,
    spa_table,
    spa_test,
)
from common.errors import ConfigError
from common.schema import (
    BEST_MODEL,
    CUTOFF,
    DS,
    FOLD,
    ID,
    IN_MCS,
    LAST_Y,
    MASE,
    MCS_COLUMNS,
    MCS_P_VALUE,
    METRIC,
    MODEL,
    N_MODELS,
    NAIVE,
    SCALE_MAE,
    SCALE_MSE,
    SPA_COLUMNS,
    SPA_P_CONSISTENT,
    TRAIN_END,
    TRAIN_START,
    VALUE,
    YHAT,
    H,
    Y,
)

REPS, BLOCK, SEED = 500, 3, 7


def _losses(n_folds: int = 20, models: dict[str, float] | None = None, *, seed: int = 0) -> pd.DataFrame:
    """Fold losses with a common fold effect (hard folds are hard for everyone); `models` maps name -> mean level."""
    models = models or {NAIVE: 1.0, "ets": 1.0, "arima": 1.0, "lstm": 1.0, "prophet": 1.0}
    rng = np.random.default_rng(seed)
    common = rng.gamma(4.0, 0.25, n_folds)
    columns = {m: level * common * rng.lognormal(0.0, 0.15, n_folds) for m, level in models.items()}
    return pd.DataFrame(columns, index=pd.Index(range(n_folds), name=FOLD))


def _mcs_table(losses: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return model_confidence_set(losses, size=0.10, reps=REPS, block_size=BLOCK, seed=SEED, **kwargs)


def _backtest(errors: dict[str, float], *, n_series: int = 2, n_folds: int = 4, horizon: int = 2, seed: int = 0):
    """(forecasts, fold_info) with MASE scale 1, so a row's MASE is |error|; `errors` maps model -> error size."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=10 + n_folds * horizon + horizon)
    rows, info = [], []
    for s in range(n_series):
        for f in range(n_folds):
            cutoff = dates[9 + f * horizon]
            info.append({ID: f"S{s}", FOLD: f, CUTOFF: cutoff, TRAIN_START: dates[0], TRAIN_END: cutoff})
            info[-1].update({LAST_Y: 100.0, SCALE_MAE: 1.0, SCALE_MSE: 1.0})
            for h in range(1, horizon + 1):
                y = 100.0 + rng.normal()
                for model, size in errors.items():
                    e = size * rng.normal()
                    rows.append({ID: f"S{s}", MODEL: model, FOLD: f, CUTOFF: cutoff, DS: dates[9 + f * horizon + h]})
                    rows[-1].update({H: h, Y: y, YHAT: y - e})
    return pd.DataFrame(rows), pd.DataFrame(info)


# ---- the tests are arch's, on the same matrix --------------------------------------------------------------
def test_mcs_equals_arch_called_directly():
    losses = _losses(models={NAIVE: 1.0, "ets": 0.97, "arima": 1.02, "lstm": 1.15, "prophet": 1.4})
    table = _mcs_table(losses)
    assert list(table.columns) == list(MCS_COLUMNS) and list(table[MODEL]) == list(losses.columns)

    mcs = MCS(losses, size=0.10, reps=REPS, block_size=BLOCK, method="R", bootstrap="stationary", seed=SEED)
    mcs.compute()
    assert sorted(table.loc[table[IN_MCS], MODEL]) == sorted(mcs.included)
    expected = mcs.pvalues["Pvalue"]
    assert table.set_index(MODEL)[MCS_P_VALUE].to_dict() == {m: expected[m] for m in losses.columns}
    assert 0 < len(mcs.included) < len(losses.columns)  # a matrix that actually tells some models apart


def test_spa_equals_arch_called_directly():
    losses = _losses(models={NAIVE: 1.0, "ets": 0.93, "arima": 1.02, "lstm": 1.1})
    result = spa_test(losses, benchmark=NAIVE, reps=REPS, block_size=BLOCK, seed=SEED)

    spa = SPA(losses[NAIVE], losses.drop(columns=NAIVE), block_size=BLOCK, reps=REPS, bootstrap="stationary", seed=SEED)
    spa.compute()
    p = spa.pvalues
    assert (result.p_lower, result.p_consistent, result.p_upper) == (p["lower"], p["consistent"], p["upper"])
    assert result.n_models == 3 and result.n_folds == 20 and result.tested
    assert result.best_model == losses.drop(columns=NAIVE).mean().idxmin()
    assert (result.block_size, result.reps) == (BLOCK, REPS)


# ---- what the tests say on clear-cut matrices --------------------------------------------------------------------
def test_one_clearly_better_model_beats_naive_and_is_alone_in_the_set():
    losses = _losses(models={NAIVE: 1.0, "ets": 1.0, "arima": 1.02, "good": 0.6, "lstm": 1.05})
    result = spa_test(losses, reps=REPS, block_size=BLOCK, seed=SEED)
    assert result.p_consistent < 0.05 and result.best_model == "good"
    table = _mcs_table(losses)
    assert list(table.loc[table[IN_MCS], MODEL]) == ["good"]


def test_equal_models_of_pure_noise_beat_nothing_and_stay_in_the_set():
    names = [NAIVE, *(f"m{k}" for k in range(7))]
    losses = _losses(models=dict.fromkeys(names, 1.0), seed=3)
    result = spa_test(losses, reps=REPS, block_size=BLOCK, seed=SEED)
    assert result.p_consistent > 0.1 and result.n_models == 7  # 0.20 with this seed: nowhere near significant
    table = _mcs_table(losses)
    assert table[IN_MCS].sum() >= 6


# ---- the loss matrix: common targets only ---------------------------------------------------------------------
def test_loss_matrix_is_the_fold_mean_of_the_mase_rows():
    forecasts, fold_info = _backtest({NAIVE: 1.0, "ets": 0.8, "arima": 1.2})
    matrix = loss_matrix(forecasts, fold_info)
    assert list(matrix.index) == [0, 1, 2, 3] and list(matrix.columns) == ["arima", "ets", NAIVE]
    table = metrics_table(forecasts, fold_info)
    mase = table[table[METRIC] == MASE]
    expected = mase.pivot_table(index=FOLD, columns=MODEL, values=VALUE, aggfunc="mean")
    pd.testing.assert_frame_equal(matrix, expected, check_names=False)
    assert matrix.attrs[DROPPED_MODELS] == []


def test_a_model_with_a_missing_fold_does_not_gain_from_the_gap():
    forecasts, fold_info = _backtest({NAIVE: 1.0, "ets": 1.0, "gappy": 1.0}, n_folds=6)
    # Fold 2 of S0 was a disaster for everyone, and gappy failed on it: it must be judged without it, as must the rest.
    hard = (forecasts[ID] == "S0") & (forecasts[FOLD] == 2)
    forecasts.loc[hard, YHAT] = forecasts.loc[hard, Y] - 50.0
    forecasts = forecasts[~(hard & (forecasts[MODEL] == "gappy"))]
    matrix = loss_matrix(forecasts, fold_info)
    assert list(matrix.index) == list(range(6))  # the fold stays, on the S1 targets every model forecast
    assert matrix.loc[2].max() < 10  # the disaster is out for every model, not only for gappy
    s1 = forecasts[(forecasts[ID] == "S1") & (forecasts[FOLD] == 2) & (forecasts[MODEL] == NAIVE)]
    assert matrix.at[2, NAIVE] == pytest.approx(float((s1[Y] - s1[YHAT]).abs().mean()))


def test_models_without_common_targets_are_dropped_and_named(caplog):
    forecasts, fold_info = _backtest({NAIVE: 1.0, "ets": 1.0, "dead": 1.0, "early": 1.0})
    forecasts.loc[forecasts[MODEL] == "dead", YHAT] = np.nan  # failed everywhere
    forecasts = forecasts[(forecasts[MODEL] != "early") | (forecasts[FOLD] == 0)]  # one fold only: it stays
    forecasts = forecasts[~((forecasts[MODEL] == NAIVE) & (forecasts[FOLD] == 0))]  # ... but shares nothing
    matrix = loss_matrix(forecasts, fold_info)
    assert list(matrix.columns) == ["ets", NAIVE] and list(matrix.index) == [1, 2, 3]
    assert matrix.attrs[DROPPED_MODELS] == ["dead", "early"]
    assert "dead, early" in caplog.text


def test_loss_must_be_a_lower_is_better_row_metric():
    forecasts, fold_info = _backtest({NAIVE: 1.0, "ets": 1.0})
    with pytest.raises(ConfigError, match="loss must be one of"):
        loss_matrix(forecasts, fold_info, loss="directional_accuracy")


# ---- degenerate inputs: "not tested", never an exception from arch ---------------------------------------------
def test_one_model_or_too_few_folds_is_not_tested():
    one = _mcs_table(_losses()[[NAIVE]])
    assert one[IN_MCS].all() and one[MCS_P_VALUE].isna().all()
    short = _losses().iloc[: MIN_FOLDS - 1]
    table = _mcs_table(short)
    assert table[IN_MCS].all() and table[MCS_P_VALUE].isna().all()
    result = spa_test(short, reps=REPS)
    assert not result.tested and np.isnan(result.p_lower) and result.n_models == 4
    assert not spa_test(_losses()[[NAIVE]], reps=REPS).tested


def test_without_the_benchmark_spa_is_not_tested():
    result = spa_test(_losses().drop(columns=NAIVE), reps=REPS)
    assert not result.tested and result.benchmark == NAIVE and result.n_models == 4


def test_identical_models_share_their_place_in_the_set():
    losses = _losses(models={NAIVE: 1.0, "ets": 0.9, "arima": 1.3, "lstm": 1.0})
    losses["ets_copy"] = losses["ets"]
    losses["naive_copy"] = losses[NAIVE]
    table = _mcs_table(losses).set_index(MODEL)  # arch alone raises IndexError on this matrix
    assert table.at["ets_copy", MCS_P_VALUE] == table.at["ets", MCS_P_VALUE]
    assert table.at["naive_copy", IN_MCS] == table.at[NAIVE, IN_MCS]
    result = spa_test(losses, reps=REPS, block_size=BLOCK, seed=SEED)
    assert result.tested and result.n_models == 5


def test_constant_and_identical_loss_columns_do_not_crash():
    n = 20
    same = pd.DataFrame({NAIVE: np.ones(n), "copy": np.ones(n)})
    assert _mcs_table(same)[IN_MCS].all()
    assert spa_test(same, reps=REPS).p_consistent == 1.0  # the copy of naive cannot beat it (arch alone says p = 0)
    worse = pd.DataFrame({NAIVE: np.ones(n), "worse": np.full(n, 2.0)})
    assert spa_test(worse, reps=REPS).p_consistent == 1.0
    better = pd.DataFrame({NAIVE: np.ones(n), "better": np.full(n, 0.5)})
    assert spa_test(better, reps=REPS).p_consistent == 0.0  # better in every fold by the same margin
    constants = pd.DataFrame({NAIVE: np.ones(n), "b": np.full(n, 2.0), "c": np.full(n, 0.5)})
    table = _mcs_table(constants)  # arch fails here: not tested, everyone kept, no exception
    assert list(table.columns) == list(MCS_COLUMNS) and len(table) == 3


def test_folds_with_a_missing_loss_are_dropped():
    losses = _losses()
    losses.iloc[3, 1] = np.nan
    assert spa_test(losses, reps=REPS, block_size=BLOCK, seed=SEED).n_folds == 19


def test_bad_settings_say_what_is_wrong():
    with pytest.raises(ConfigError, match="size must be in"):
        model_confidence_set(_losses(), size=10)
    with pytest.raises(ConfigError, match="reps must be a positive integer"):
        spa_test(_losses(), reps=0)
    with pytest.raises(ConfigError, match="block_size"):
        spa_test(_losses(), block_size=0)


# ---- block length, defaults, tables ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "horizon", "step", "expected"),
    [(20, 5, 5, 3), (20, 1, 1, 3), (20, 5, 1, 5), (60, 1, 1, 4), (20, 30, 1, 10), (5, 1, 1, 2), (1, 1, 1, 1)],
)
def test_block_length_rule(n, horizon, step, expected):
    assert block_length(n, horizon=horizon, step=step) == expected


def test_default_reps_keep_a_twenty_by_twelve_matrix_fast():
    losses = _losses(models={NAIVE: 1.0, **{f"m{k}": 1.0 + k / 50 for k in range(11)}})
    spa_test(losses.iloc[:, :3], reps=10)  # warm arch's import
    start = time.perf_counter()
    model_confidence_set(losses, block_size=3)
    spa_test(losses, block_size=3)
    assert time.perf_counter() - start < 1.5, f"{DEFAULT_REPS} reps"


def test_spa_table_and_the_whole_pipeline():
    table = spa_table(
        [SpaResult(NAIVE, 2, 20, "ets", 0.1, 0.2, 0.3, 3, 100), SpaResult(NAIVE, 0, 3, None, *[np.nan] * 3, 1, 100)]
    )
    assert list(table.columns) == list(SPA_COLUMNS) and len(table) == 2
    forecasts, fold_info = _backtest({NAIVE: 1.0, "ets": 1.0, "arima": 1.1}, n_folds=8, horizon=3)
    mcs, spa = multiple_testing_tables(forecasts, fold_info, step=3, reps=200)
    assert list(mcs.columns) == list(MCS_COLUMNS) and set(mcs[MODEL]) == {NAIVE, "ets", "arima"}
    assert spa.at[0, N_MODELS] == 2 and spa.at[0, BEST_MODEL] in {"ets", "arima"}
    assert 0.0 <= spa.at[0, SPA_P_CONSISTENT] <= 1.0
