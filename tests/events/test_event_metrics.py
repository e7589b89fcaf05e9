"""Event metrics agree with hand computations; undefined cases are NaN (never a crash); DM vs the base rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest.event_metrics import (
    ALL_FOLDS,
    calibration_table,
    choose_threshold,
    classification_metrics,
    leaderboard,
    metrics_table,
    overlap_lags,
    per_series_table,
    significance_table,
)
from backtest.significance import dm_differential
from common.schema import (
    BEATS_BASE_RATE,
    BRIER,
    BRIER_SKILL,
    CUTOFF,
    DS,
    EVENT_RATE,
    F1,
    FOLD,
    ID,
    LOG_LOSS,
    METRIC,
    MODEL,
    N_AUC_UNDEFINED,
    P_LESS,
    POSITIVE_RATE,
    PR_AUC,
    PRECISION,
    RECALL,
    ROC_AUC,
    THRESHOLD,
    VALUE,
    H,
    P,
    Y,
)

Y5 = np.array([0, 1, 1, 0, 1.0])
P5 = np.array([0.1, 0.8, 0.6, 0.4, 0.3])


def test_metrics_match_a_hand_computation():
    m = classification_metrics(Y5, P5, 0.5)
    assert m[BRIER] == pytest.approx((0.01 + 0.04 + 0.16 + 0.16 + 0.49) / 5)
    assert m[LOG_LOSS] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.6, 0.6, 0.3])))
    assert m[ROC_AUC] == pytest.approx(5 / 6)  # 5 of the 6 (event, non-event) pairs are ordered right
    assert m[PR_AUC] == pytest.approx((1 + 1 + 3 / 4) / 3)  # precision at each event, by descending p
    # Decisions at 0.5: [0, 1, 1, 0, 0] -> tp 2, fp 0, fn 1.
    assert (m[PRECISION], m[RECALL], m[F1]) == pytest.approx((1.0, 2 / 3, 0.8))
    assert (m[POSITIVE_RATE], m[EVENT_RATE]) == pytest.approx((0.4, 0.6))


def test_a_single_class_gives_nan_aucs_and_proper_scores_still_defined():
    m = classification_metrics(np.zeros(4), np.array([0.1, 0.2, 0.6, 0.4]), 0.5)
    assert math.isnan(m[ROC_AUC]) and math.isnan(m[PR_AUC]) and math.isnan(m[RECALL])
    assert m[PRECISION] == 0.0 and m[F1] == 0.0  # one false alarm, no event
    assert m[BRIER] == pytest.approx(np.mean([0.01, 0.04, 0.36, 0.16]))
    all_events = classification_metrics(np.ones(3), np.array([0.2, 0.5, 0.9]), 0.95)
    assert math.isnan(all_events[ROC_AUC]) and math.isnan(all_events[PRECISION])  # nothing flagged: undefined
    assert all_events[RECALL] == 0.0


def _brute_threshold(y, p):
    best, best_t = -1.0, None
    for t in sorted(set(p), reverse=True):
        d = p >= t
        tp = np.sum(d & (y == 1))
        f1 = 2 * tp / (d.sum() + y.sum())
        if f1 > best + 1e-12:
            best, best_t = f1, t
    return best_t


def test_threshold_maximises_f1_like_a_brute_force_search():
    rng = np.random.default_rng(3)
    for _ in range(30):
        y = (rng.random(40) < 0.3).astype(float)
        if y.sum() == 0:
            continue
        p = np.round(rng.random(40), 1)  # ties on purpose
        assert choose_threshold(y, p) == pytest.approx(_brute_threshold(y, p))


def test_threshold_edge_cases():
    assert choose_threshold(np.array([0, 1, 0.0]), np.full(3, 0.3)) == 0.3  # the base rate: always "event"
    assert choose_threshold(np.zeros(3), np.array([0.2, 0.4, 0.9])) == 0.5  # no event on the tail: fallback
    assert choose_threshold(np.array([1.0, 0, 1]), np.array([0.9, 0.1, 0.6])) == 0.6  # highest of the tied best


def _predictions(models: dict[str, np.ndarray], y: np.ndarray, *, series=("A",), folds: int = 1, h: int = 3):
    rows = []
    n = len(y)
    per_fold = n // folds
    ds = pd.bdate_range("2020-01-01", periods=n)
    for uid in series:
        for model, p in models.items():
            for i in range(n):
                f = i // per_fold
                rows.append((uid, model, f, ds[f * per_fold], ds[i], h, y[i], p[i], 0.5))
    return pd.DataFrame(rows, columns=[ID, MODEL, FOLD, CUTOFF, DS, H, Y, P, THRESHOLD])


def test_metrics_table_has_per_series_and_per_fold_rows_that_match_sklearn():
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.array([0, 1, 1, 0, 1, 0, 0, 1.0])
    p = np.array([0.1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.7, 0.9])
    table = metrics_table(_predictions({"m": p}, y, folds=2))
    series = table[table[FOLD] == ALL_FOLDS].set_index(METRIC)[VALUE]
    assert series[BRIER] == pytest.approx(brier_score_loss(y, p))
    fold1 = table[table[FOLD] == 1].set_index(METRIC)[VALUE]
    assert fold1[BRIER] == pytest.approx(brier_score_loss(y[4:], p[4:]))
    assert fold1[LOG_LOSS] == pytest.approx(log_loss(y[4:], p[4:]))
    assert ROC_AUC not in set(table.loc[table[FOLD] >= 0, METRIC])  # ranking metrics only over a whole series


def test_leaderboard_counts_series_whose_auc_is_undefined_and_skill_is_relative_to_the_base_rate():
    y_a = np.array([0, 1, 0, 1.0])
    y_b = np.zeros(4)
    preds = pd.concat(
        [
            _predictions({"base_rate": np.full(4, 0.5), "m": np.array([0.2, 0.7, 0.3, 0.6])}, y_a, series=("A",)),
            _predictions({"base_rate": np.full(4, 0.5), "m": np.array([0.2, 0.1, 0.3, 0.1])}, y_b, series=("B",)),
        ]
    )
    per_series = per_series_table(metrics_table(preds))
    row = per_series.set_index([ID, MODEL]).loc[("A", "m")]
    assert row[BRIER_SKILL] == pytest.approx(1 - np.mean([0.04, 0.09, 0.09, 0.16]) / 0.25)
    board = leaderboard(per_series).set_index(MODEL)
    assert board.at["m", N_AUC_UNDEFINED] == 1 and board.at["base_rate", N_AUC_UNDEFINED] == 1
    assert board.at["m", ROC_AUC] == pytest.approx(1.0)  # the mean over the series where it is defined
    assert list(board.index) == ["m", "base_rate"]  # lower Brier rank first


def test_calibration_bins_by_hand():
    y = np.array([0, 1, 1, 0, 1.0])
    p = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    cal = calibration_table(_predictions({"m": p}, y), bins=10).set_index("bin")
    assert list(cal.index) == [0, 1, 9]  # empty bins are left out; p = 1 falls in the last bin
    assert cal.loc[1, "mean_predicted"] == pytest.approx(0.135)
    assert cal.loc[1, "observed_frequency"] == 1.0 and cal.loc[1, "count"] == 2
    assert cal.loc[9, "observed_frequency"] == 0.5 and cal.loc[9, "bin_lower"] == 0.9


def test_significance_is_dm_hln_on_the_per_origin_brier_differential():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(float)
    good = np.clip(np.where(y == 1, 0.6, 0.15) + rng.normal(0, 0.05, 200), 0.01, 0.99)
    coin = np.full(200, 0.5)
    base = np.full(200, 0.3)
    preds = _predictions({"base_rate": base, "good": good, "coin": coin}, y, folds=20)
    sig = significance_table(preds, horizon=3, origins_per_fold=10, step=10).set_index(MODEL)
    d = ((good - y) ** 2 - (base - y) ** 2).reshape(20, 10).mean(axis=1)  # one mean differential per fold
    expected = dm_differential(d, h=2)  # outcomes of a fold reach 12 sessions on: the next fold overlaps
    assert overlap_lags(horizon=3, origins_per_fold=10, step=10) == 2
    assert overlap_lags(horizon=10, origins_per_fold=5, step=5) == 3
    assert sig.at["good", P_LESS] == pytest.approx(expected.p_value_less)
    assert bool(sig.at["good", BEATS_BASE_RATE]) and not bool(sig.at["coin", BEATS_BASE_RATE])


def test_significance_is_empty_without_the_base_rate_and_identical_forecasts_do_not_beat_it():
    y = np.array([0, 1, 0, 1.0])
    assert significance_table(_predictions({"m": np.full(4, 0.5)}, y), horizon=1).empty
    same = significance_table(_predictions({"base_rate": np.full(4, 0.5), "m": np.full(4, 0.5)}, y), horizon=1)
    assert not bool(same[BEATS_BASE_RATE].iloc[0])
