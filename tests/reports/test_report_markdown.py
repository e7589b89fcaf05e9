"""The Markdown summary and leaderboard records for Prefect artifacts."""

from __future__ import annotations

import json
import math

from reports.markdown import leaderboard_records, summary_markdown


def test_summary_has_verdict_run_essentials_leaderboard_and_failures(report_input):
    md = summary_markdown(report_input)
    assert md.count("| model | MASE |") == 1 and "|:---|---:|" in md
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


def test_the_artifact_leaderboard_has_the_new_columns_and_no_unset_plan_entries(report_input):
    import dataclasses

    board = report_input.leaderboard.assign(scaled_crps=1.5, pinball=0.4, oos_r2=-0.01, in_mcs=[True, True, False])
    plan = {"horizon": 5, "step": 5, "windows": 6, "first_cutoff": None, "train_size": None, "min_train_size": None}
    md = summary_markdown(
        dataclasses.replace(report_input, leaderboard=board, meta={**report_input.meta, "plan": plan})
    )
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    for label in ("MASE", "scaled CRPS", "pinball", "OOS R²", "in MCS"):
        assert label in header, label
    assert len(header.split(" | ")) <= 10  # fits a Prefect UI panel (11 columns were clipped)
    fold_plan = next(line for line in md.splitlines() if line.startswith("- **Fold plan:**"))
    assert fold_plan == "- **Fold plan:** horizon 5, step 5, windows 6" and "–" not in fold_plan
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ") and "model" not in line}
    assert "✓" in rows["| naive"] and "✓" not in rows["| prophet"]
