"""The `pricecast` CLI as a user drives it: help on every command, exit codes, one-line errors, report re-rendering.

Commands that run flows use the session's Prefect test server; everything runs in-process with typer's runner.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pricecast.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PARTIAL, app

COMMANDS = ("models", "ingest", "backtest", "forecast", "report", "history", "serve")
TINY = ["--tickers", "AAPL", "--models", "naive,drift", "--windows", "2", "--step", "3", "--horizon", "3"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    joined = " ".join(lines)
    for fragment in fragments:
        assert fragment in joined, joined


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and command in result.output


def test_models_lists_every_registered_model():
    from models import REGISTRY

    result = invoke("models")
    assert result.exit_code == 0
    for name in REGISTRY:
        assert name in result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "conformal" in lines["ensemble"] and "own" in lines["ets"]  # the ensemble has no native intervals


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["backtest", "--horizon", "0"], ["horizon"]),
        (["backtest", "--windows", "-1"], ["windows"]),
        (["backtest", "--models", "naive,lstmm"], ["lstmm"]),
        (["backtest", "--start", "2013-01-01", "--end", "2012-01-01"], ["2013-01-01"]),
        (["forecast", "--horizon", "0"], ["--horizon"]),
        (["backtest", "--refit-every", "-2"], ["--refit-every -2", "0 = fit once"]),
        (["backtest", "--intervals", "quantile"], ["--intervals", "quantile", "native", "conformal"]),
        (["backtest", "--calibration-windows", "-1"], ["--calibration-windows -1"]),
        (["backtest", "--task", "event", "--intervals", "conformal"], ["--intervals", "--task event"]),
        (["backtest", "--window-type", "sliding"], ["sliding", "train_size"]),
        # One name per meaning: the price horizon and the event look-ahead are different options.
        (["backtest", "--task", "event", "--horizon", "5"], ["--horizon", "--lookahead"]),
        (["backtest", "--lookahead", "5"], ["--lookahead", "--task event"]),
        (["backtest", "--task", "event", "--threshold", "-2"], ["--threshold -2.0", "greater than -1"]),
        (["ingest", "--start", "yesterday"], ["--start", "YYYY-MM-DD"]),
        # Covariates and tuning: every misuse is refused before any work, naming what would work.
        (["backtest", "--tune", "3", "--models", "naive,drift"], ["none of the models", "tunable models: moving"]),
        (["backtest", "--tune", "2", "--models", "naive+tuned"], ["naive has no search space", "tunable models"]),
        (
            ["backtest", "--models", "ets+cov", "--covariates", "MSFT"],
            ["ets takes no exogenous", "arimax, ts_regression, prophet"],
        ),
        (["backtest", "--models", "lstm+cov"], ["lstm+cov", "--covariates TICKERS"]),
        (["backtest", "--models", "lstm+gpu"], ["lstm+gpu", "'+cov' and '+tuned'"]),
        (["backtest", "--tickers", "AAPL", "--covariates", "AAPL"], ["['AAPL']", "both as tickers"]),
        (["backtest", "--covariates", "MSFT", "--covariate-lags", "one"], ["--covariate-lags", "integers"]),
        (["backtest", "--covariates", "MSFT", "--covariate-lags", "0"], ["--covariate-lags", "0"]),
        (["backtest", "--task", "event", "--tune", "3"], ["--tune", "price task"]),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args, fragments):
    assert_one_line_error(invoke(*args), EXIT_BAD_INPUT, *fragments)


def test_an_unexpected_failure_is_one_line_exit_1_and_debug_shows_the_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("registry exploded")

    monkeypatch.setattr("pricecast.cli.Table.add_row", broken)
    result = invoke("models")
    assert_one_line_error(result, EXIT_FAILED, "RuntimeError", "registry exploded", "--debug")
    debug = invoke("--debug", "models")
    assert isinstance(debug.exception, RuntimeError)


def test_report_without_stored_runs_says_what_to_do():
    assert_one_line_error(invoke("report"), EXIT_BAD_INPUT, "no backtest runs", "pricecast backtest")


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_backtest_then_report_re_renders_the_run_from_the_store_and_from_its_directory(prefect_server, tmp_path):
    out = tmp_path / "run"
    result = invoke("backtest", *TINY, "--start", "2012-01-01", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    assert "Leaderboard" in result.output and f"report: {out / 'report.html'}" in result.output
    assert "naive random walk" in result.output  # the verdict sentence
    assert "backtest" in result.stderr and "2/2" in result.stderr  # the progress bar's final state
    assert "Traceback" not in result.stderr and "INFO" not in result.stderr  # run logs go to the UI, not here
    assert "Leakage audit passed:</b> in all 2 folds of 1 series" in (out / "report.html").read_text()

    listed = invoke("report", "--list")
    assert listed.exit_code == 0 and "drift,naive" in listed.output

    from common.settings import store_path
    from store.results_store import ResultStore

    run_id = ResultStore(store_path()).resolve_run("latest")
    again = tmp_path / "again"
    rerendered = invoke("report", run_id[:8], "--out", str(again))
    assert rerendered.exit_code == 0, rerendered.output + rerendered.stderr
    assert (again / "report.html").exists() and (again / "plotly.min.js").exists()
    for table in ("leaderboard.csv", "forecasts.csv", "quality.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / table), pd.read_csv(again / table), check_exact=False)

    (out / "report.html").unlink()
    in_place = invoke("report", str(out))
    assert in_place.exit_code == 0 and (out / "report.html").exists()

    unknown = invoke("report", "zzzz-no-such-run")
    assert_one_line_error(unknown, EXIT_BAD_INPUT, "zzzz-no-such-run", "--list")


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_a_failing_model_gives_a_partial_exit_code_and_names_the_unit(prefect_server, tmp_path, monkeypatch):
    from tests.flows.helpers import register_boom

    register_boom(monkeypatch)
    args = [*TINY[:2], "--models", "naive,boom", *TINY[4:], "--start", "2012-01-01", "--out", str(tmp_path / "r")]
    result = invoke("backtest", *args)
    assert result.exit_code == EXIT_PARTIAL, result.output + result.stderr
    assert "partial:" in result.stderr and "boom on AAPL" in result.stderr
    assert "Traceback" not in result.stderr
    assert Path(tmp_path / "r" / "report.html").exists()


def test_an_unknown_task_or_event_model_is_bad_input():
    assert_one_line_error(invoke("backtest", "--task", "events"), EXIT_BAD_INPUT, "--task", "event")
    assert_one_line_error(
        invoke("backtest", "--task", "event", "--models", "logistc"), EXIT_BAD_INPUT, "logistc", "logistic"
    )


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_the_event_task_runs_the_event_flow_and_prints_its_leaderboard(prefect_server, tmp_path):
    out = tmp_path / "event"
    args = ["--tickers", "AAPL", "--models", "base_rate,logistic", "--windows", "4", "--start", "2010-01-01"]
    result = invoke("backtest", "--task", "event", "--threshold", "0.03", "--lookahead", "5", *args, "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    assert "Event leaderboard" in result.output and "base rate" in result.output
    assert (out / "report.html").exists() and (out / "predictions.parquet").exists()
    assert "event" in result.stderr and "2/2" in result.stderr
