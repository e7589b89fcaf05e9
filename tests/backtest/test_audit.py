"""The leakage audit: passes on the real feature pipeline, and catches a feature or a fold that looks ahead."""

from __future__ import annotations

import dataclasses

import pytest

from backtest.audit import audit_leakage, fold_problems
from backtest.folds import FoldPlan, panel_folds
from common.schema import ID
from features.build import FeatureConfig, build_features_for


@pytest.fixture(scope="module")
def run_inputs():
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    panel, _ = load_panel(SourceSpec(tickers=("AAPL", "IBM"), start="2011-01-01", end="2012-12-31"))
    config = FeatureConfig()
    features = {str(u): g.reset_index(drop=True) for u, g in build_features_for(panel, config).groupby(ID)}
    folds = panel_folds(panel, FoldPlan(horizon=5, step=20, windows=6))
    return panel, features, folds, config


def test_the_feature_pipeline_passes_on_every_fold(run_inputs):
    panel, features, folds, config = run_inputs
    audit = audit_leakage(panel, features, folds, config)
    assert audit.passed, audit.problems
    assert (audit.series, audit.folds, audit.feature_columns) == (2, 12, len(config.feature_columns()))
    assert audit.summary().startswith("passed: in all 12 folds of 2 series")
    assert audit.to_dict()["passed"] is True


def test_a_centred_moving_average_is_caught_and_named(run_inputs):
    panel, features, folds, config = run_inputs
    column = "sma_5"
    assert column in config.feature_columns()
    leaky = {}
    for uid, frame in features.items():
        centred = frame["y"].rolling(5, center=True, min_periods=5).mean()  # reads two sessions ahead
        leaky[uid] = frame.assign(**{column: centred.where(frame[column].notna())})
    audit = audit_leakage(panel, leaky, folds, config)
    assert not audit.passed
    assert len(audit.problems) == audit.folds  # every fold of every series
    assert all(column in p and "after the cutoff" in p for p in audit.problems)
    assert "FAILED" in audit.summary() and "more" in audit.summary()


def test_a_fold_that_trains_on_its_test_window_is_caught(run_inputs):
    _, _, folds, _ = run_inputs
    good = folds["AAPL"][0]
    bad = dataclasses.replace(good, train_end=good.test_ds[0], cutoff=good.test_ds[0])
    problems = fold_problems("AAPL", [good, bad])
    assert len(problems) == 1 and problems[0].startswith(f"AAPL fold {bad.fold}: train")


def test_the_flow_task_refuses_to_go_on_when_the_audit_fails(run_inputs, monkeypatch):
    import tasks.backtest
    from backtest.audit import AuditResult
    from backtest.engine import LeakageError

    panel, features, folds, config = run_inputs
    monkeypatch.setattr(tasks.backtest, "audit_leakage", lambda *a, **k: AuditResult(1, 1, 1, ["AAPL fold 0: sma_5"]))
    with pytest.raises(LeakageError, match="leakage audit FAILED: 1 problem"):
        tasks.backtest.audit_fold_leakage.fn({"AAPL": features["AAPL"]}, folds={"AAPL": folds["AAPL"]}, config=config)


def test_per_batch_audits_merge_into_one_result(run_inputs):
    """One audit per ticker or one over a batch of tickers: the same merged result."""
    import tasks.backtest
    from backtest.audit import AuditResult

    _, features, folds, config = run_inputs
    audit = tasks.backtest.audit_fold_leakage.fn
    parts = [audit({u: features[u]}, folds={u: folds[u]}, config=config) for u in folds]
    merged = AuditResult.merge(parts)
    assert AuditResult.merge([audit(features, folds=folds, config=config)]) == merged
    assert merged.passed and (merged.series, merged.folds) == (2, 12)
    assert AuditResult.merge([*parts, {**parts[0], "problems": ["AAPL fold 3: x"]}]).problems == ["AAPL fold 3: x"]
