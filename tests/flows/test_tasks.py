"""Tasks through .fn() (no server): unit cache keys, the forecast unit, retry conditions, deployment config."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backtest.folds import FoldPlan, panel_folds
from backtest.units import PriceUnit, run_unit
from common.errors import ConfigError, DataError, ModelFitError, SourceError
from features.build import FeatureConfig
from ingest.load import load_panel
from ingest.spec import SourceSpec

ROOT = Path(__file__).resolve().parents[2]
PLAN = FoldPlan(horizon=3, step=3, windows=2, window_type="expanding", train_size=None)


@pytest.fixture(scope="module")
def aapl():
    panel, _ = load_panel(SourceSpec(tickers=("AAPL",), start="2012-01-01", end="2012-12-31"))
    return panel


def _key(series, folds, **overrides):
    from tasks.backtest import price_unit_key

    fields = {"uid": "AAPL", "model": "naive", "params": {}, "folds": tuple(folds), "refit_every": 5, "horizon": 3}
    return price_unit_key(PriceUnit(**{**fields, **overrides}), series)


def test_unit_cache_key_covers_model_params_folds_and_the_data_slice(aapl):
    folds = panel_folds(aapl, PLAN)["AAPL"]
    key = _key(aapl, folds)
    assert key == _key(aapl.copy(), folds) and key.startswith("unit-AAPL-naive-")
    assert key != _key(aapl, folds, params={"window": 3})
    assert key != _key(aapl, folds, refit_every=1)
    assert key != _key(aapl, folds[:1])
    assert key != _key(aapl, folds, horizon=2) and key != _key(aapl, folds, calendar="XLON")
    edited = aapl.copy()
    edited.loc[edited.index[-10], "y"] += 1.0  # a value inside a test window
    assert key != _key(edited, folds)
    later = pd.concat([aapl, aapl.tail(1).assign(ds=aapl["ds"].max() + pd.Timedelta(days=1))], ignore_index=True)
    assert key == _key(later, folds)  # rows after the last test session are not read by this unit


def test_a_batch_task_runs_the_engine_units_each_cached_and_failing_alone(aapl, monkeypatch, tmp_path):
    """run_units over three units: the engine's own results; a unit that raises is its failure record and fails
    the batch (UnitsFailed, carrying all three results); a rerun reads the finished units from their own cache
    entries and runs only the failed one again."""
    import backtest.units as engine_units
    from tasks import backtest
    from tasks.batches import UnitsFailed

    monkeypatch.setattr(backtest, "results_dir", lambda: tmp_path)
    folds = tuple(panel_folds(aapl, PLAN)["AAPL"])
    made = [
        PriceUnit(uid=uid, model="naive", params={}, folds=folds, refit_every=5, horizon=3) for uid in ("A", "B", "C")
    ]
    series = {unit.uid: aapl.assign(unique_id=unit.uid) for unit in made}
    calls: list[str] = []

    def flaky(unit, frame):
        calls.append(unit.uid)
        if unit.uid == "B" and calls.count("B") == 1:
            raise RuntimeError("worker lost its data")
        return run_unit(unit, frame)

    monkeypatch.setattr(engine_units, "run_unit", flaky)
    with pytest.raises(UnitsFailed, match="1 of 3 units failed: naive on B") as failed:
        backtest.run_units.fn(made, series)
    first = failed.value.results
    assert len(first) == 3 and len(first[1].failures) == len(folds) and first[1].forecasts.empty
    assert "worker lost its data" in first[1].failures["message"].iloc[0]
    pd.testing.assert_frame_equal(first[0].forecasts, run_unit(made[0], series["A"]).forecasts)
    again = backtest.run_units.fn(made, series)
    assert calls == ["A", "B", "C", "B"]  # A and C came from their cache entries
    assert again[1].failures.empty and len(again[1].forecasts) == len(folds) * 3
    pd.testing.assert_frame_equal(again[2].forecasts, first[2].forecasts)


def test_forecast_unit_fits_all_history_and_dates_the_next_sessions(aapl):
    from features.build import build_features_for
    from tasks.forecast import forecast_unit

    series = build_features_for(aapl, FeatureConfig())
    out = forecast_unit.fn(series, uid="AAPL", model="naive", params={}, horizon=3, source="sample", target="adj_close")
    assert out["ds"].dt.strftime("%Y-%m-%d").tolist() == ["2013-01-02", "2013-01-03", "2013-01-04"]  # NYSE calendar
    assert (out["as_of"] == pd.Timestamp("2012-12-31")).all() and (out["yhat"] == aapl["y"].iloc[-1]).all()
    assert out[["yhat_lo_95", "yhat_hi_95"]].notna().all().all() and (out["model"] == "naive").all()
    with pytest.raises(ConfigError, match="unknown model"):
        forecast_unit.fn(series, uid="AAPL", model="nope", params={}, horizon=3, source="sample", target="close")


def test_the_live_ensemble_forecast_has_conformal_bands(aapl, tmp_path, monkeypatch):
    from features.build import build_features_for
    from tasks.forecast import forecast_unit

    monkeypatch.setenv("PRICECAST_HOME", str(tmp_path))  # its fit is stored under PRICECAST_HOME/models
    series = build_features_for(aapl, FeatureConfig())
    out = forecast_unit.fn(series, uid="AAPL", model="ensemble", params={}, horizon=3, source="sample", target="y")
    lo, hi = out["yhat_lo_95"].to_numpy(), out["yhat_hi_95"].to_numpy()
    assert (lo < out["yhat"]).all() and (out["yhat"] < hi).all()
    assert (out["yhat_lo_80"] > lo).all() and (out["yhat_hi_80"] < hi).all()


def test_retry_conditions_retry_only_what_can_pass():
    from prefect.states import Completed, Failed

    from tasks.retry_conditions import is_network_error, retry_crashes, retry_network_errors

    def wrapped(cause: BaseException) -> SourceError:
        try:
            raise SourceError("yfinance: could not fetch AAPL after 4 attempts") from cause
        except SourceError as exc:
            return exc

    assert is_network_error(ConnectionError("reset")) and is_network_error(TimeoutError())
    assert is_network_error(wrapped(ConnectionResetError("reset by peer")))
    assert not is_network_error(SourceError("/data/x.csv does not exist; pass an existing csv file"))
    assert not is_network_error(wrapped(FileNotFoundError("x")))
    assert not is_network_error(DataError("AAPL: 3 duplicate dates")) and not is_network_error(None)
    assert retry_network_errors(None, None, Failed(data=TimeoutError("read timed out")))
    assert not retry_network_errors(None, None, Failed(data=DataError("bad")))
    assert not retry_network_errors(None, None, Completed(data=1))
    assert retry_crashes(None, None, Failed(data=MemoryError()))
    assert not retry_crashes(None, None, Failed(data=ModelFitError("arima", "AAPL", "did not converge")))


def test_ingest_task_retries_with_exponential_backoff():
    from tasks.ingest import ingest_prices
    from tasks.retry_conditions import retry_store_locks

    # One retry layer per failure: the source retries the network (ingest/sources/live.py), the task a store lock.
    assert ingest_prices.retries == 3 and ingest_prices.retry_condition_fn is retry_store_locks
    delays = ingest_prices.retry_delay_seconds
    assert len(delays) == 3 and delays[0] < delays[1] < delays[2]


def test_package_loggers_are_routed_to_prefect_when_a_flow_starts_not_on_import(monkeypatch):
    import subprocess
    import sys

    import flows

    probe = "import os, flows.backtest, flows.event_backtest, flows.forecast; print(os.environ.get(flows.EXTRA_LOGGERS_ENV))"  # noqa: E501
    env = {k: v for k, v in os.environ.items() if k != flows.EXTRA_LOGGERS_ENV}
    shown = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=ROOT)
    assert shown.stdout.strip() == "None", shown.stderr  # importing the flows changes nothing
    monkeypatch.delenv(flows.EXTRA_LOGGERS_ENV, raising=False)
    flows.enable_package_logs()  # what every flow's first line does
    assert set(flows.PACKAGE_LOGGERS) <= set(os.environ[flows.EXTRA_LOGGERS_ENV].split(","))


def test_prefect_yaml_deployments_run_on_the_process_pool_from_module_paths():
    from prefect.flows import Flow
    from prefect.utilities.importtools import import_object

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert {"daily-forecast", "weekly-backtest"} <= set(deployments)
    assert deployments["daily-forecast"]["schedules"][0]["cron"].endswith("1-5")  # weekdays
    for d in deployments.values():
        assert d["work_pool"]["name"] == "pricecast" and d["parameters"]
        assert ".py:" not in d["entrypoint"]  # module paths: a file path would shadow the backtest package
        flow = import_object(d["entrypoint"])
        assert isinstance(flow, Flow)
        # The parameters a scheduled run will receive are valid for the flow's typed parameter model (Prefect's
        # own validation, as the server's run does it), and set what they say (not silently defaulted).
        validated = flow.validate_parameters(d["parameters"])
        for name, given in d["parameters"].items():
            typed = validated[name].model_dump(mode="json")
            for field, value in given.items():
                assert typed[field] == value or typed[field] == {**typed[field], **value}, (d["name"], field)


def test_serve_registers_every_prefect_yaml_deployment_under_its_own_name():
    """`pricecast serve` reads prefect.yaml: same parameters, schedules and triggers, names of its own."""
    from flows import serve

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in config["deployments"]}
    served = {d.name: d for d in serve.runner_deployments(serve.declared_deployments())}
    assert set(served) == {f"{name}-served" for name in declared}
    for name, decl in declared.items():
        runner = served[f"{name}-served"]
        assert runner.entrypoint == decl["entrypoint"].replace(":", ".")  # Prefect's module-path form
        assert runner.parameters == decl["parameters"]
        crons = [(s["cron"], s["timezone"]) for s in decl.get("schedules") or []]
        assert [(s.schedule.cron, s.schedule.timezone) for s in runner.schedules or []] == crons
        assert len(runner.triggers or []) == len(decl.get("triggers") or [])


def test_serve_refuses_a_missing_prefect_yaml(tmp_path):
    from flows import serve

    with pytest.raises(ConfigError, match="no prefect.yaml"):
        serve.declared_deployments(tmp_path / "prefect.yaml")


def test_global_models_are_split_into_panels_with_the_champions_that_run_them():
    """A global model asked by name and a champion that IS that model (same parameters) share one panel fit; a
    champion with other parameters gets its own; local models stay per ticker."""
    from tasks.forecast import split_global

    runs = {
        ("AAPL", "naive"): ("naive", {}),
        ("AAPL", "global_lstm"): ("global_lstm", {}),
        ("MSFT", "global_lstm"): ("global_lstm", {}),
        ("MSFT", "champion"): ("global_lstm", {}),
        ("IBM", "champion"): ("global_lstm", {"units": 8}),
        ("IBM", "naive"): ("naive", {}),
    }
    local, panels = split_global(list(runs), runs)
    assert local == [("AAPL", "naive"), ("IBM", "naive")]
    assert panels == {
        ("global_lstm", "{}"): {"AAPL": ["global_lstm"], "MSFT": ["global_lstm", "champion"]},
        ("global_lstm", '{"units": 8}'): {"IBM": ["champion"]},
    }
