"""The Markdown summary and leaderboard records for Prefect artifacts."""

from __future__ import annotations

import json
import math

from reports.markdown import leaderboard_records, summary_markdown


def test_summary_has_verdict_run_essentials_leaderboard_and_failures(report_input):
    md = summary_markdown(report_input)
    assert "| model | MASE | RMSSE |" in md and "|:---|---:|" in md
    assert "no model beats the naive random walk" in md
    assert "- **Fold plan:** horizon 5, step 5, windows 6" in md
    assert "**Failures:** 1 (prophet 1)" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split(" | ")[0] for r in rows] == ["| naive", "| ets", "| prophet"]  # best first


def test_summary_escapes_user_text(make_input):
    data = make_input(1, models=("naive", "a|b<i>", "prophet"), tickers=("<script>x</script>",))
    md = summary_markdown(data)
    assert "<script>" not in md and "<i>" not in md and "a\\|b&lt;i&gt;" in md


def test_leaderboard_records_are_json_safe_and_rounded(report_input):
    records = leaderboard_records(report_input.leaderboard)
    json.dumps(records, allow_nan=False)
    assert [r["model"] for r in records] == ["naive", "ets", "prophet"]
    ets = records[1]
    assert ets["coverage_80"] is None and isinstance(ets["beats_naive_dm"], bool)
    mase = ets["mase"]
    assert mase == float(f"{mase:.4g}") and not math.isnan(mase)
