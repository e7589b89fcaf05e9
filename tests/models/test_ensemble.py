"""Ensemble: combination of member forecasts, member failures named, updates forwarded."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError, ModelFitError
from common.schema import YHAT
from models import make_model
from models.ensemble import Ensemble
from tests.models.conftest import series_frame

MEMBERS = ("naive", "drift", "ses")


def _member_means(data, horizon, update=None):
    out = []
    for name in MEMBERS:
        model = make_model(name).fit(data)
        if update is not None:
            model.update(update)
        out.append(model.predict(horizon)[YHAT].to_numpy())
    return np.vstack(out)


@pytest.mark.parametrize(("combine", "fn"), [("median", np.median), ("mean", np.mean)])
def test_combines_member_point_forecasts(prices, combine, fn):
    got = Ensemble(members=MEMBERS, combine=combine).fit(prices).predict(5)
    np.testing.assert_allclose(got[YHAT], fn(_member_means(prices, 5), axis=0), rtol=1e-12)
    assert "yhat_lo_80" not in got.columns


def test_update_is_forwarded_to_members(prices):
    model = Ensemble(members=MEMBERS).fit(prices.iloc[:250])
    model.update(prices.iloc[250:])
    expected = np.median(_member_means(prices.iloc[:250], 5, update=prices.iloc[250:]), axis=0)
    np.testing.assert_allclose(model.predict(5)[YHAT], expected, rtol=1e-12)


def test_member_params_reach_the_members(prices):
    model = Ensemble(members=("moving_average", "naive"), member_params={"moving_average": {"window": 3}})
    model.fit(prices)
    assert model.models_[0].window == 3


def test_a_failing_member_is_named(prices):
    with pytest.raises(ModelFitError, match="member 'ses' failed: constant series") as info:
        Ensemble(members=("naive", "ses")).fit(series_frame(np.full(60, 2.0)))
    assert info.value.model == "ensemble" and info.value.unique_id == "SYN"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"members": ()},
        {"combine": "max"},
        {"members": ("naive",), "member_params": {"ses": {}}},
        {"members": ("ensemble",)},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        Ensemble(**kwargs)


def test_default_members_fit_and_forecast(prices):
    frame = Ensemble().fit(prices).predict(5)
    assert np.isfinite(frame[YHAT]).all() and len(frame) == 5


def test_the_horizon_is_needed_when_a_member_as_configured_needs_it():
    """Asked of each member as built with its parameters: ts_regression needs the horizon only with covariates."""
    plain = Ensemble(members=("naive", "ts_regression"))
    with_cov = Ensemble(members=("naive", "ts_regression"), member_params={"ts_regression": {"exog": ("logret_1",)}})
    assert not plain.needs_horizon()
    assert with_cov.needs_horizon()
    assert Ensemble(members=("naive", "lstm")).needs_horizon()
