"""Variants on identical folds: +cov and +tuned never see past a fold's cutoff, and a covariate with signal is used.

The two checks issue #17 asks of the course's experiment before any of its numbers can be trusted:
- perturbing the target AND the covariates after a fold's cutoff leaves that fold's forecasts unchanged, for every
  `+cov` and `+tuned` variant the registry makes (the features and covariate columns are recomputed from the
  perturbed raw data, as a run would);
- a covariate that leads the target by one session is picked up: `+cov` beats the plain model significantly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import run_backtest
from backtest.folds import FoldPlan
from backtest.significance import dm_test
from common.schema import DS, FOLD, ID, MODEL, YHAT, H, Y
from features.build import FeatureConfig, build_features_for
from features.calendar import sessions
from features.covariates import CovariateConfig, split_covariates, with_covariates
from models import model_class, model_names
from models.variants import expand_variants, parse_variant

TARGET, LEADER = "AAPL", "^LEAD"
CALENDARS = {TARGET: "XNYS", LEADER: "XNYS"}
# Small enough for a test, every family still itself: tiny networks, Prophet without sampling.
TINY = {
    "rnn": {"window": 10, "units": 4, "epochs": 2, "patience": 1},
    "lstm": {"window": 10, "units": 4, "epochs": 2, "patience": 1},
    "gru": {"window": 10, "units": 4, "epochs": 2, "patience": 1},
    "prophet": {"uncertainty_samples": 0, "yearly": False},
    "sarima": {"max_p": 1, "max_q": 1, "max_P": 1, "max_Q": 1},
}


def _raw(n: int = 260, *, lead: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A target and a covariate on XNYS sessions; with `lead`, the target's return is lead x the covariate's
    return of the session before (plus a little noise of its own)."""
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", "2020-01-02", "2022-12-30")[:n]
    c = rng.normal(0, 0.01, n)
    r = lead * np.concatenate([[0.0], c[:-1]]) + rng.normal(0, 0.01 if not lead else 0.001, n)
    frames = [
        pd.DataFrame({ID: LEADER, DS: ds, Y: 100 * np.exp(np.cumsum(c))}),
        pd.DataFrame({ID: TARGET, DS: ds, Y: 100 * np.exp(np.cumsum(r))}),
    ]
    return pd.concat(frames, ignore_index=True).assign(volume=1.0)


def _run(raw: pd.DataFrame, models: dict, plan: FoldPlan, config: CovariateConfig, **kwargs):
    """What backtest_flow does, without Prefect: split, features, covariate columns, the same units."""
    target, covariates = split_covariates(raw, config, CALENDARS)
    features = build_features_for(target, FeatureConfig(volume_window=None))
    frames, _ = with_covariates({TARGET: features}, covariates, config, CALENDARS)
    return run_backtest(frames[TARGET], models=models, plan=plan, **kwargs)


def _variant_models(config: CovariateConfig, trials: int) -> dict:
    plain = {name: TINY.get(name, {}) for name in model_names() if name != "ensemble"}
    return {n: p for n, p in expand_variants(plain, covariates=config, trials=trials).items() if "+" in n}


def test_every_cov_and_tuned_variant_ignores_everything_after_a_folds_cutoff():
    config = CovariateConfig((LEADER,))
    models = _variant_models(config, trials=2)
    kinds = {parse_variant(n).kind for n in models}
    assert kinds == {"+cov", "+tuned", "+cov+tuned"}, kinds
    takers = {n for n in model_names() if model_class(n).exog_param}
    assert {parse_variant(n).base for n in models if parse_variant(n).cov} == takers
    plan = FoldPlan(horizon=3, step=3, windows=2)
    raw = _raw()
    before = _run(raw, models, plan, config, refit_every=0)
    assert before.failures.empty, before.failures.to_dict("records")
    first = before.fold_info.loc[before.fold_info[FOLD] == 0, "cutoff"].iloc[0]
    shaken = raw.copy()
    later = shaken[DS] > first
    noise = np.random.default_rng(9).normal(1.0, 0.2, int(later.sum()))
    shaken.loc[later, Y] = shaken.loc[later, Y] * 3 * noise  # target AND covariate, after the first cutoff
    after = _run(shaken, models, plan, config, refit_every=0)
    keys = [ID, MODEL, FOLD, H]
    a = before.forecasts.loc[before.forecasts[FOLD] == 0].sort_values(keys).reset_index(drop=True)
    b = after.forecasts.loc[after.forecasts[FOLD] == 0].sort_values(keys).reset_index(drop=True)
    assert set(a[MODEL]) == set(models)
    pd.testing.assert_series_equal(a[YHAT], b[YHAT], rtol=1e-9, atol=0.0)
    assert not np.allclose(  # the later fold did see the change: the perturbation was real
        before.forecasts.loc[before.forecasts[FOLD] == 1, YHAT], after.forecasts.loc[after.forecasts[FOLD] == 1, YHAT]
    )
    tuned = before.tuning
    assert set(tuned[MODEL]) == {n for n in models if parse_variant(n).tuned}
    assert (tuned["trials"] == 2).all()


@pytest.mark.parametrize("model", ["arimax", "lstm"])
def test_a_covariate_that_leads_the_target_by_one_session_makes_cov_beat_plain_significantly(model):
    config = CovariateConfig((LEADER,))
    # A small network trained long enough to learn one coefficient (the default lr learns it in ~200 epochs).
    params = {"lstm": {"window": 5, "units": 8, "epochs": 60, "patience": 10, "learning_rate": 0.01}}.get(model, {})
    models = expand_variants({model: params}, covariates=config)
    plan = FoldPlan(horizon=1, step=1, windows=40)
    result = _run(_raw(400, lead=0.8), models, plan, config, refit_every=20)
    assert result.failures.empty, result.failures.to_dict("records")
    errors = {
        name: (g.sort_values(FOLD)[Y] - g.sort_values(FOLD)[YHAT]).to_numpy()
        for name, g in result.forecasts.groupby(MODEL)
    }
    test = dm_test(errors[f"{model}+cov"], errors[model], h=1, loss="squared")
    assert test.p_value_less < 0.05, test
    mae = {name: float(np.mean(np.abs(e))) for name, e in errors.items()}
    assert mae[f"{model}+cov"] < 0.5 * mae[model], mae
