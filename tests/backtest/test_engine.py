"""Engine: output contract, refit policies, failure recording, leakage guard, date alignment, local runs, I/O.

Units run through backtest.units (plan_price_units + run_unit), exactly as the Prefect flow runs them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import LastValue, factory, panel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine import LeakageError, fold_info_table, run_backtest, training_frame
from backtest.folds import Fold, FoldPlan, make_folds
from backtest.results import BacktestResult, concat
from backtest.units import PriceUnit, failed_unit, plan_price_units, run_unit
from common.errors import ConfigError, DataError
from common.schema import BACKTEST_COLUMNS, CUTOFF, DS, FOLD, ID, INTERVAL_COLUMNS, MODEL, TIMING_COLUMNS, YHAT, H, Y

PLAN = FoldPlan(horizon=3, step=2, windows=7)


@pytest.fixture()
def series() -> pd.DataFrame:
    return panel(1, 40, seed=3)


@pytest.fixture(autouse=True)
def _reset_counters():
    LastValue.reset()


def _unit(series, *, refit_every: int | None, plan: FoldPlan = PLAN, data=None, **params):
    """One "last" unit on S0, planned and run as production does (plan_price_units + run_unit)."""
    data = series if data is None else data
    folds = {"S0": make_folds(data[DS], plan, unique_id="S0")}
    models = {"last": params}
    (unit,) = plan_price_units(["S0"], models=models, folds=folds, horizon=plan.horizon, refit_every=refit_every)
    return run_unit(unit, data, factory=factory)


def test_forecast_table_contract(series):
    result = run_backtest(series, models=["last", "trend"], plan=PLAN, refit_every=1, factory=factory)
    f = result.forecasts
    assert tuple(f.columns) == BACKTEST_COLUMNS
    assert tuple(result.timings.columns) == TIMING_COLUMNS
    assert len(f) == 2 * 7 * 3
    assert f.equals(f.sort_values([ID, MODEL, FOLD, H]).reset_index(drop=True))
    assert f.loc[f[MODEL] == "last", list(INTERVAL_COLUMNS)].isna().all().all()
    assert f.loc[f[MODEL] == "trend", list(INTERVAL_COLUMNS)].notna().all().all()
    # Same folds for every model: identical (fold, cutoff, ds, y) per model.
    keys = [FOLD, CUTOFF, DS, H, Y]
    by_model = [g[keys].reset_index(drop=True) for _, g in f.groupby(MODEL)]
    pd.testing.assert_frame_equal(by_model[0], by_model[1])
    assert result.meta["plan_fingerprint"] == PLAN.fingerprint() and result.meta["date_mismatches"] == 0


@pytest.mark.parametrize("refit_every", [0, 1, 3])
def test_random_walk_forecasts_use_data_up_to_the_cutoff_only(series, refit_every):
    """Under every refit policy the last-value model's forecast is exactly y at the cutoff: no look-ahead."""
    f = _unit(series, refit_every=refit_every).forecasts
    y_at = series.set_index(DS)[Y]
    np.testing.assert_array_equal(f[YHAT].to_numpy(), y_at.reindex(f[CUTOFF]).to_numpy())
    np.testing.assert_array_equal(f[Y].to_numpy(), y_at.reindex(f[DS]).to_numpy())


@pytest.mark.parametrize(
    ("refit_every", "fits", "origin_calls", "refit_folds"),
    [(1, 7, [1] * 7, list(range(7))), (3, 3, [3, 3, 1], [0, 3, 6]), (0, 1, [7], [0]), (5, 2, [5, 2], [0, 5])],
)
def test_refit_policy_controls_fit_and_batched_calls(series, refit_every, fits, origin_calls, refit_folds):
    result = _unit(series, refit_every=refit_every)
    assert len(LastValue.fits) == fits
    assert LastValue.origin_calls == origin_calls  # one forecast_origins call per refit block
    t = result.timings
    assert t.loc[t["refit"], FOLD].tolist() == refit_folds
    assert (t.loc[~t["refit"], "fit_seconds"] == 0).all() and (t["predict_seconds"] >= 0).all()


def test_failed_fit_is_recorded_and_next_fold_refits(series):
    folds = make_folds(series[DS], PLAN)
    train_len_fold3 = len(training_frame(series, folds[3]))  # fold 3 starts the second block of 3
    result = _unit(series, refit_every=3, fail_fit_len=(train_len_fold3,))
    fail = result.failures
    assert fail[FOLD].tolist() == [3]
    assert fail["error_type"].iloc[0] == "ValueError"
    assert "last on S0" in fail["message"].iloc[0] and "boom" in fail["message"].iloc[0]
    assert sorted(result.forecasts[FOLD].unique()) == [0, 1, 2, 4, 5, 6]
    assert result.timings.loc[result.timings["refit"], FOLD].tolist() == [0, 4]


def test_failure_inside_a_batched_block_keeps_earlier_folds(series):
    """A block whose batched call fails is replayed fold by fold: only the failing fold is lost."""
    folds = make_folds(series[DS], PLAN)
    n_at_fold4 = len(training_frame(series, folds[4]))  # the model has seen this many rows when forecasting fold 4
    result = _unit(series, refit_every=0, fail_predict_len=(n_at_fold4,))
    assert result.failures[FOLD].tolist() == [4]
    assert result.failures["error_type"].iloc[0] == "ModelFitError"
    assert sorted(result.forecasts[FOLD].unique()) == [0, 1, 2, 3, 5, 6]
    assert result.timings.loc[result.timings["refit"], FOLD].tolist() == [0, 5]


def test_leakage_guard_rejects_training_past_the_cutoff(series):
    ds = pd.DatetimeIndex(series[DS])
    bad = Fold(fold=0, cutoff=ds[20], train_start=ds[0], train_end=ds[22], test_ds=(ds[21], ds[22]))
    with pytest.raises(LeakageError):
        training_frame(series, bad)
    unit = PriceUnit(uid="S0", model="last", params={}, folds=(bad,), refit_every=1, horizon=2)
    with pytest.raises(LeakageError):  # never swallowed as a model failure
        run_unit(unit, series, factory=factory)


def test_gap_scores_the_last_horizon_steps_with_h_from_one(series):
    plan = FoldPlan(horizon=2, step=1, windows=3, gap=2)
    f = _unit(series, refit_every=1, plan=plan).forecasts
    assert f[H].tolist() == [1, 2] * 3
    pos = {d: k for k, d in enumerate(series[DS])}
    assert all(pos[d] - pos[c] == h + 2 for c, d, h in zip(f[CUTOFF], f[DS], f[H], strict=True))


def test_calendar_date_mismatches_are_counted_and_data_dates_kept(series, caplog):
    holey = series.drop(index=[36]).reset_index(drop=True)  # the data skips a real session
    plan = FoldPlan(horizon=3, step=1, windows=5)
    with caplog.at_level("INFO", logger="backtest.engine"):
        result = _unit(series, refit_every=1, plan=plan, data=holey)
    assert result.date_mismatches > 0 and "differ" in caplog.text
    assert set(result.forecasts[DS]) <= set(holey[DS])


def test_fold_info_scales_come_from_each_folds_training_window(series):
    folds = make_folds(series[DS], FoldPlan(horizon=2, windows=2, window_type="sliding", train_size=10))
    info = fold_info_table(series, folds)
    y = series[Y].to_numpy()
    for row, fold in zip(info.itertuples(), folds, strict=True):
        window = y[(series[DS] >= fold.train_start) & (series[DS] <= fold.cutoff)]
        assert len(window) == 10
        assert row.last_y == window[-1]
        assert row.scale_mae == pytest.approx(np.mean(np.abs(np.diff(window))), rel=1e-12)
        assert row.scale_mse == pytest.approx(np.mean(np.diff(window) ** 2), rel=1e-12)


def test_local_run_is_the_planned_units_run_one_by_one():
    """run_backtest is plan_price_units + run_unit per unit: the same tables as running the flow's units by hand."""
    data = panel(3, 50, seed=11)
    calls = []
    models = {"last": {}, "trend": {}}
    local = run_backtest(
        data, models=models, plan=PLAN, refit_every=2, factory=factory, progress=lambda *a: calls.append(a)
    )
    folds = {uid: make_folds(g[DS], PLAN, unique_id=uid) for uid, g in data.groupby(ID)}
    units = plan_price_units(sorted(folds, reverse=True), models=models, folds=folds, horizon=3, refit_every=2)
    assert [(u.uid, u.model) for u in units] == [(f"S{k}", m) for k in range(3) for m in models]  # deterministic
    assert {u.refit_every for u in units} == {2}
    frames = {uid: g.reset_index(drop=True) for uid, g in data.groupby(ID)}
    by_hand = concat([run_unit(u, frames[u.uid], factory=factory) for u in units], meta={})
    pd.testing.assert_frame_equal(local.forecasts, by_hand.forecasts)
    pd.testing.assert_frame_equal(local.failures, by_hand.failures)
    pd.testing.assert_frame_equal(local.fold_info, by_hand.fold_info)
    cols = [ID, MODEL, FOLD, "refit"]
    pd.testing.assert_frame_equal(local.timings[cols], by_hand.timings[cols])
    assert local.meta["refit_every"] == {"last": 2, "trend": 2}
    assert len(calls) == 6 and {c[1] for c in calls} == {6} and calls[-1][0] == 6


def test_a_unit_that_crashed_records_every_fold_as_failed(series):
    folds = make_folds(series[DS], PLAN, unique_id="S0")
    unit = PriceUnit(uid="S0", model="last", params={}, folds=tuple(folds), refit_every=1, horizon=3)
    crashed = failed_unit(unit, series, TimeoutError("unit timed out; raise unit_timeout_seconds"))
    assert crashed.failures[FOLD].tolist() == list(range(7)) and crashed.forecasts.empty
    assert tuple(crashed.forecasts.columns) == BACKTEST_COLUMNS and tuple(crashed.timings.columns) == TIMING_COLUMNS
    assert (crashed.failures["error_type"] == "TimeoutError").all()
    assert crashed.failures["message"].str.contains("last on S0: TimeoutError: unit timed out").all()
    pd.testing.assert_frame_equal(crashed.fold_info, fold_info_table(series, folds))
    with pytest.raises(LeakageError):  # a leak is never recorded, not even for a crashed unit
        failed_unit(unit, series, LeakageError("leak"))


def test_units_carry_a_valid_resolved_refit_policy(series):
    folds = {"S0": make_folds(series[DS], PLAN, unique_id="S0")}
    (unit,) = plan_price_units(["S0"], models={"naive": {}}, folds=folds, horizon=3, refit_every=None)
    from models import model_class

    assert unit.refit_every == model_class("naive").default_refit_every
    with pytest.raises(ConfigError, match="refit_every"):
        PriceUnit(uid="S0", model="last", params={}, folds=tuple(folds["S0"]), refit_every=-1, horizon=3)
    with pytest.raises(ConfigError, match="no fold plan"):
        plan_price_units(["S1"], models={"naive": {}}, folds=folds, horizon=3, refit_every=1)
    with pytest.raises(DataError, match="was given the series"):
        run_unit(unit, panel(1, 40, seed=3).assign(unique_id="S9"))


def test_bad_configuration_fails_before_any_work(series):
    with pytest.raises(ConfigError, match="unknown model"):
        run_backtest(series, models=["naiv"], plan=PLAN)
    with pytest.raises(ConfigError, match="refit_every"):
        run_backtest(series, models=["last"], plan=PLAN, refit_every=-1, factory=factory)
    with pytest.raises(ConfigError, match="more than once"):
        run_backtest(series, models=["last", "last"], plan=PLAN, factory=factory)
    with pytest.raises(DataError, match="too short"):
        run_backtest(series.iloc[:10], models=["last"], plan=PLAN, factory=factory)


def test_save_load_round_trip(tmp_path):
    result = run_backtest(panel(2, 40), models=["last", "trend"], plan=PLAN, factory=factory)
    out = result.save(tmp_path / "run")
    for name in ("forecasts", "timings", "failures", "fold_info"):
        assert (out / f"{name}.parquet").exists() and (out / f"{name}.csv").exists()
    back = BacktestResult.load(out)
    for name in ("forecasts", "timings", "failures", "fold_info"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(result, name))
    assert back.meta["plan_fingerprint"] == PLAN.fingerprint()
    result.save(out)  # overwriting an existing result works and keeps unrelated files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_save_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    result = run_backtest(panel(1, 40), models=["last"], plan=PLAN, factory=factory)
    existing = result.save(tmp_path / "old")
    before = {p.name: p.stat().st_mtime_ns for p in existing.iterdir()}
    real = pd.DataFrame.to_csv

    def crash_on_fold_info(self, path, *args, **kwargs):
        if str(path).endswith("fold_info.csv"):
            raise OSError("disk full")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_on_fold_info)
    with pytest.raises(OSError, match="disk full"):
        result.save(tmp_path / "new")
    with pytest.raises(OSError, match="disk full"):
        result.save(existing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no partial dir, no temp dir
    assert {p.name: p.stat().st_mtime_ns for p in existing.iterdir()} == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    horizon=st.integers(1, 4),
    step=st.integers(1, 4),
    windows=st.integers(1, 6),
    gap=st.integers(0, 2),
    refit_every=st.integers(0, 4),
    sliding=st.booleans(),
)
def test_engine_never_looks_ahead(series, horizon, step, windows, gap, refit_every, sliding):
    """Property: for any plan and refit policy, each forecast only knew data up to its own cutoff."""
    plan = FoldPlan(
        horizon=horizon,
        step=step,
        windows=windows,
        gap=gap,
        window_type="sliding" if sliding else "expanding",
        train_size=8 if sliding else None,
    )
    f = _unit(series, refit_every=refit_every, plan=plan).forecasts
    y_at = series.set_index(DS)[Y]
    assert (f[CUTOFF] < f[DS]).all()
    np.testing.assert_array_equal(f[YHAT].to_numpy(), y_at.reindex(f[CUTOFF]).to_numpy())
