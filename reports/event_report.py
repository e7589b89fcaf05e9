"""The event-forecast report ("will the close rise >= x% within h sessions?") as offline HTML and Markdown.

Reads the tables backtest/event_task.py writes (predictions, leaderboard, per-series metrics, reliability bins,
ROC/PR curve points, Diebold-Mariano tests against the base rate, failures); never imports models. Reuses the
forecasting report's machinery: the autoescaping Jinja environment, plotly.js written once beside the file,
plotly fragments via reports.charts.to_html (user strings JSON-escaped) and reports.tables view-models.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from common.schema import (
    AREA,
    BASE_RATE,
    BEATS_BASE_RATE,
    BIN,
    BIN_LOWER,
    BIN_UPPER,
    BRIER,
    BRIER_SKILL,
    COUNT,
    CURVE,
    DS,
    ERROR_TYPE,
    EVENT_METRICS,
    EVENT_RATE,
    F1,
    FIT_SECONDS,
    FOLD,
    ID,
    LOG_LOSS,
    MEAN_PREDICTED,
    MEAN_RANK,
    MESSAGE,
    METRIC,
    MODEL,
    MODEL_LOSS,
    N_AUC_UNDEFINED,
    N_FAILURES,
    N_OBS,
    N_POS,
    N_SERIES,
    OBSERVED_FREQUENCY,
    P_LESS,
    P_VALUE,
    POSITIVE_RATE,
    PR_AUC,
    PRECISION,
    PREDICT_SECONDS,
    RECALL,
    REFERENCE_LOSS,
    REFIT,
    ROC_AUC,
    STAT,
    VALUE,
    X,
    Y,
)
from reports import charts
from reports.data import require_columns
from reports.format import fmt_num, fmt_p, fmt_pct, fmt_seconds, fmt_value, sig_round
from reports.html import write_page
from reports.tables import Cell, Column, Table, build_table

log = logging.getLogger(__name__)

TEMPLATE = "event_report.html.j2"
DM_NAME = "Diebold–Mariano on Brier loss, per-origin losses averaged per fold, HLN-corrected"

SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("run", "Run"),
    ("leaderboard", "Leaderboard"),
    ("significance", "Tests against the base rate"),
    ("calibration", "Reliability"),
    ("curves", "ROC and PR curves"),
    ("folds", "Brier score across folds"),
    ("failures", "Failures"),
)


@dataclass(frozen=True)
class MetricInfo:
    label: str
    better: Literal["lower", "higher", "none"]
    caption: str


METRICS: dict[str, MetricInfo] = {
    ROC_AUC: MetricInfo(
        "ROC AUC", "higher", "Chance that an event origin gets a higher p than a non-event; 0.5 = no skill."
    ),
    PR_AUC: MetricInfo("PR AUC", "higher", "Average precision; compare with the event rate, its no-skill level."),
    BRIER: MetricInfo("Brier", "lower", "Mean squared error of the probability, (p − y)²; a proper score."),
    BRIER_SKILL: MetricInfo("Brier skill", "higher", "1 − Brier / base rate's Brier; > 0 beats climatology."),
    LOG_LOSS: MetricInfo("Log loss", "lower", "Mean −log of the probability given to what happened; a proper score."),
    PRECISION: MetricInfo("Precision", "higher", "Share of flagged origins that saw the event."),
    RECALL: MetricInfo("Recall", "higher", "Share of events that were flagged."),
    F1: MetricInfo("F1", "higher", "Harmonic mean of precision and recall at the training-tail threshold."),
    POSITIVE_RATE: MetricInfo("Flagged", "none", "Share of origins the model flags (p ≥ its fold's threshold)."),
    EVENT_RATE: MetricInfo("Event rate", "none", "Share of origins that saw the event (the same for every model)."),
    MEAN_RANK: MetricInfo("Mean rank", "lower", "Rank by Brier score within each series, averaged; 1 is best."),
    N_SERIES: MetricInfo("Series", "none", "Series the model scored."),
    N_AUC_UNDEFINED: MetricInfo("AUC undefined", "none", "Series whose test origins held one class: AUCs are NaN."),
    N_FAILURES: MetricInfo("Failures", "none", "(series, fold) units where the model failed."),
    P_VALUE: MetricInfo("p (two-sided)", "none", "Two-sided DM p-value against the base rate."),
    P_LESS: MetricInfo(
        "p (model better)", "none", "One-sided DM p-value: small = lower Brier loss than the base rate."
    ),
    BEATS_BASE_RATE: MetricInfo(
        "Beats base rate", "none", "Significantly lower Brier loss than the base rate at 5% (DM)."
    ),
    N_OBS: MetricInfo("Origins", "none", "Scored origins."),
    N_POS: MetricInfo("Events", "none", "Origins that saw the event."),
}
SUMMARY_COLUMNS = (BRIER, BRIER_SKILL, ROC_AUC, PR_AUC, LOG_LOSS, F1, MEAN_RANK, P_LESS, BEATS_BASE_RATE)


@dataclass(frozen=True, eq=False, kw_only=True)
class EventReportInput:
    """Every table of one event backtest; optional ones may be None. `meta` as backtest.event_task.event_meta."""

    leaderboard: pd.DataFrame
    predictions: pd.DataFrame | None = None
    per_series: pd.DataFrame | None = None
    metrics: pd.DataFrame | None = None
    significance: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    timings: pd.DataFrame | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def model_order(leaderboard: pd.DataFrame) -> list[str]:
    """Models best first: mean Brier rank, then Brier score."""
    if leaderboard is None or leaderboard.empty or MODEL not in leaderboard.columns:
        return []
    keys = [c for c in (MEAN_RANK, BRIER) if c in leaderboard.columns]
    ordered = leaderboard.sort_values(keys, na_position="last", kind="stable") if keys else leaderboard
    return [str(m) for m in ordered[MODEL].drop_duplicates()]


# ---------------------------------------------------------------- verdict


def event_verdict(
    leaderboard: pd.DataFrame, significance: pd.DataFrame | None, *, alpha: float = 0.05, reference: str = BASE_RATE
) -> str:
    """One plain sentence: does any model beat the base rate (DM on Brier loss), and the best Brier score."""
    order = model_order(leaderboard)
    level = f"at {alpha * 100:g}%"
    if not order:
        return "No event model produced predictions, so there is nothing to compare; see the failures table."
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).drop_duplicates(MODEL).set_index(MODEL)
    brier = pd.to_numeric(lb[BRIER], errors="coerce") if BRIER in lb.columns else pd.Series(np.nan, index=lb.index)
    if reference not in lb.index or significance is None or significance.empty:
        return f"The {reference} did not run, so no model was tested against it; lowest Brier score: {order[0]}."
    sig = significance.assign(**{MODEL: significance[MODEL].astype(str)}).set_index(MODEL)
    p_less = pd.to_numeric(sig[P_LESS], errors="coerce")
    winners = [m for m in order if m in sig.index and p_less[m] < alpha]
    ref_brier = fmt_num(brier[reference])
    if not winners:
        challengers = [m for m in order if m != reference]
        if not challengers:
            return f"No model beats the base rate significantly {level}: only the {reference} ran."
        best = challengers[0]
        lead = f"No model beats the base rate significantly {level} ({DM_NAME})"
        if order[0] == reference:
            return f"{lead}; the base rate itself has the lowest Brier score ({ref_brier})."
        p = p_less.get(best, np.nan)
        return (
            f"{lead}; the best, {best}, has Brier {fmt_num(brier[best])} vs the base rate's {ref_brier} "
            f"(one-sided p = {fmt_p(p, digits=3)})."
        )
    parts = [f"{m} (Brier {fmt_num(brier[m])}, p = {fmt_p(p_less[m], digits=3)})" for m in winners]
    verb = "beats" if len(winners) == 1 else "beat"
    return (
        f"{_join(parts)} {verb} the base rate significantly {level} ({DM_NAME}); "
        f"the base rate's Brier score is {ref_brier}."
    )


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- HTML


def render_event_html(
    data: EventReportInput,
    out_path: Path,
    *,
    title: str = "pricecast event report",
    plotlyjs: Literal["directory", "inline"] = "directory",
    alpha: float = 0.05,
) -> Path:
    """Write the event report to `out_path` atomically (plotly.min.js beside it, or inlined) and return it."""
    require_columns(data.leaderboard, [MODEL], table="leaderboard")
    context = build_event_context(data, title=title, alpha=alpha)
    return write_page(TEMPLATE, context, Path(out_path), plotlyjs=plotlyjs)


def build_event_context(data: EventReportInput, *, title: str, alpha: float = 0.05) -> dict[str, Any]:
    """Everything the template shows, as plain values, tables and figure fragments (testable without rendering)."""
    order = model_order(data.leaderboard)
    meta = data.meta or {}
    return {
        "title": title,
        "sections": SECTIONS,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "verdict": event_verdict(data.leaderboard, data.significance, alpha=alpha),
        "event": str(meta.get("event") or ""),
        "run": _run_section(data, meta),
        "leaderboard": _leaderboard_section(data, order),
        "significance": _significance_section(data, order, alpha),
        "calibration": _calibration_section(data, order),
        "curves": _curves_section(data, order),
        "folds": charts.to_html(_fold_chart(data.metrics, order), "fig-folds", height=320),
        "failures": _failures_section(data.failures),
        "glossary": [(info.label, info.caption) for key, info in METRICS.items() if key in data.leaderboard.columns],
    }


def _fold_facts(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The fold plan without its `horizon`: in an event run that is the origins per fold (shown as such), and
    next to the event's own horizon it reads as a second, different horizon."""
    return {k: v for k, v in plan.items() if k != "horizon"}


def _run_section(data: EventReportInput, meta: Mapping[str, Any]) -> dict[str, Any]:
    plan = meta.get("plan") or {}
    facts: list[tuple[str, str]] = []
    for label, value in (
        ("Event", meta.get("event")),
        ("Source", meta.get("source")),
        ("Tickers", ", ".join(map(str, meta.get("tickers") or _series(data)))),
        ("Folds", _describe(_fold_facts(plan))),
        ("Refit policy", _describe(meta.get("refit_every"))),
        (
            "Decision threshold",
            f"max F1 on the last {100 * float(meta.get('tail_fraction', 0.2)):g}% of each fit's training samples",
        ),
        ("Features", ", ".join(map(str, meta.get("features") or []))),
        ("Event rate (labelled sessions)", _describe(meta.get("event_rate"))),
        ("Total time", fmt_seconds(meta["elapsed_seconds"]) if meta.get("elapsed_seconds") is not None else None),
        ("Git commit", meta.get("git_commit")),
        ("Run id", meta.get("flow_run_id")),
        ("Created", fmt_value(meta["created_at"]) if meta.get("created_at") is not None else None),
    ):
        if value not in (None, ""):
            facts.append((label, str(value)))
    return {"facts": facts, "timings": _timings_table(data.timings, model_order(data.leaderboard))}


def _series(data: EventReportInput) -> list[str]:
    for frame in (data.per_series, data.predictions):
        if frame is not None and not frame.empty and ID in frame.columns:
            return [str(u) for u in frame[ID].drop_duplicates()]
    return []


def _describe(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return " · ".join(f"{str(k).replace('_', ' ')} {fmt_value(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value)
    return fmt_value(value)


def _timings_table(timings: pd.DataFrame | None, order: list[str]) -> Table | None:
    if timings is None or timings.empty:
        return None
    t = timings.assign(**{MODEL: timings[MODEL].astype(str)})
    agg = t.groupby(MODEL).agg(
        folds=(FIT_SECONDS, "size"), refits=(REFIT, "sum"), fit=(FIT_SECONDS, "sum"), predict=(PREDICT_SECONDS, "sum")
    )
    agg["total"] = agg["fit"] + agg["predict"]
    agg = agg.reindex([m for m in order if m in agg.index] + [m for m in agg.index if m not in order]).reset_index()
    secs = {c: fmt_seconds for c in ("fit", "predict", "total")}
    return build_table(
        agg, labels={MODEL: "model", "folds": "(series, fold) units"}, formatters={**secs, "refits": fmt_num}
    )


def _table(frame: pd.DataFrame, columns: list[str], *, group: str | None = None, labels: dict | None = None) -> Table:
    """build_table with the event metrics' labels, tooltips and best-value highlighting (per `group`)."""
    formatters = {c: (lambda v: fmt_p(v, digits=3)) for c in (P_VALUE, P_LESS)}
    formatters.update({c: _fmt_count for c in (N_SERIES, N_AUC_UNDEFINED, N_FAILURES, N_OBS, N_POS)})
    formatters[BEATS_BASE_RATE] = lambda v: "yes" if v is True or v == 1 else "no"
    table = build_table(frame, columns, formatters=formatters, group=group)
    names = labels or {}
    for i, col in enumerate(table.columns):
        info = METRICS.get(col.key)
        label = names.get(col.key, info.label if info else col.label)
        table.columns[i] = Column(col.key, label, info.caption if info else col.title, col.numeric)
    frame = frame.reset_index(drop=True)
    for j, col in enumerate(table.columns):
        info = METRICS.get(col.key)
        if info is None or info.better == "none" or len(frame) < 2:
            continue
        values = pd.to_numeric(frame[col.key], errors="coerce")
        score = -values if info.better == "higher" else values
        best = score.groupby(frame[group] if group else np.zeros(len(frame))).transform("min")
        for i, row in enumerate(table.rows):
            if pd.notna(score[i]) and abs(score[i] - best[i]) <= 1e-12 * (1 + abs(best[i])):
                cell = row[j]
                row[j] = Cell(cell.text, f"{cell.classes} best".strip(), cell.title)
    _mark(table, BEATS_BASE_RATE, "yes", "good")
    return table


def _fmt_count(value: Any) -> str:
    return fmt_num(value) if pd.isna(value) else fmt_num(int(value))


def _mark(table: Table, key: str, text: str, css: str) -> None:
    idx = next((i for i, c in enumerate(table.columns) if c.key == key), None)
    if idx is None:
        return
    for row in table.rows:
        if row[idx].text == text:
            row[idx] = Cell(row[idx].text, f"{row[idx].classes} {css}".strip(), row[idx].title)


def _leaderboard_section(data: EventReportInput, order: list[str]) -> dict[str, Any]:
    lb = data.leaderboard.assign(**{MODEL: data.leaderboard[MODEL].astype(str)})
    lb = lb.set_index(MODEL).reindex(order).reset_index()
    # The event rate is the same for every model (same origins): the per-series table and the run header show it.
    shown = [c for c in EVENT_METRICS if c != EVENT_RATE]
    known = [MODEL, *shown, MEAN_RANK, N_SERIES, N_AUC_UNDEFINED, N_FAILURES, BEATS_BASE_RATE]
    overall = _table(lb, [c for c in known if c in lb.columns], labels={MODEL: "model"})
    per_series = None
    ps = data.per_series
    if ps is not None and not ps.empty:
        ps = ps.assign(**{ID: ps[ID].astype(str), MODEL: ps[MODEL].astype(str)})
        rank = {m: i for i, m in enumerate(order)}
        ps = ps.assign(_o=ps[MODEL].map(rank)).sort_values([ID, "_o"], kind="stable").drop(columns="_o")
        cols = [ID, MODEL, *EVENT_METRICS, N_OBS, N_POS]
        per_series = _table(ps, [c for c in cols if c in ps.columns], group=ID, labels={ID: "series", MODEL: "model"})
    return {"overall": overall, "per_series": per_series}


def _significance_section(data: EventReportInput, order: list[str], alpha: float) -> dict[str, Any]:
    sig = data.significance
    out: dict[str, Any] = {"table": None, "alpha": alpha, "test": DM_NAME}
    if sig is None or sig.empty:
        return out
    sig = sig.assign(**{MODEL: sig[MODEL].astype(str)})
    rank = {m: i for i, m in enumerate(order)}
    sig = sig.assign(_o=sig[MODEL].map(rank)).sort_values("_o", kind="stable").drop(columns="_o")
    cols = [MODEL, N_OBS, MODEL_LOSS, REFERENCE_LOSS, STAT, P_VALUE, P_LESS, BEATS_BASE_RATE]
    labels = {
        MODEL: "model",
        MODEL_LOSS: "model Brier",
        REFERENCE_LOSS: "base rate Brier",
        STAT: "DM stat",
        BEATS_BASE_RATE: f"beats base rate at {alpha * 100:g}%?",
    }
    out["table"] = _table(sig, [c for c in cols if c in sig.columns], labels=labels)
    return out


def _calibration_section(data: EventReportInput, order: list[str]) -> dict[str, Any]:
    cal = data.calibration
    if cal is None or cal.empty:
        return {"figure": None, "table": None}
    cal = cal.assign(**{MODEL: cal[MODEL].astype(str)})
    palette = charts.colours(order)
    traces: list[dict[str, Any]] = [_diagonal("perfect calibration")]
    for model in _ordered(cal[MODEL], order):
        part = cal[cal[MODEL] == model].sort_values(BIN)
        counts = part[COUNT].astype(float)
        traces.append(
            {
                "type": "scatter",
                "x": _floats(part[MEAN_PREDICTED]),
                "y": _floats(part[OBSERVED_FREQUENCY]),
                "name": model,
                "mode": "lines+markers",
                "marker": {"size": (4 + 14 * np.sqrt(counts / max(counts.max(), 1))).round(1).tolist()},
                "line": {"color": palette.get(model, charts.PALETTE[0])},
                "customdata": part[COUNT].astype(int).tolist(),
                "hovertemplate": "mean p %{x:.3f} → observed %{y:.3f} (n = %{customdata})",
            }
        )
    layout = {
        "xaxis": {"title": {"text": "mean predicted probability (bin)"}, "range": [0, 1]},
        "yaxis": {"title": {"text": "observed event frequency"}, "range": [0, 1]},
        "hovermode": "closest",
    }
    figure = charts.to_html({"data": traces, "layout": layout}, "fig-reliability", height=420)
    table = build_table(
        cal.assign(_o=cal[MODEL].map({m: i for i, m in enumerate(order)})).sort_values(["_o", BIN]),
        [MODEL, BIN, BIN_LOWER, BIN_UPPER, MEAN_PREDICTED, OBSERVED_FREQUENCY, COUNT],
        labels={MODEL: "model", MEAN_PREDICTED: "mean predicted", OBSERVED_FREQUENCY: "observed", COUNT: "origins"},
        formatters={BIN: _fmt_count, COUNT: _fmt_count},
        group=MODEL,
    )
    return {"figure": figure, "table": table}


def _curves_section(data: EventReportInput, order: list[str]) -> dict[str, Any]:
    curves = data.curves
    if curves is None or curves.empty:
        return {"roc": None, "pr": None}
    curves = curves.assign(**{MODEL: curves[MODEL].astype(str)})
    palette = charts.colours(order)
    out: dict[str, Any] = {}
    for name, xlabel, ylabel, area in (
        ("roc", "false positive rate", "true positive rate", "AUC"),
        ("pr", "recall", "precision", "AP"),
    ):
        part = curves[curves[CURVE] == name]
        traces: list[dict[str, Any]] = [_diagonal("no skill")] if name == "roc" else []
        if name == "pr" and data.predictions is not None and not data.predictions.empty:
            rate = float(data.predictions.drop_duplicates([ID, DS])[Y].mean())
            traces.append(_hline(rate, f"event rate {fmt_pct(rate)}"))
        for model in _ordered(part[MODEL], order):
            rows = part[part[MODEL] == model]
            traces.append(
                {
                    "type": "scatter",
                    "x": _floats(rows[X]),
                    "y": _floats(rows[Y]),
                    "name": f"{model} ({area} {fmt_num(rows[AREA].iloc[0], digits=3)})",
                    "mode": "lines",
                    "line": {
                        "color": palette.get(model, charts.PALETTE[0]),
                        "shape": "hv" if name == "pr" else "linear",
                    },
                }
            )
        layout = {
            "xaxis": {"title": {"text": xlabel}, "range": [0, 1]},
            "yaxis": {"title": {"text": ylabel}, "range": [0, 1.02]},
            "hovermode": "closest",
        }
        out[name] = charts.to_html({"data": traces, "layout": layout}, f"fig-{name}", height=400)
    return out


def _fold_chart(metrics: pd.DataFrame | None, order: list[str]) -> dict[str, Any] | None:
    if metrics is None or metrics.empty or not {METRIC, VALUE, FOLD}.issubset(metrics.columns):
        return None
    rows = metrics[(metrics[METRIC].astype(str) == BRIER) & (metrics[FOLD] >= 0)]
    if rows.empty:
        return None
    per_fold = rows.assign(**{MODEL: rows[MODEL].astype(str)}).groupby([MODEL, FOLD], as_index=False)[VALUE].mean()
    palette = charts.colours(order)
    traces = [
        {
            "type": "scatter",
            "x": part[FOLD].astype(int).tolist(),
            "y": _floats(part[VALUE]),
            "name": model,
            "mode": "lines+markers",
            "marker": {"size": 4},
            "line": {"color": palette.get(model, charts.PALETTE[0]), "dash": "dash" if model == BASE_RATE else "solid"},
        }
        for model in _ordered(per_fold[MODEL], order)
        if not (part := per_fold[per_fold[MODEL] == model].sort_values(FOLD)).empty
    ]
    layout = {
        "xaxis": {"title": {"text": "fold (chronological)"}},
        "yaxis": {"title": {"text": "Brier (mean over series)"}},
    }
    return {"data": traces, "layout": layout}


def _failures_section(failures: pd.DataFrame | None, *, max_rows: int = 200) -> dict[str, Any]:
    if failures is None or failures.empty:
        return {"count": 0, "table": None, "omitted": 0}
    f = failures.assign(**{MODEL: failures[MODEL].astype(str)}).sort_values([MODEL, ID, FOLD])
    table = build_table(
        f.head(max_rows),
        [ID, MODEL, FOLD, ERROR_TYPE, MESSAGE],
        labels={ID: "series", MODEL: "model", FOLD: "fold", ERROR_TYPE: "error", MESSAGE: "message"},
        formatters={FOLD: _fmt_count},
    )
    return {"count": len(f), "table": table, "omitted": max(0, len(f) - max_rows)}


def _diagonal(name: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": [0, 1],
        "y": [0, 1],
        "name": name,
        "mode": "lines",
        "line": {"color": charts.NAIVE_COLOUR, "dash": "dot", "width": 1},
        "hoverinfo": "skip",
    }


def _hline(y: float, name: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": [0, 1],
        "y": [y, y],
        "name": name,
        "mode": "lines",
        "line": {"color": charts.NAIVE_COLOUR, "dash": "dot", "width": 1},
        "hoverinfo": "skip",
    }


def _ordered(present: pd.Series, order: list[str]) -> list[str]:
    seen = list(dict.fromkeys(present.astype(str)))
    return [m for m in order if m in seen] + [m for m in seen if m not in order]


def _floats(values: pd.Series, digits: int = 5) -> list[float | None]:
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return [None if v != v else float(f"{v:.{digits}g}") for v in arr.tolist()]


# ---------------------------------------------------------------- Markdown (Prefect artifacts)


def event_summary_markdown(
    data: EventReportInput, *, title: str = "Event backtest summary", alpha: float = 0.05
) -> str:
    """Verdict, run essentials, the leaderboard as a Markdown table and the failure count."""
    meta = data.meta or {}
    verdict = event_verdict(data.leaderboard, data.significance, alpha=alpha)
    lines = [f"# {_md(title)}", "", f"**{_md(verdict)}**", ""]
    plan = meta.get("plan") or {}
    for label, value in (
        ("Event", meta.get("event")),
        ("Tickers", ", ".join(map(str, meta.get("tickers") or _series(data)))),
        ("Folds", _describe(_fold_facts(plan))),
        ("Total time", fmt_seconds(meta["elapsed_seconds"]) if meta.get("elapsed_seconds") is not None else None),
        ("Run id", meta.get("flow_run_id")),
    ):
        if value not in (None, ""):
            lines.append(f"- **{label}:** {_md(str(value))}")
    lines += ["", "## Leaderboard", ""]
    order = model_order(data.leaderboard)
    if not order:
        lines.append("_No event model produced predictions._")
    else:
        lb = data.leaderboard.assign(**{MODEL: data.leaderboard[MODEL].astype(str)}).set_index(MODEL).reindex(order)
        cols = [c for c in SUMMARY_COLUMNS if c in lb.columns]
        lines.append("| model | " + " | ".join(METRICS[c].label for c in cols) + " |")
        lines.append("|:---|" + "|".join("---:" for _ in cols) + "|")
        for model, row in lb.iterrows():
            cells = [fmt_p(row[c], digits=3) if c == P_LESS else fmt_num(row[c]) for c in cols]
            lines.append("| " + " | ".join([_md(str(model)), *map(_md, cells)]) + " |")
    lines.append("")
    failures = data.failures
    if failures is not None and len(failures):
        detail = ", ".join(f"{_md(m)} {n}" for m, n in failures[MODEL].astype(str).value_counts().items())
        lines.append(f"**Failures:** {len(failures)} ({detail}); see the HTML report for the messages.")
    else:
        lines.append("**Failures:** none.")
    return "\n".join(lines) + "\n"


def event_leaderboard_records(leaderboard: pd.DataFrame, *, digits: int = 4) -> list[dict[str, Any]]:
    """The leaderboard, best model first, as JSON-safe dicts (for a Prefect table artifact)."""
    if leaderboard is None or leaderboard.empty:
        return []
    order = model_order(leaderboard)
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).set_index(MODEL).reindex(order).reset_index()
    return [{str(k): sig_round(v, digits) for k, v in row.items()} for row in lb.to_dict(orient="records")]


def _md(text: str) -> str:
    """Neutralise Markdown table pipes and raw HTML from user data (tickers, model names, messages)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
