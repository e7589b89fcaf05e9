"""store.monitor: live MASE and 95% coverage of recent forecasts against the newest backtest, and breaches."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from common.errors import ConfigError
from common.schema import MONITOR_COLUMNS
from store.monitor import MonitorPolicy, breach_markdown, live_monitor, monitor_records
from store.results_store import ResultStore
from tests.store.monitor_helpers import BACKTEST_COV, seed_backtest, seed_live

# Window of 20 as_of dates, the newest with only h = 1 scored: 20 rows at h = 1 and 19 at h = 2.
N_WINDOW = 39
MIXED = (20 * 1.0 + 19 * 2.0) / N_WINDOW  # backtest MASE 1 at h=1, 2 at h=2, weighted by the live rows' steps


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultStore:
    path = tmp_path_factory.mktemp("monitor") / "s.duckdb"
    seed_live(
        path,
        "AAA",
        {"naive": (1, 2, 3), "drift": (2, 4, 5), "ses": (1, 2, 1.5), "champion": (9, 9, 1)},
        n_as_of=25,
    )
    seed_live(path, "BBB", {"naive": (9, 9, 1)}, n_as_of=6)
    old = {("AAA", "naive"): (5, 5), ("AAA", "drift"): (1, 2), ("AAA", "ses"): (1, 2), ("BBB", "naive"): (1, 2)}
    seed_backtest(path, "bt-old", "2023-01-07T06:00:00", old)
    seed_backtest(path, "bt-new", "2023-02-04T06:00:00", {("AAA", "naive"): (1, 2)})  # newest with AAA naive
    seed_backtest(path, "bt-event", "2023-03-04T06:00:00", {("AAA", "naive"): (0, 0)}, brier=0.2)  # no MASE
    results = ResultStore(path)
    rerun = results.live_forecasts("live-AAA-024").drop(columns=["flow_run_id", "created_at"])
    results.write_live(rerun, flow_run_id="live-AAA-024-rerun")  # the same day forecast twice counts once
    results.score_live()
    return results


@pytest.fixture(scope="module")
def monitor(store) -> pd.DataFrame:
    return live_monitor(store).set_index(["unique_id", "model"])


def test_one_row_per_live_pair_with_the_documented_columns(monitor):
    assert list(monitor.reset_index().columns) == list(MONITOR_COLUMNS)
    assert sorted(monitor.index) == [("AAA", m) for m in ("champion", "drift", "naive", "ses")] + [("BBB", "naive")]


def test_live_matching_the_backtest_is_no_breach(monitor):
    row = monitor.loc[("AAA", "naive")]
    assert row["n_scored"] == N_WINDOW  # the rerun of the newest day is not counted twice
    assert row["live_mase"] == pytest.approx(MIXED) and row["backtest_mase"] == pytest.approx(MIXED)
    assert row["live_coverage_95"] == 1.0 and row["backtest_coverage_95"] == pytest.approx(BACKTEST_COV)
    assert not row["breach"] and row["reason"] == "within policy"
    assert row["backtest_run_id"] == "bt-new"  # newest run with MASE for the pair; bt-event has only brier


def test_live_mase_above_the_ratio_is_a_breach(monitor):
    row = monitor.loc[("AAA", "drift")]
    assert row["live_mase"] == pytest.approx(2 * MIXED) and row["backtest_mase"] == pytest.approx(MIXED)
    assert row["breach"] and row["reason"].startswith("live MASE 2.97 > 1.5 x backtest 1.49")
    assert "coverage" not in row["reason"] and row["backtest_run_id"] == "bt-old"


def test_live_coverage_far_below_the_backtest_is_a_breach(monitor):
    row = monitor.loc[("AAA", "ses")]
    assert row["live_coverage_95"] == pytest.approx(20 / N_WINDOW)  # only the h = 1 rows fall inside
    assert row["breach"] and row["reason"] == "live 95% coverage 0.513 < backtest 0.95 - 0.15"


def test_too_few_scored_rows_is_no_breach(monitor):
    row = monitor.loc[("BBB", "naive")]
    assert row["n_scored"] == 11 and row["live_mase"] == pytest.approx(9.0)
    assert not row["breach"] and row["reason"] == "only 11 scored rows at the backtest's horizon steps, 20 needed"


def test_a_pair_without_a_backtest_is_no_breach(monitor):
    row = monitor.loc[("AAA", "champion")]
    assert row["n_scored"] == N_WINDOW and row["live_mase"] == pytest.approx(9.0)
    assert math.isnan(row["backtest_mase"]) and pd.isna(row["backtest_run_id"])
    assert not row["breach"] and row["reason"] == "no stored backtest run contains this pair"


def test_policy_thresholds_and_window_apply(store):
    lenient = live_monitor(store, MonitorPolicy(mase_ratio=3.0, coverage_drop=0.5)).set_index("model")
    assert not lenient.loc[["drift", "ses"], "breach"].any()
    short = live_monitor(store, MonitorPolicy(window=5)).set_index(["unique_id", "model"])
    assert short.loc[("AAA", "naive"), "n_scored"] == 9 and not short["breach"].any()
    with pytest.raises(ConfigError, match="coverage_drop"):
        MonitorPolicy(coverage_drop=1.5)
    with pytest.raises(ConfigError, match="window"):
        MonitorPolicy(window=0)


def test_an_empty_or_absent_store_has_nothing_to_compare(tmp_path):
    assert live_monitor(ResultStore(tmp_path / "absent.duckdb")).empty
    assert not (tmp_path / "absent.duckdb").exists()
    empty = live_monitor(ResultStore(tmp_path / "s.duckdb"))
    assert empty.empty and list(empty.columns) == list(MONITOR_COLUMNS) and empty["breach"].dtype == bool


def test_records_are_json_safe_and_the_notification_names_each_breach(monitor):
    frame = monitor.reset_index()
    records = monitor_records(frame)
    json.dumps(records, allow_nan=False)
    champion = next(r for r in records if r["model"] == "champion")
    assert (
        champion["backtest_mase"] is None
        and champion["backtest_run_id"] is None
        and champion["breach"] is False
        and champion["n_scored"] == N_WINDOW
    )
    text = breach_markdown(frame, MonitorPolicy(), next_step="weekly-backtest starts now")
    assert text.startswith("# Live forecast breach: 2 (ticker, model) pairs")
    assert "| AAA | drift | 39 | 2.97 | 1.49 |" in text and "| AAA | ses | 39 |" in text
    assert "naive" not in text and "**What happens next:** weekly-backtest starts now" in text
    hostile = frame.assign(unique_id="<b>|x", breach=True)
    assert "&lt;b&gt;\\|x" in breach_markdown(hostile, MonitorPolicy(), next_step="-") and "<b>" not in text
