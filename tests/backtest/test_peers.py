"""Agreement with statsforecast: the naive model's backtest equals StatsForecast.cross_validation on the same folds.

statsforecast is a dev-only peer; sessions are mapped to integer positions so calendar frequencies play no role.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import panel

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from common.schema import CUTOFF, DS, ID, MODEL, YHAT, H, Y

statsforecast = pytest.importorskip("statsforecast")
pytest.importorskip("models.baselines")


@pytest.mark.parametrize(("horizon", "step", "windows"), [(5, 2, 6), (3, 3, 4), (1, 1, 8)])
def test_naive_backtest_equals_statsforecast_cross_validation(horizon, step, windows):
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    data = panel(2, 80, seed=9)
    ours = run_backtest(
        data, models=["naive"], plan=FoldPlan(horizon=horizon, step=step, windows=windows), refit_every=1
    ).forecasts
    assert (ours[MODEL] == "naive").all() and ours[YHAT].notna().all()

    # Integer time index: position of each session within its series.
    positions = data.assign(**{DS: data.groupby(ID).cumcount()})
    sf = StatsForecast(models=[Naive()], freq=1, n_jobs=1)
    theirs = sf.cross_validation(df=positions, h=horizon, step_size=step, n_windows=windows)
    theirs = theirs.reset_index() if ID not in theirs.columns else theirs

    pos = {(uid, d): k for uid, g in data.groupby(ID) for k, d in enumerate(g[DS])}
    ours = ours.assign(
        cutoff_pos=[pos[(u, c)] for u, c in zip(ours[ID], ours[CUTOFF], strict=True)],
        ds_pos=[pos[(u, d)] for u, d in zip(ours[ID], ours[DS], strict=True)],
    )
    joined = ours.merge(
        theirs.rename(columns={CUTOFF: "cutoff_pos", DS: "ds_pos", Y: "y_sf"}), on=[ID, "cutoff_pos", "ds_pos"]
    )
    assert len(joined) == len(ours) == len(theirs) == 2 * horizon * windows
    assert (joined["ds_pos"] - joined["cutoff_pos"] == joined[H]).all()
    np.testing.assert_allclose(joined[YHAT], joined["Naive"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(joined[Y], joined["y_sf"], rtol=0, atol=1e-12)
    assert pd.Series(joined["cutoff_pos"]).nunique() == windows


@pytest.mark.slow
def test_prophet_backtest_refit_every_fold_equals_prophet_cross_validation():
    """With refit_every=1 the engine's prophet forecasts are prophet.diagnostics.cross_validation's yhat."""
    from prophet import Prophet
    from prophet.diagnostics import cross_validation

    from models.prophet_model import ProphetForecaster

    data = panel(1, 300, seed=4)
    params = {"uncertainty_samples": 0, "warm_start": False, "yearly": False}
    plan = FoldPlan(horizon=5, step=10, windows=2)
    ours = run_backtest(data, models={"prophet": params}, plan=plan, refit_every=1).forecasts
    cutoffs = sorted(ours[CUTOFF].unique())

    series = data[[DS, Y]]
    kwargs = ProphetForecaster(**params).prophet_kwargs("XNYS")
    fitted = Prophet(**kwargs).fit(series)
    for cutoff in cutoffs:
        got = ours.loc[ours[CUTOFF] == cutoff].sort_values(H)
        # Prophet's horizon is calendar time; each fold's 5 sessions span a different number of days.
        horizon = got[DS].max() - cutoff
        theirs = cross_validation(fitted, horizon=horizon, cutoffs=[cutoff], disable_tqdm=True)
        want = theirs.loc[theirs["cutoff"] == cutoff].set_index("ds").loc[got[DS], "yhat"]
        np.testing.assert_allclose(got[YHAT].to_numpy(), want.to_numpy(), rtol=1e-9)
