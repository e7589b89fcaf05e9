"""The tabular regressors on lagged returns (models/regressors.py): skill, causality, covariates, warm-up, batching.

The conformance suite (tests/models/test_contract.py) covers the output contract, update, save/load and same-seed
determinism; these tests cover what is particular to direct multi-step regressors on a feature design.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from backtest.metrics import metrics_table
from common.errors import DataError
from common.schema import CUTOFF, DS, ID, MASE, METRIC, MODEL, VALUE, YHAT, Y
from models import REGISTRY, make_model, model_class
from models.base import fit_model
from tests.models.conftest import session_dates

NAMES = ("random_forest", "gradient_boosting", "svr")
COV = "cov_lead_logret"


def ar1_return_prices(n: int, *, phi: float = 0.5, sd: float = 0.01, seed: int = 0, uid: str = "AR") -> pd.DataFrame:
    """Prices whose log returns are a Gaussian AR(1): r_t = phi * r_{t-1} + e_t."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sd, n)
    r = np.empty(n)
    r[0] = e[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    return pd.DataFrame({ID: uid, DS: session_dates(n), Y: 100.0 * np.exp(np.cumsum(r))})


def leading_covariate_prices(n: int, *, seed: int = 0) -> pd.DataFrame:
    """A covariate whose return at t is the target's return at t+1 (plus a little noise): it leads by one session."""
    rng = np.random.default_rng(seed)
    c = rng.normal(0.0, 0.01, n)
    r = np.concatenate([[0.0], c[:-1]]) + rng.normal(0.0, 0.002, n)
    return pd.DataFrame({ID: "LEAD", DS: session_dates(n), Y: 100.0 * np.exp(np.cumsum(r)), COV: c})


def test_registered_as_ml_family_with_a_search_space_over_constructor_arguments():
    for name in NAMES:
        assert REGISTRY[name].family == "ml"
        cls = model_class(name)
        assert cls.requires_horizon_in_fit and not cls.supports_intervals and cls.exog_param == "features"
        params = make_model(name).get_params()
        assert set(cls.search_space) <= set(params), f"{name}: search space names a non-argument"
        assert params["seed"] == 0 and params["n_lags"] == 10 and params["windows"] == (5, 20)


@pytest.fixture(scope="module")
def ar1_backtest() -> pd.Series:
    """Mean MASE per model on an AR(1)-in-returns series (phi 0.5), 400 one-step folds, refitted every 100.

    The best possible one-step forecast has about 0.87 of naive's MAE here; 400 origins keep the sample's noise
    well inside the 0.95 bar (0.86-0.93 over seeds 3-5).
    """
    panel = ar1_return_prices(900, seed=3)
    plan = FoldPlan(horizon=1, step=1, windows=400)
    result = run_backtest(panel, models=["naive", *NAMES], plan=plan, refit_every=100)
    assert result.failures.empty, result.failures.to_string()
    metrics = metrics_table(result.forecasts, result.fold_info)
    return metrics[metrics[METRIC] == MASE].groupby(MODEL)[VALUE].mean()


@pytest.mark.parametrize("name", NAMES)
def test_beats_naive_when_the_next_return_depends_on_the_last(name, ar1_backtest):
    mase = ar1_backtest
    assert mase[name] < 0.95 * mase["naive"], f"{name}: MASE {mase[name]:.3f} vs naive {mase['naive']:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_future_perturbation_leaves_forecasts_from_each_cutoff_unchanged(name):
    """Changing every value (price and covariate) after a cutoff changes no forecast made from that cutoff."""
    frame = leading_covariate_prices(260, seed=5)
    n_train = 200
    cutoffs = list(frame[DS].iloc[[n_train + 4, n_train + 9, n_train + 20]])
    model = fit_model(make_model(name, features=(COV,)), frame.iloc[:n_train], 3)
    base = model.forecast_origins(frame, cutoffs, 3)
    for cutoff in cutoffs:
        tampered = frame.copy()
        after = tampered[DS] > cutoff
        tampered.loc[after, Y] *= np.linspace(0.5, 2.0, int(after.sum()))
        tampered.loc[after, COV] = 0.3
        again = fit_model(make_model(name, features=(COV,)), frame.iloc[:n_train], 3)
        other = again.forecast_origins(tampered, cutoffs, 3)
        upto = base[CUTOFF] <= cutoff
        pd.testing.assert_frame_equal(base[upto], other[upto])
        if cutoff < cutoffs[-1]:
            assert not np.allclose(base.loc[~upto, YHAT], other.loc[~upto, YHAT]), "later origins should react"


@pytest.mark.parametrize("name", NAMES)
def test_a_covariate_leading_by_one_session_is_picked_up_through_the_exog_parameter(name):
    frame = leading_covariate_prices(500, seed=1)
    n_train = 400
    cutoffs = list(frame[DS].iloc[n_train - 1 : -1])
    actual = frame[Y].to_numpy()[n_train:]
    errors = {}
    for features in ((), (COV,)):
        model = fit_model(make_model(name, features=features), frame.iloc[:n_train], 1)
        yhat = model.predict_origins(frame, cutoffs, 1).mean[:, 0]
        errors[features] = np.mean(np.abs(yhat - actual))
    assert errors[(COV,)] < 0.5 * errors[()], f"{name}: MAE with covariate {errors[(COV,)]:.4f} vs {errors[()]:.4f}"


def test_warm_up_rows_are_skipped_not_filled():
    """A covariate that starts at row 50: training starts there; an origin with an unknown feature is refused."""
    frame = leading_covariate_prices(300, seed=2)
    frame.loc[:49, COV] = np.nan
    model = fit_model(make_model("random_forest", features=(COV,)), frame, 5)
    assert model.warmup_ == 50
    assert model.n_samples_ == len(frame) - 50 - 5  # every complete row whose 5-step target is known, no more
    assert model.estimators_[0].n_features_in_ == len(model.feature_names()) == 10 + 4 + 1
    assert np.isfinite(model.predict(5)[YHAT]).all()

    plain = fit_model(make_model("random_forest"), frame, 5)
    assert plain.warmup_ == 20  # the lags and the 20-session window: the first row with all of them defined
    assert plain.n_samples_ == len(frame) - 20 - 5

    gap = frame.copy()
    gap.loc[len(gap) - 1, COV] = np.nan
    with pytest.raises(DataError, match=f"unknown at origin {gap[DS].iloc[-1].date()}"):
        fit_model(make_model("random_forest", features=(COV,)), gap, 5).predict(5)


def test_a_block_of_origins_calls_each_step_estimator_once():
    frame = ar1_return_prices(300, seed=4)
    model = fit_model(make_model("gradient_boosting"), frame.iloc[:250], 3)
    calls = []
    for k, est in enumerate(model.estimators_):
        original = est.predict
        est.predict = lambda X, _o=original, _k=k: calls.append((_k, len(X))) or _o(X)
    cutoffs = list(frame[DS].iloc[[249, 255, 270, 290]])
    block = model.predict_origins(frame, cutoffs, 3)
    assert block.mean.shape == (4, 3)
    assert calls == [(0, 4), (1, 4), (2, 4)]


def test_horizon_in_fit_is_required_and_never_extrapolated():
    frame = ar1_return_prices(200)
    with pytest.raises(DataError, match="needs the horizon at fit"):
        make_model("svr").fit(frame)
    with pytest.raises(DataError, match="constructed with horizon=3 but fitted for 10"):
        make_model("svr", horizon=3).fit(frame, horizon=10)
    model = make_model("svr", horizon=8).fit(frame, horizon=5)
    assert len(model.predict(8)) == 8
    with pytest.raises(DataError, match="9 steps"):
        model.predict(9)


_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from tests.models.test_regressors import ar1_return_prices
from models import make_model
from models.base import fit_model
frame = ar1_return_prices(400, seed=9)
print(json.dumps({{n: fit_model(make_model(n), frame, 5).predict(5)["yhat"].tolist() for n in {names!r}}}))
"""


def test_forecasts_are_identical_in_a_fresh_process():
    root = str(Path(__file__).resolve().parents[2])
    script = _SCRIPT.format(root=root, names=NAMES)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    frame = ar1_return_prices(400, seed=9)
    for name in NAMES:
        ours = fit_model(make_model(name), frame, 5).predict(5)[YHAT].tolist()
        assert ours == theirs[name], name
