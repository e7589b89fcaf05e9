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
from features.schema import CUTOFF, DS, ID, MODEL, YHAT, H, Y

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
