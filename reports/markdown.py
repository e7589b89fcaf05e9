"""Markdown summary and JSON-safe leaderboard records for Prefect artifacts (markdown and table artifacts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from common.redact import redact
from common.schema import (
    BEATS_NAIVE_DM,
    COVERAGE_80,
    COVERAGE_95,
    IN_MCS,
    MASE,
    MEAN_RANK,
    MODEL,
    OOS_R2,
    PINBALL,
    SCALED_CRPS,
)
from reports.data import LEADERBOARD_METRICS, METRICS, ReportInput, model_order, series_ids
from reports.format import fmt_num, fmt_seconds, fmt_value, sig_round
from reports.verdict import verdict

__all__ = ["leaderboard_records", "summary_markdown", "verdict"]

# The Markdown leaderboard keeps what fits a Prefect UI panel (measured: 11 columns were clipped); RMSSE and
# directional accuracy are in the table artifact and the report.
SUMMARY_COLUMNS = (MASE, SCALED_CRPS, PINBALL, OOS_R2, COVERAGE_80, COVERAGE_95, MEAN_RANK)
FLAG_COLUMNS = (IN_MCS, BEATS_NAIVE_DM)  # shown as ✓ (true), blank (false) or – (not tested)


def summary_markdown(data: ReportInput, *, title: str = "Backtest summary", alpha: float = 0.05) -> str:
    """Verdict, run essentials, the leaderboard as a Markdown table and the failure count."""
    meta = data.meta or {}
    lines = [
        f"# {_escape(title)}",
        "",
        f"**{_escape(verdict(data.leaderboard, data.dm, alpha=alpha, mcs=data.mcs, spa=data.spa))}**",
        "",
    ]

    tickers = meta.get("tickers") or series_ids(data)
    essentials = [
        ("Source", meta.get("source")),
        ("Tickers", ", ".join(map(str, tickers)) if tickers else None),
        ("Fold plan", _describe(meta.get("plan"))),
        ("Refit policy", _describe(meta.get("refit_every"))),
        ("Total time", fmt_seconds(meta["elapsed_seconds"]) if meta.get("elapsed_seconds") is not None else None),
        ("Git commit", meta.get("git_commit")),
        ("Run id", meta.get("flow_run_id")),
        ("Leakage audit", (meta.get("leakage_audit") or {}).get("summary")),
    ]
    lines += [f"- **{label}:** {_escape(redact(value))}" for label, value in essentials if value not in (None, "")]
    lines.append("")

    lines.append("## Leaderboard")
    lines.append("")
    lines += _leaderboard_table(data.leaderboard)
    lines.append("")
    failures = data.failures
    n_failures = 0 if failures is None or failures.empty else len(failures)
    if failures is not None and n_failures:
        by_model = failures[MODEL].astype(str).value_counts()
        detail = ", ".join(f"{_escape(m)} {n}" for m, n in by_model.items())
        lines.append(f"**Failures:** {n_failures} ({detail}); see the HTML report for the messages.")
    else:
        lines.append("**Failures:** none.")
    return "\n".join(lines) + "\n"


def leaderboard_records(leaderboard: pd.DataFrame, *, digits: int = 4) -> list[dict[str, Any]]:
    """The leaderboard, best model first, as JSON-safe dicts (floats to `digits` significant digits, NaN -> None)."""
    if leaderboard is None or leaderboard.empty:
        return []
    order = model_order(leaderboard)
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)})
    lb = lb.set_index(MODEL).reindex(order).reset_index()
    return [{str(k): sig_round(v, digits) for k, v in row.items()} for row in lb.to_dict(orient="records")]


def _leaderboard_table(leaderboard: pd.DataFrame) -> list[str]:
    if leaderboard is None or leaderboard.empty:
        return ["_No model produced forecasts._"]
    order = model_order(leaderboard)
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).set_index(MODEL).reindex(order)
    cols = [c for c in SUMMARY_COLUMNS if c in lb.columns and lb[c].notna().any()]
    cols += [c for c in FLAG_COLUMNS if c in lb.columns]
    if not cols:
        cols = [c for c in LEADERBOARD_METRICS if c in lb.columns]
    header = ["model", *[METRICS[c].label if c in METRICS else c for c in cols]]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", *["---:"] * len(cols)]) + "|"]
    for model, row in lb.iterrows():
        cells = [_escape(str(model)), *[_flag(row[c]) if c in FLAG_COLUMNS else _escape(fmt_num(row[c])) for c in cols]]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _flag(value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    return "✓" if bool(value) else ""


def _describe(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # unset entries (a windows plan's first_cutoff) are left out, never shown as "–"
        return ", ".join(f"{str(k).replace('_', ' ')} {fmt_value(v)}" for k, v in value.items() if v is not None)
    return fmt_value(value)


def _escape(text: str) -> str:
    """Neutralise Markdown table pipes and raw HTML from user data (tickers, model names)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
