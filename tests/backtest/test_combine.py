"""backtest.combine: when the ensemble can reuse the run's member units, and the ensemble unit built from them.

The equivalence test runs the fitted ensemble and its members on a slice of the bundled sample and checks the
combined unit against the fitted one: same rows, same dtypes, the same forecasts (bit-identical when measured).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtest.combine import combine_member_results, reusable_members
from backtest.folds import Fold, FoldPlan, panel_folds
from backtest.results import UnitResult, empty_table, normalize
from common.errors import ConfigError, DataError
from common.schema import (
    BACKTEST_COLUMNS,
    CUTOFF,
    DS,
    ERROR_TYPE,
    FAILURE_COLUMNS,
    FIT_SECONDS,
    FOLD,
    FOLD_INFO_COLUMNS,
    ID,
    INTERVAL_COLUMNS,
    MESSAGE,
    MODEL,
    PREDICT_SECONDS,
    REFIT,
    TIMING_COLUMNS,
    TRAIN_END,
    TRAIN_START,
    YHAT,
    H,
    Y,
)

RUN = {"naive": {}, "ets": {}, "arima": {}, "ensemble": {}}
REFIT_10 = {"naive": 10, "ets": 10, "arima": 10, "ensemble": 10}


# ---------------------------------------------------------------------------------------------- reusable_members


def test_reusable_when_every_member_runs_with_the_same_params_and_policy():
    assert reusable_members({}, RUN, REFIT_10) == ("naive", "ets", "arima")  # Ensemble's default members
    assert reusable_members({"combine": "mean"}, RUN, REFIT_10) == ("naive", "ets", "arima")
    ets_default = {"season_length": 5, "multiplicative": True, "damped": True, "ic": "aicc"}  # spelled out
    assert reusable_members({}, {**RUN, "ets": ets_default}, REFIT_10) == ("naive", "ets", "arima")


def test_not_reusable_when_a_member_is_not_a_model_of_the_run():
    run = {k: v for k, v in RUN.items() if k != "arima"}
    assert reusable_members({}, run, {k: v for k, v in REFIT_10.items() if k != "arima"}) is None


def test_not_reusable_when_a_member_runs_with_other_params():
    assert reusable_members({}, {**RUN, "ets": {"damped": False}}, REFIT_10) is None
    assert reusable_members({"member_params": {"arima": {"max_p": 1}}}, RUN, REFIT_10) is None


def test_not_reusable_under_another_refit_policy():
    assert reusable_members({}, RUN, {**REFIT_10, "ets": 1}) is None
    assert reusable_members({}, RUN, {**REFIT_10, "ensemble": 0}) is None
    assert reusable_members({}, RUN, {k: v for k, v in REFIT_10.items() if k != "ensemble"}) is None
    assert reusable_members({}, RUN, {k: 1 for k in REFIT_10}) == ("naive", "ets", "arima")  # the same, but 1


def test_member_params_override_must_match_the_runs_params():
    ens = {"members": ("naive", "moving_average"), "member_params": {"moving_average": {"window": 3}}}
    refit = {"naive": 10, "moving_average": 10, "ensemble": 10}
    assert reusable_members(ens, {"naive": {}, "moving_average": {"window": 3}}, refit) == ("naive", "moving_average")
    assert reusable_members(ens, {"naive": {}, "moving_average": {}}, refit) is None  # the run's window is 20
    assert reusable_members({**ens, "member_params": None}, {"naive": {}, "moving_average": {"window": 20}}, refit)


def test_not_reusable_when_it_cannot_be_told_or_would_differ():
    assert reusable_members({"combine": "max"}, RUN, REFIT_10) is None  # the ensemble's own fit reports it
    assert reusable_members({"members": ("naive",), "nope": 1}, RUN, REFIT_10) is None
    assert reusable_members({"member_params": {"ets": {"nope": 1}}}, RUN, REFIT_10) is None
    # A warm-starting member is refitted in place alone, rebuilt inside the ensemble: different forecasts.
    rnn = {"members": ("naive", "rnn")}
    assert reusable_members(rnn, {"naive": {}, "rnn": {}}, {"naive": 10, "rnn": 10, "ensemble": 10}) is None
    cold = {"warm_start": False}
    assert reusable_members(
        {**rnn, "member_params": {"rnn": cold}}, {"naive": {}, "rnn": cold}, {"naive": 10, "rnn": 10, "ensemble": 10}
    ) == ("naive", "rnn")
    # The ensemble passes its members no exogenous columns: a member that takes some forecasts differently.
    feats = {"warm_start": False, "features": ("volume",)}
    assert (
        reusable_members(
            {**rnn, "member_params": {"rnn": feats}},
            {"naive": {}, "rnn": feats},
            {"naive": 10, "rnn": 10, "ensemble": 10},
        )
        is None
    )


# ---------------------------------------------------------------------------------------------- combine: toy units

SESSIONS = pd.bdate_range("2024-01-01", periods=12)
TOY_FOLDS = [
    Fold(fold=k, cutoff=SESSIONS[3 + 3 * k], train_start=SESSIONS[0], train_end=SESSIONS[3 + 3 * k],
         test_ds=tuple(SESSIONS[4 + 3 * k : 7 + 3 * k]))
    for k in range(2)
]  # fmt: skip


def toy_unit(model: str, yhat: dict[int, list[float]], *, failed: dict[int, str] | None = None) -> UnitResult:
    """A unit of 'AAA' with yhat per fold (h = 1..3) and failure messages per fold, as the engine words them."""
    rows = []
    for fold in TOY_FOLDS:
        if fold.fold not in yhat:
            continue
        for h, (ds, value) in enumerate(zip(fold.test_ds, yhat[fold.fold], strict=True), start=1):
            row = {
                ID: "AAA",
                MODEL: model,
                FOLD: fold.fold,
                CUTOFF: fold.cutoff,
                DS: ds,
                H: h,
                Y: 100.0 + h,
                YHAT: value,
            }
            rows.append(row | {col: value - 1.0 for col in INTERVAL_COLUMNS})  # intervals the ensemble drops
    failures = [
        {ID: "AAA", MODEL: model, FOLD: k, ERROR_TYPE: "ModelFitError", MESSAGE: f"{model} on AAA: {reason}"}
        for k, reason in (failed or {}).items()
    ]
    timings = [{ID: "AAA", MODEL: model, FOLD: k, FIT_SECONDS: 1.5, PREDICT_SECONDS: 0.5, REFIT: k == 0} for k in yhat]
    info = [
        {ID: "AAA", FOLD: f.fold, CUTOFF: f.cutoff, TRAIN_START: f.train_start, TRAIN_END: f.train_end}
        for f in TOY_FOLDS
    ]
    return UnitResult(
        forecasts=normalize(pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS)), BACKTEST_COLUMNS),
        timings=normalize(pd.DataFrame(timings, columns=list(TIMING_COLUMNS)), TIMING_COLUMNS),
        failures=normalize(pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)), FAILURE_COLUMNS),
        fold_info=normalize(pd.DataFrame(info), FOLD_INFO_COLUMNS),
    )


def toy_members() -> dict[str, UnitResult]:
    return {
        "naive": toy_unit("naive", {0: [1.0, 1.0, 1.0], 1: [4.0, 4.0, 4.0]}),
        "ets": toy_unit("ets", {0: [2.0, 3.0, 4.0], 1: [5.0, 6.0, 7.0]}),
        "arima": toy_unit("arima", {0: [9.0, 0.5, 2.0], 1: [6.0, 2.0, 8.0]}),
    }


def combined(combine: str = "median", results: dict[str, UnitResult] | None = None, **kw: Any) -> UnitResult:
    members = kw.pop("members", ("naive", "ets", "arima"))
    return combine_member_results(
        uid="AAA", model="ensemble", members=members, combine=combine, results=results or toy_members(), folds=TOY_FOLDS
    )


@pytest.mark.parametrize(("combine", "fn"), [("median", np.median), ("mean", np.mean)])
def test_combines_the_members_yhat_per_fold_and_step_as_the_ensemble_does(combine, fn):
    members = toy_members()
    out = combined(combine, members)
    f = out.forecasts
    assert list(f.columns) == list(BACKTEST_COLUMNS) and f.dtypes.equals(empty_table(BACKTEST_COLUMNS).dtypes)
    assert f[[FOLD, H]].values.tolist() == [[0, 1], [0, 2], [0, 3], [1, 1], [1, 2], [1, 3]]
    stacked = np.vstack([members[m].forecasts[YHAT].to_numpy() for m in ("naive", "ets", "arima")])
    np.testing.assert_array_equal(f[YHAT].to_numpy(), fn(stacked, axis=0))  # exact: the same reduction
    assert f[YHAT].tolist()[:3] == ([2.0, 1.0, 2.0] if combine == "median" else [4.0, 1.5, 7 / 3])
    assert (f[MODEL] == "ensemble").all() and f[list(INTERVAL_COLUMNS)].isna().all().all()  # the ensemble has none
    for col in (ID, FOLD, CUTOFF, DS, H, Y):  # from the members' rows
        assert f[col].tolist() == members["ets"].forecasts[col].tolist()
    pd.testing.assert_frame_equal(out.fold_info, members["naive"].fold_info)
    assert out.failures.empty and list(out.failures.columns) == list(FAILURE_COLUMNS)


def test_the_combined_unit_spent_no_fitting_and_says_so():
    t = combined().timings
    assert list(t.columns) == list(TIMING_COLUMNS) and t.dtypes.equals(empty_table(TIMING_COLUMNS).dtypes)
    assert t[FOLD].tolist() == [0, 1] and (t[[FIT_SECONDS, PREDICT_SECONDS]] == 0.0).all().all()
    assert not t[REFIT].any()  # a fitted ensemble refits on its first fold: this one never fitted


def test_a_members_failed_fold_is_a_failure_of_the_ensemble_naming_member_and_error():
    members = toy_members()
    members["ets"] = toy_unit("ets", {0: [2.0, 3.0, 4.0]}, failed={1: "did not converge"})
    out = combined(results=members)
    assert out.forecasts[FOLD].unique().tolist() == [0] and out.timings[FOLD].tolist() == [0]
    assert out.failures.to_dict("records") == [
        {
            ID: "AAA",
            MODEL: "ensemble",
            FOLD: 1,
            ERROR_TYPE: "ModelFitError",
            MESSAGE: "ensemble on AAA: member 'ets' failed: did not converge",  # as Ensemble._run words it
        }
    ]
    assert out.failures.dtypes.equals(empty_table(FAILURE_COLUMNS).dtypes)
    # Two members failing one fold: the first in member order is named, as the ensemble meets it first.
    members["naive"] = toy_unit("naive", {0: [1.0, 1.0, 1.0]}, failed={1: "too short"})
    assert combined(results=members).failures[MESSAGE].tolist() == ["ensemble on AAA: member 'naive' failed: too short"]
    members["naive"] = toy_unit("naive", {0: [1.0, 1.0, 1.0]})  # no forecast and no failure row: still named
    assert (
        "member 'naive' failed: no forecast and no recorded failure" in combined(results=members).failures[MESSAGE][0]
    )
    every = {m: toy_unit(m, {}, failed={0: "x", 1: "y"}) for m in ("naive", "ets", "arima")}
    out = combined(results=every)
    assert out.forecasts.empty and out.forecasts.dtypes.equals(empty_table(BACKTEST_COLUMNS).dtypes)
    assert out.failures[FOLD].tolist() == [0, 1] and out.timings.empty


def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"combine must be 'median' or 'mean', got 'max'"):
        combined("max")
    with pytest.raises(ConfigError, match=r"no unit results for members \['arima'\].*reusable_members"):
        combined(results={k: v for k, v in toy_members().items() if k != "arima"})
    with pytest.raises(ConfigError, match="no members to combine"):
        combined(members=())
    members = toy_members()
    members["ets"].fold_info = members["ets"].fold_info.iloc[:1]
    with pytest.raises(DataError, match="backtested on different folds"):
        combined(results=members)


# ---------------------------------------------------------------------------------------------- the real thing


def member_unit(result: Any, uid: str, model: str) -> UnitResult:
    """One (series, model) unit's tables cut back out of a whole BacktestResult."""

    def pick(table: pd.DataFrame) -> pd.DataFrame:
        return table[(table[ID] == uid) & (table[MODEL] == model)].reset_index(drop=True)

    info = result.fold_info[result.fold_info[ID] == uid].reset_index(drop=True)
    return UnitResult(pick(result.forecasts), pick(result.timings), pick(result.failures), info)


@pytest.mark.parametrize(("refit_every", "ensemble"), [(None, {}), (1, {"combine": "mean"})], ids=["default", "1-mean"])
def test_combined_from_the_runs_members_equals_the_fitted_ensemble_on_the_sample(refit_every, ensemble):
    from backtest.engine import run_backtest
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    panel, _ = load_panel(SourceSpec(source="sample", tickers=("AAPL", "IBM")))
    panel = panel.groupby(ID, group_keys=False).tail(300)[[ID, DS, Y]]  # a small slice, the models' real work
    plan = FoldPlan(horizon=5, step=5, windows=4)
    models = {**RUN, "ensemble": ensemble}
    result = run_backtest(panel, models=models, plan=plan, refit_every=refit_every)
    members = reusable_members(ensemble, models, result.meta["refit_every"])
    assert members == ("naive", "ets", "arima")
    assert result.meta["ensemble_combined_from"] == list(members)  # the run combined it: no refit
    # The ensemble fitted as before: alone in a run, its members are not units to reuse.
    alone = run_backtest(panel, models={"ensemble": ensemble}, plan=plan, refit_every=refit_every)
    assert "ensemble_combined_from" not in alone.meta
    folds = panel_folds(panel, plan)
    for uid in ("AAPL", "IBM"):
        got = combine_member_results(
            uid=uid,
            model="ensemble",
            members=members,
            combine=ensemble.get("combine", "median"),
            results={m: member_unit(result, uid, m) for m in members},
            folds=folds[uid],
        )
        fitted = member_unit(alone, uid, "ensemble")
        combined = member_unit(result, uid, "ensemble")
        points = [c for c in BACKTEST_COLUMNS if c not in INTERVAL_COLUMNS]
        pd.testing.assert_frame_equal(combined.forecasts[points], got.forecasts[points])
        assert len(got.forecasts) == 20 and got.failures.empty and fitted.failures.empty
        others = [c for c in points if c != YHAT]
        pd.testing.assert_frame_equal(got.forecasts[others], fitted.forecasts[others])
        # Both have conformal bands (the ensemble has no native ones), calibrated on the same origins: equal.
        assert combined.forecasts[list(INTERVAL_COLUMNS)].notna().all().all()
        np.testing.assert_allclose(combined.forecasts[list(INTERVAL_COLUMNS)], fitted.forecasts[list(INTERVAL_COLUMNS)])
        np.testing.assert_allclose(got.forecasts[YHAT], fitted.forecasts[YHAT], rtol=1e-12, atol=0)  # measured: 0.0
        pd.testing.assert_frame_equal(got.fold_info, fitted.fold_info)
        assert got.timings[[ID, MODEL, FOLD]].equals(fitted.timings[[ID, MODEL, FOLD]])


def test_the_plan_marks_a_reusable_ensemble_and_the_run_fits_only_the_others():
    from backtest.units import combined_from, fitted_units, plan_price_units

    folds = {"AAPL": ()}
    plan = {"folds": folds, "horizon": 5, "refit_every": None}
    units = plan_price_units(["AAPL"], models={**RUN, "ensemble": {}}, **plan)
    assert [(u.model, u.members) for u in units][-1] == ("ensemble", ("naive", "ets", "arima"))
    assert [u.model for u in fitted_units(units)] == ["naive", "ets", "arima"]  # what the flow maps tasks over
    assert combined_from(units) == {"ensemble_combined_from": ["naive", "ets", "arima"]}
    custom = plan_price_units(["AAPL"], models={**RUN, "ensemble": {}}, **plan, reuse_members=False)
    assert all(not u.members for u in custom) and combined_from(custom) == {}
    other = plan_price_units(["AAPL"], models={"naive": {}, "ensemble": {}}, **plan)  # ets, arima not in the run
    assert [u.model for u in fitted_units(other)] == ["naive", "ensemble"]
