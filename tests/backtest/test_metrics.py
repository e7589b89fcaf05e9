"""Metrics: hand-checked definitions, agreement with utilsforecast.losses, honest aggregation, leaderboard shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import factory, panel
from utilsforecast import losses as ufl

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from backtest.metrics import (
    ROW_METRICS,
    direction_hit,
    leaderboard,
    metrics_table,
    per_series_table,
    summarise,
    symmetric_percentage_error,
    winkler_score,
)
from backtest.significance import dm_table
from common.schema import (
    CUTOFF,
    DS,
    FOLD,
    HI_80,
    HI_95,
    ID,
    LEADERBOARD_COLUMNS,
    LO_80,
    LO_95,
    METRICS_COLUMNS,
    MODEL,
    YHAT,
    Y,
)

PLAN = FoldPlan(horizon=4, step=3, windows=6)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return panel(3, 70, seed=5)


@pytest.fixture(scope="module")
def result(data):
    return run_backtest(data, models=["last", "trend"], plan=PLAN, refit_every=1, factory=factory)


def test_row_definitions_by_hand():
    assert symmetric_percentage_error(np.array([100.0, 0.0]), np.array([50.0, 0.0])).tolist() == [
        pytest.approx(200 * 50 / 150),
        0.0,
    ]
    # up/up hit, up/down miss, flat forecast and flat truth are coin flips.
    hits = direction_hit(np.array([11.0, 11.0, 11.0, 10.0]), np.array([12.0, 9.0, 10.0, 12.0]), np.full(4, 10.0))
    assert hits.tolist() == [1.0, 0.0, 0.5, 0.5]
    # 95% interval [8, 12]: inside -> width 4; y = 14 -> 4 + (2 / 0.05) * 2 = 84.
    assert winkler_score(np.array([10.0, 14.0]), np.full(2, 8.0), np.full(2, 12.0), level=95).tolist() == pytest.approx(
        [4.0, 84.0]
    )


def test_metrics_table_is_long_and_tidy(result):
    m = metrics_table(result.forecasts, result.fold_info)
    assert tuple(m.columns) == METRICS_COLUMNS
    assert set(m["metric"]) == set(ROW_METRICS)
    # No intervals for "last": its coverage/winkler rows are absent, not NaN.
    assert not m.loc[m[MODEL] == "last", "metric"].str.startswith(("coverage", "winkler")).any()
    assert m["value"].notna().all()


def test_naive_direction_is_the_no_skill_half(result):
    per = per_series_table(result.forecasts, result.fold_info)
    assert (per.loc[per[MODEL] == "last", "directional_accuracy"] == 0.5).all()


def test_rmse_aggregates_squared_errors_before_the_root(result):
    f = result.forecasts.loc[result.forecasts[MODEL] == "trend"]
    per = per_series_table(result.forecasts, result.fold_info).set_index([ID, MODEL])
    for uid, g in f.groupby(ID):
        e = (g[Y] - g[YHAT]).to_numpy()
        assert per.loc[(uid, "trend"), "rmse"] == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-12)
        assert per.loc[(uid, "trend"), "mae"] == pytest.approx(np.mean(np.abs(e)), rel=1e-12)


def _uf_frame(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Our tidy table as utilsforecast's wide one: one column per model, '<model>-lo-80' intervals."""
    wide = forecasts.pivot_table(index=[ID, CUTOFF, DS], columns=MODEL, values=YHAT).reset_index()
    truth = forecasts.drop_duplicates([ID, CUTOFF, DS])[[ID, CUTOFF, DS, Y]]
    out = wide.merge(truth, on=[ID, CUTOFF, DS])
    trend = forecasts.loc[forecasts[MODEL] == "trend", [ID, CUTOFF, DS, LO_80, HI_80, LO_95, HI_95]]
    names = {LO_80: "trend-lo-80", HI_80: "trend-hi-80", LO_95: "trend-lo-95", HI_95: "trend-hi-95"}
    out = out.merge(trend.rename(columns=names), on=[ID, CUTOFF, DS])
    out.columns.name = None
    return out


def test_agrees_with_utilsforecast_per_series_and_fold(result, data):
    """Same forecasts, same numbers: utilsforecast groups by (unique_id, cutoff) = our (unique_id, fold)."""
    ours = summarise(metrics_table(result.forecasts, result.fold_info), by=[ID, MODEL, FOLD])
    cut = result.fold_info[[ID, FOLD, CUTOFF]]
    ours = ours.merge(cut, on=[ID, FOLD]).set_index([ID, CUTOFF, MODEL])
    df = _uf_frame(result.forecasts)
    models = ["last", "trend"]
    theirs = {
        "mae": (ufl.mae(df, models), 1.0),
        "rmse": (ufl.rmse(df, models), 1.0),
        "mape": (ufl.mape(df, models), 100.0),  # utilsforecast: fraction
        "smape": (ufl.smape(df, models), 200.0),  # utilsforecast: 0-1 scale
        "mase": (ufl.mase(df, models, seasonality=1, train_df=data), 1.0),
        "rmsse": (ufl.rmsse(df, models, seasonality=1, train_df=data), 1.0),
    }
    for metric, (table, factor) in theirs.items():
        long = table.melt(id_vars=[ID, CUTOFF], value_vars=models, var_name=MODEL, value_name="uf")
        joined = long.set_index([ID, CUTOFF, MODEL]).join(ours[metric])
        assert len(joined) == len(ours)
        np.testing.assert_allclose(joined[metric], joined["uf"] * factor, rtol=1e-9, atol=1e-12, err_msg=metric)
    for level in (80, 95):
        cov = ufl.coverage(df, ["trend"], level=level).set_index([ID, CUTOFF])["trend"]
        mine = ours.xs("trend", level=MODEL)[f"coverage_{level}"]
        np.testing.assert_allclose(mine.reindex(cov.index), cov, rtol=1e-9)


def test_leaderboard_shape_order_and_ranks(result):
    dm = dm_table(result.forecasts, reference="last", step=PLAN.step)
    board = leaderboard(result.forecasts, result.fold_info, dm, failures=result.failures)
    assert tuple(board.columns[: len(LEADERBOARD_COLUMNS)]) == LEADERBOARD_COLUMNS
    assert list(board.columns[len(LEADERBOARD_COLUMNS) :]) == ["n_series", "n_failures", "n_scale_undefined"]
    assert (board["n_scale_undefined"] == 0).all()
    assert sorted(board["model"]) == ["last", "trend"]
    assert board["mean_rank"].is_monotonic_increasing
    assert board["mean_rank"].sum() == pytest.approx(3.0)  # two models: ranks 1 + 2 per series
    assert (board["n_series"] == 3).all() and (board["n_failures"] == 0).all()
    per = per_series_table(result.forecasts, result.fold_info)
    expected_mase = per.groupby(MODEL)["mase"].mean()
    assert board.set_index("model")["mase"].to_dict() == pytest.approx(expected_mase.to_dict())
    assert pd.isna(board.set_index("model").loc["last", "beats_naive_dm"])  # the reference itself


def test_mean_rank_favours_the_better_model():
    rng = np.random.default_rng(0)
    rows = []
    for uid in ("A", "B", "C"):
        y = 100 + rng.normal(size=8)
        for model, noise in (("good", 0.1), ("bad", 3.0)):
            for fold in range(2):
                for h in range(1, 5):
                    k = fold * 4 + h - 1
                    rows.append({ID: uid, MODEL: model, FOLD: fold, "h": h, Y: y[k], YHAT: y[k] + noise})
    forecasts = pd.DataFrame(rows)
    info = pd.DataFrame(
        [{ID: u, FOLD: f, "last_y": 100.0, "scale_mae": 1.0, "scale_mse": 1.0} for u in "ABC" for f in range(2)]
    )
    board = leaderboard(forecasts, info)
    assert board["model"].tolist() == ["good", "bad"]
    assert board["mean_rank"].tolist() == [1.0, 2.0]
    assert board["mase"].tolist() == pytest.approx([0.1, 3.0])


def test_the_leaderboard_is_ordered_by_mase_not_by_mean_rank_and_carries_mcs_membership():
    """The issue's case: a model that wins more series (better mean rank) but has the worse mean MASE ranks below."""
    rows = []
    # 'steady' wins series A, B, C narrowly; 'erratic' loses them narrowly but wins D by a mile: MASE favours it.
    errors = {"steady": {"A": 1.0, "B": 1.0, "C": 1.0, "D": 4.0}, "erratic": {"A": 1.1, "B": 1.1, "C": 1.1, "D": 0.5}}
    for model, by_series in errors.items():
        for uid, err in by_series.items():
            for fold in range(2):
                rows.append({ID: uid, MODEL: model, FOLD: fold, "h": 1, Y: 100.0, YHAT: 100.0 + err})
    info = pd.DataFrame(
        [{ID: u, FOLD: f, "last_y": 100.0, "scale_mae": 1.0, "scale_mse": 1.0} for u in "ABCD" for f in range(2)]
    )
    mcs = pd.DataFrame({MODEL: ["steady", "erratic"], "in_mcs": [False, True], "mcs_p_value": [0.04, 1.0]})
    board = leaderboard(pd.DataFrame(rows), info, mcs=mcs).set_index(MODEL)
    assert board.index.tolist() == ["erratic", "steady"]  # MASE 0.95 < 1.75
    assert board.loc["steady", "mean_rank"] < board.loc["erratic", "mean_rank"]  # 1.25 vs 1.75: rank kept as a column
    assert board["in_mcs"].tolist() == [True, False]
    assert leaderboard(pd.DataFrame(rows), info)["in_mcs"].isna().all()  # no MCS table: not tested, not False
