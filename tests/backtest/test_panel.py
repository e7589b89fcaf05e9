"""A global model's units run as ONE panel unit: one fit per refit across every series, cut at the fold's earliest
cutoff (no cross-series look-ahead), per-member results and failures, one cache entry keyed on every member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import run_backtest
from backtest.folds import FoldPlan, panel_folds
from backtest.panel import PanelUnit, is_global, panel_units, run_panel_unit
from backtest.units import batch_units, plan_price_units
from common.errors import ConfigError
from common.schema import CUTOFF, DS, FOLD, ID, MODEL, YHAT, Y
from tests.backtest.bt_helpers import PanelDrift, panel, register_panel_drift

PLAN = FoldPlan(horizon=3, step=3, windows=4)


def _ragged() -> pd.DataFrame:
    """S0 ends 10 sessions after S1 and S2: its folds' cutoffs are later than theirs."""
    frame = panel(3, 120, seed=3)
    cut = frame[DS].sort_values().unique()[-10]
    return frame[(frame[ID] == "S0") | (frame[DS] < cut)].reset_index(drop=True)


def _panel_unit(frame: pd.DataFrame, *, refit_every: int = 1, params: dict | None = None) -> PanelUnit:
    units = plan_price_units(
        sorted(frame[ID].unique()),
        models={"panel_drift": params or {}},
        folds=panel_folds(frame, PLAN),
        horizon=PLAN.horizon,
        refit_every=refit_every,
    )
    return PanelUnit(tuple(units))


def _run(frame: pd.DataFrame, **kwargs) -> dict[str, pd.DataFrame]:
    unit = _panel_unit(frame, **kwargs)
    series = {uid: g.reset_index(drop=True) for uid, g in frame.groupby(ID)}
    results = run_panel_unit(unit, series)
    return {member.uid: result for member, result in zip(unit.members, results, strict=True)}


def test_each_refit_trains_on_every_series_cut_at_the_earliest_cutoff(monkeypatch):
    register_panel_drift(monkeypatch)
    frame = _ragged()
    results = _run(frame)
    folds = panel_folds(frame, PLAN)
    assert len(PanelDrift.fitted_until) == PLAN.windows  # one fit per fold across the panel, not one per series
    for fit, k in zip(PanelDrift.fitted_until, range(PLAN.windows), strict=True):
        earliest = min(own[k].cutoff for own in folds.values())
        assert set(fit) == {"S0", "S1", "S2"}
        assert max(fit.values()) == earliest  # S0's later rows are cut at the others' cutoff
    for uid, result in results.items():
        assert result.failures.empty
        assert sorted(result.forecasts[FOLD].unique()) == list(range(PLAN.windows))
        assert result.forecasts[ID].eq(uid).all()
        # each member is forecast from its OWN cutoffs
        assert sorted(result.forecasts[CUTOFF].unique()) == [f.cutoff for f in folds[uid]]


def test_no_cross_series_look_ahead(monkeypatch):
    """Perturbing S0 after S1's fold-1 cutoff leaves S1's folds 0 and 1 unchanged; its later folds do see it."""
    register_panel_drift(monkeypatch)
    frame = _ragged()
    cutoff = panel_folds(frame, PLAN)["S1"][1].cutoff
    later = (frame[ID] == "S0") & (frame[DS] > cutoff)
    moved = frame.copy()
    moved.loc[later, Y] = moved.loc[later, Y] * np.exp(np.linspace(0, 2, int(later.sum())))
    base, changed = _run(frame)["S1"].forecasts, _run(moved)["S1"].forecasts
    early = base[FOLD] <= 1
    pd.testing.assert_frame_equal(base[early], changed[early])
    assert not np.allclose(base.loc[~early, YHAT], changed.loc[~early, YHAT])  # the perturbation was real


def test_a_series_the_model_cannot_forecast_fails_alone(monkeypatch):
    register_panel_drift(monkeypatch)
    results = _run(panel(3, 80, seed=1), params={"broken": "S1"})
    assert len(results["S1"].failures) == PLAN.windows and results["S1"].forecasts.empty
    assert "broken on purpose" in results["S1"].failures["message"].iloc[0]
    assert results["S0"].failures.empty and results["S2"].failures.empty


def test_refit_policy_is_kept_and_timings_are_shared(monkeypatch):
    register_panel_drift(monkeypatch)
    results = _run(panel(3, 80, seed=2), refit_every=2)
    assert len(PanelDrift.fitted_until) == 2  # folds 0 and 2 refit; 1 and 3 are forecast with parameters fixed
    timings = pd.concat([r.timings for r in results.values()])
    assert timings.groupby(FOLD)["refit"].all().tolist() == [True, False, True, False]
    fit_shares = timings[timings["refit"]].groupby(FOLD)["fit_seconds"].nunique()
    assert (fit_shares == 1).all()  # one fit's seconds split evenly over the members


def test_run_backtest_runs_a_global_model_once_per_refit_beside_local_models(monkeypatch):
    register_panel_drift(monkeypatch)
    frame = panel(3, 80, seed=4)
    result = run_backtest(frame, models=["naive", "panel_drift"], plan=PLAN, refit_every=1)
    assert result.failures.empty
    # One fit per fold across the panel: the scored folds and the conformal calibration origins before them (the
    # model gives no intervals of its own, so it gets conformal bands).
    calibration = result.calibration[FOLD].nunique()
    assert calibration > 0 and len(PanelDrift.fitted_until) == PLAN.windows + calibration
    assert result.forecasts.loc[result.forecasts[MODEL] == "panel_drift", "yhat_lo_95"].notna().any()
    counts = result.forecasts.groupby([MODEL, ID]).size()
    assert set(counts) == {PLAN.windows * PLAN.horizon} and len(counts) == 6
    assert result.meta["global_models"] == ["panel_drift"]  # the report says what its rows mean


def test_global_units_are_one_batch_and_one_panel(monkeypatch):
    register_panel_drift(monkeypatch)
    assert is_global("panel_drift") and not is_global("lstm") and not is_global("not_registered")
    frame = panel(5, 80)
    units = plan_price_units(
        sorted(frame[ID].unique()),
        models={"naive": {}, "panel_drift": {}},
        folds=panel_folds(frame, PLAN),
        horizon=3,
        refit_every=None,
    )
    batches = batch_units(units, batch_size=1)
    assert [len(b) for b in batches] == [1] * 5 + [5]
    grouped = panel_units(units)
    assert sum(isinstance(g, PanelUnit) for g in grouped) == 1 and len(grouped) == 6
    with pytest.raises(ConfigError, match="one model"):
        PanelUnit((units[0], units[1]))


def test_run_batch_caches_a_panel_whole_and_fails_it_whole(monkeypatch, tmp_path):
    from tasks.backtest import price_unit_key
    from tasks.batches import UnitsFailed, run_batch

    register_panel_drift(monkeypatch)
    frame = panel(3, 80, seed=5)
    unit = _panel_unit(frame)
    series = {uid: g.reset_index(drop=True) for uid, g in frame.groupby(ID)}
    calls = []

    def counted(panel_unit, frames):
        calls.append(panel_unit.uids)
        return run_panel_unit(panel_unit, frames)

    common = {"key": price_unit_key, "storage": tmp_path, "unit_timeout_seconds": None, "run": None}
    first = run_batch(list(unit.members), series, run_panel=counted, **common)
    again = run_batch(list(unit.members), series, run_panel=counted, **common)
    assert calls == [("S0", "S1", "S2")]  # the second run read the one cache entry
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a.forecasts, b.forecasts)

    changed = {**series, "S2": series["S2"].assign(**{Y: series["S2"][Y] * 1.01})}
    run_batch(list(unit.members), changed, run_panel=counted, **common)
    assert len(calls) == 2  # one member's data changed: the panel reruns

    def boom(panel_unit, frames):
        raise RuntimeError("worker lost")

    with pytest.raises(UnitsFailed) as failed:
        run_batch(list(unit.members), series, run_panel=boom, **{**common, "storage": tmp_path / "other"})
    assert [len(r.failures) for r in failed.value.results] == [PLAN.windows] * 3


TINY_GLOBAL = {"units": 4, "epochs": 2, "window": 10, "patience": 1, "warm_epochs": 1}


def test_global_lstm_through_the_engine_ignores_everything_after_a_folds_cutoff():
    """The future-perturbation check of the real global network, run as the backtest runs it (one panel unit):
    every series' prices after fold 1's cutoff are scrambled; folds 0 and 1 of every series are unchanged, a later
    fold moves. refit_every=2: fold 1 is forecast by the fold-0 fit, fold 2 refits on scrambled rows."""
    frame = panel(3, 140, seed=6)
    plan = FoldPlan(horizon=3, step=5, windows=4)
    cutoff = panel_folds(frame, plan)["S0"][1].cutoff
    later = frame[DS] > cutoff
    moved = frame.copy()
    moved.loc[later, Y] = moved.loc[later, Y] * np.exp(np.random.default_rng(0).normal(0, 0.05, int(later.sum())))
    runs = [
        run_backtest(data, models={"global_lstm": TINY_GLOBAL}, plan=plan, refit_every=2) for data in (frame, moved)
    ]
    for result in runs:
        assert result.failures.empty
        assert result.forecasts.groupby(ID)[FOLD].nunique().to_dict() == {"S0": 4, "S1": 4, "S2": 4}
        assert result.forecasts["yhat_lo_95"].notna().all()  # its own pooled conformal bands
    base, changed = (r.forecasts.sort_values([ID, FOLD, "h"]).reset_index(drop=True) for r in runs)
    early = base[FOLD] <= 1
    forecast = [c for c in base.columns if c != Y]  # the truth after the cutoff was scrambled, the forecasts not
    pd.testing.assert_frame_equal(base.loc[early, forecast], changed.loc[early, forecast])
    assert not np.allclose(base.loc[~early, YHAT], changed.loc[~early, YHAT])
