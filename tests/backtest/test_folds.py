"""Fold plans: exact positions, the statsforecast convention, validation messages, no look-ahead (Hypothesis)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.folds import FoldPlan, make_folds, panel_folds, required_length
from common.errors import ConfigError, DataError
from common.schema import DS, ID, Y

DS20 = pd.bdate_range("2024-01-01", periods=20)


def _positions(folds, ds=DS20):
    idx = {d: k for k, d in enumerate(ds)}
    return [(idx[f.cutoff], idx[f.train_start], [idx[t] for t in f.test_ds]) for f in folds]


def test_windows_plan_ends_at_last_session_and_steps_back():
    folds = make_folds(DS20, FoldPlan(horizon=3, step=2, windows=3))
    assert [f.fold for f in folds] == [0, 1, 2]
    assert _positions(folds) == [(12, 0, [13, 14, 15]), (14, 0, [15, 16, 17]), (16, 0, [17, 18, 19])]
    assert all(f.train_end == f.cutoff for f in folds)


def test_gap_skips_sessions_between_cutoff_and_test():
    folds = make_folds(DS20, FoldPlan(horizon=2, step=1, windows=2, gap=3))
    assert _positions(folds) == [(13, 0, [17, 18]), (14, 0, [18, 19])]
    assert folds[0].gap == 3


def test_sliding_window_has_fixed_length():
    folds = make_folds(DS20, FoldPlan(horizon=2, step=3, windows=3, window_type="sliding", train_size=5))
    assert _positions(folds) == [(11, 7, [12, 13]), (14, 10, [15, 16]), (17, 13, [18, 19])]


def test_first_cutoff_takes_every_step_th_origin_from_that_date():
    # 2024-01-06 is a Saturday: the first origin is the next session, Monday 2024-01-08 (position 5).
    folds = make_folds(DS20, FoldPlan(horizon=2, step=4, first_cutoff=date(2024, 1, 6)))
    assert [c for c, _, _ in _positions(folds)] == [5, 9, 13, 17]
    assert _positions(folds)[-1][2] == [18, 19]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"horizon": 0, "windows": 1},
        {"horizon": 2, "step": 0, "windows": 1},
        {"horizon": 2, "windows": -1},
        {"horizon": 2},
        {"horizon": 2, "windows": 2, "first_cutoff": date(2024, 1, 1)},
        {"horizon": 2, "windows": 2, "window_type": "sliding"},
        {"horizon": 2, "windows": 2, "window_type": "rolling"},
        {"horizon": 2, "windows": 2, "gap": -1},
    ],
)
def test_bad_plans_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        FoldPlan(**kwargs)


def test_too_short_series_message_names_series_length_and_fix():
    plan = FoldPlan(horizon=5, step=5, windows=4, min_train_size=10)
    assert required_length(plan) == 10 + 5 + 3 * 5
    with pytest.raises(DataError, match=r"'AAPL' has 20 sessions, needs 30.*reduce the horizon or windows"):
        make_folds(DS20, plan, unique_id="AAPL")


def test_panel_folds_lists_every_short_series():
    frame = pd.concat(
        [
            pd.DataFrame({ID: "LONG", DS: DS20, Y: 1.0}),
            pd.DataFrame({ID: "SHORT1", DS: DS20[:5], Y: 1.0}),
            pd.DataFrame({ID: "SHORT2", DS: DS20[:4], Y: 1.0}),
        ]
    )
    with pytest.raises(DataError, match=r"\(2 series\).*'SHORT1' \(5 sessions\).*SHORT2.*needs 6"):
        panel_folds(frame, FoldPlan(horizon=3, windows=3))


def test_first_cutoff_after_data_raises():
    with pytest.raises(DataError, match="earlier first_cutoff"):
        make_folds(DS20, FoldPlan(horizon=2, first_cutoff=date(2024, 6, 1)))


def test_fingerprint_is_stable_and_sensitive():
    a = FoldPlan(horizon=5, step=1, windows=10)
    assert a.fingerprint() == FoldPlan(horizon=5, step=1, windows=10).fingerprint()
    assert len(a.fingerprint()) == 12
    assert a.fingerprint() != FoldPlan(horizon=5, step=2, windows=10).fingerprint()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(5, 80),
    horizon=st.integers(1, 8),
    step=st.integers(1, 6),
    windows=st.integers(1, 10),
    gap=st.integers(0, 3),
    sliding=st.booleans(),
    train_size=st.integers(1, 20),
)
def test_no_fold_trains_on_or_after_its_first_test_session(n, horizon, step, windows, gap, sliding, train_size):
    ds = pd.bdate_range("2020-01-01", periods=n)
    plan = FoldPlan(
        horizon=horizon,
        step=step,
        windows=windows,
        gap=gap,
        window_type="sliding" if sliding else "expanding",
        train_size=train_size if sliding else None,
    )
    try:
        folds = make_folds(ds, plan)
    except DataError:
        assert n < required_length(plan)
        return
    assert n >= required_length(plan) and len(folds) == windows
    assert folds[-1].test_ds[-1] == ds[-1]
    pos = {d: k for k, d in enumerate(ds)}
    for f in folds:
        c = pos[f.cutoff]
        assert f.train_start <= f.train_end == f.cutoff
        assert f.train_end < f.test_ds[0]
        assert [pos[t] for t in f.test_ds] == list(range(c + gap + 1, c + gap + 1 + horizon))
        assert pos[f.train_start] == (c - train_size + 1 if sliding else 0)
    assert [pos[b.cutoff] - pos[a.cutoff] for a, b in zip(folds, folds[1:], strict=False)] == [step] * (windows - 1)
