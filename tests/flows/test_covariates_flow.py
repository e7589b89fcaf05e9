"""backtest_flow with covariates and tuning on the test API server: what a user sees in the run, report and UI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cli.test_cli_commands import EXIT_BAD_INPUT, assert_one_line_error, invoke
from tests.flows.helpers import backtest_params, flow_run_id, latest_artifacts

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect")]


def test_covariates_and_tuning_run_as_variants_on_the_same_folds_and_are_diagnosed(prefect_server, tmp_path):
    from common.settings import store_path
    from features.build import FeatureConfig
    from features.covariates import CovariateConfig
    from flows.backtest import backtest_flow
    from store.results_store import ResultStore

    params = backtest_params(
        tickers=["AAPL"],
        start="2011-01-01",
        covariates=["MSFT", "IBM"],
        models=["naive", "arimax", "moving_average"],
        tune=3,
        windows=4,
        step=5,
        horizon=5,
        out_dir=str(tmp_path / "run"),
    )
    state = backtest_flow(params=params, return_state=True)
    assert state.is_completed(), state.message
    run = tmp_path / "run"
    forecasts = pd.read_parquet(run / "forecasts.parquet")
    expected = {"naive", "arimax", "arimax+cov", "arimax+tuned", "arimax+cov+tuned", "moving_average"}
    expected |= {"moving_average+tuned"}
    assert set(forecasts["model"]) == expected
    folds = forecasts.groupby("model")[["fold", "cutoff"]].apply(
        lambda g: tuple(map(tuple, g.drop_duplicates().values))
    )
    assert folds.nunique() == 1  # every variant on the identical folds
    assert set(forecasts["unique_id"]) == {"AAPL"}  # covariates are inputs, never forecast

    tuning = pd.read_csv(run / "tuning.csv")
    assert set(tuning["model"]) == {"arimax+tuned", "arimax+cov+tuned", "moving_average+tuned"}
    assert (tuning["trials"] == 3).all() and all(isinstance(json.loads(p), dict) for p in tuning["params"])
    stored = ResultStore(store_path()).backtest_run(flow_run_id(state))[0]["tuning"]
    assert len(stored) == len(tuning)

    report = (run / "report.html").read_text()
    assert "Did covariates or tuning help?" in report and "arimax+cov" in report
    assert "Chosen hyperparameters" in report
    artifacts = latest_artifacts()
    assert "arimax: covariates" in artifacts["backtest-diagnosis"].data
    data = artifacts["data-quality"].data
    quality = pd.DataFrame(json.loads(data) if isinstance(data, str) else data)
    aligned = quality.loc[quality["check"] == "covariate_ffilled"]
    assert set(aligned["unique_id"]) == {"AAPL"} and len(aligned) == 2
    # The audit recomputed the covariate columns too (from the closes known at each cutoff).
    audited = len(FeatureConfig().feature_columns()) + len(CovariateConfig(("MSFT", "IBM")).columns())
    assert "**Leakage audit:** passed: in all 4 folds of 1 series" in artifacts["backtest-summary"].data
    assert f"{audited} feature columns recomputed" in artifacts["backtest-summary"].data


def test_a_misspelt_covariate_is_one_line_with_the_close_match(prefect_server):
    result = invoke("backtest", "--tickers", "AAPL", "--covariates", "MSFTT", "--models", "naive", "--windows", "2")
    assert_one_line_error(result, EXIT_BAD_INPUT, "MSFTT", "did you mean 'MSFT'")


def test_the_cli_says_whether_covariates_helped_after_the_verdict(prefect_server, tmp_path):
    args = ["--tickers", "AAPL", "--start", "2011-01-01", "--covariates", "MSFT", "--models", "naive,arimax"]
    result = invoke("backtest", *args, "--windows", "3", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "AAPL: covariate MSFT aligned as of each close" in result.output
    after = result.output[result.output.index("Did covariates or tuning help?") :]
    assert "arimax: covariates" in after and "report:" in after
