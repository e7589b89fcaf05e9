"""Event report: charts' containers, the plain verdict sentence, escaping of user strings, Markdown summary."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import models
from backtest.event_task import evaluate_events, run_event_backtest
from common.schema import ID, MODEL
from outputs.write import event_report_input
from reports.event_report import (
    EventReportInput,
    event_leaderboard_records,
    event_summary_markdown,
    event_verdict,
    render_event_html,
)
from tests.events.event_helpers import SMALL_FEATURES, panel, plan

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def coin_run():
    """base_rate, logistic and a coin (always 0.5) on two series, one of them named like an XSS payload."""
    mp = pytest.MonkeyPatch()
    mp.setitem(models.EVENT_REGISTRY, "coin", models.ModelSpec("tests.events.event_helpers:Coin", "0.5", {}, "event"))
    data = panel(n_series=2, seed=4)
    data[ID] = data[ID].replace({"S1": EVIL})
    try:
        result = run_event_backtest(
            data,
            threshold=0.05,  # event rate about 0.25 on these random walks: a 0.5 coin is badly calibrated
            lookahead=5,
            plan=plan(windows=8),
            models=["base_rate", "logistic", "coin"],
            feature_config=SMALL_FEATURES,
        )
    finally:
        mp.undo()
    return result, evaluate_events(result)


def _input(result, evaluation) -> EventReportInput:
    """The flow's report input, with one failure whose ticker carries HTML."""
    failures = pd.DataFrame(
        [[EVIL, "coin", 3, "ValueError", f"coin on {EVIL}: boom"]],
        columns=[ID, MODEL, "fold", "error_type", "message"],
    )
    return dataclasses.replace(event_report_input(result, evaluation), failures=failures)


def test_a_model_that_cannot_beat_the_base_rate_gets_the_does_not_beat_verdict(coin_run):
    result, evaluation = coin_run
    sig = evaluation.significance.set_index(MODEL)
    assert not bool(sig.at["coin", "beats_base_rate"])
    board = evaluation.leaderboard.set_index(MODEL)
    assert board.at["coin", "brier"] > board.at["base_rate", "brier"]
    text = event_verdict(evaluation.leaderboard, evaluation.significance)
    assert text.startswith("No model beats the base rate significantly at 5%")  # random walks: nothing to learn
    only_coin = event_verdict(
        evaluation.leaderboard[evaluation.leaderboard[MODEL] != "logistic"],
        evaluation.significance[evaluation.significance[MODEL] == "coin"],
    )
    assert only_coin == (
        "No model beats the base rate significantly at 5% (Diebold–Mariano on Brier loss, per-origin losses "
        "averaged per fold, HLN-corrected); the base rate itself has the lowest Brier score "
        f"({board.at['base_rate', 'brier']:.4f})."
    )


def test_report_has_every_chart_the_verdict_and_escapes_user_strings(coin_run, tmp_path):
    result, evaluation = coin_run
    out = render_event_html(_input(result, evaluation), tmp_path / "report.html")
    html = out.read_text()
    for container in ('id="reliability-diagram"', 'id="roc-curve"', 'id="pr-curve"', 'id="fig-folds"'):
        assert container in html, container
    for div in ("fig-reliability", "fig-roc", "fig-pr"):
        assert f'id="{div}"' in html and "Plotly.newPlot" in html
    assert event_verdict(evaluation.leaderboard, evaluation.significance).split(";")[0] in html
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the per-series and failures tables
    assert (tmp_path / "plotly.min.js").exists() and 'src="plotly.min.js"' in html
    assert "cdn." not in html  # opens offline


def test_verdict_names_the_models_that_beat_the_base_rate():
    board = pd.DataFrame({MODEL: ["good", "base_rate"], "brier": [0.10, 0.16], "mean_rank": [1.0, 2.0]})
    sig = pd.DataFrame({MODEL: ["good"], "p_less": [0.004], "beats_base_rate": [True]})
    text = event_verdict(board, sig)
    assert text.startswith("good (Brier 0.1000, p = 0.004) beats the base rate significantly at 5%")
    no_ref = event_verdict(board[board[MODEL] == "good"], None)
    assert "did not run" in no_ref
    assert event_verdict(board.iloc[0:0], sig).startswith("No event model produced predictions")


def test_markdown_summary_and_leaderboard_records(coin_run):
    result, evaluation = coin_run
    md = event_summary_markdown(_input(result, evaluation))
    assert md.startswith("# Event backtest summary") and "| model | Brier |" in md
    assert EVIL not in md and "&lt;script&gt;" in md
    assert "**Failures:** 1 (coin 1)" in md
    records = event_leaderboard_records(evaluation.leaderboard)
    assert [r[MODEL] for r in records] == list(evaluation.leaderboard[MODEL])
    assert all(isinstance(r["beats_base_rate"], bool) for r in records)
