"""The comparative backtest report as one offline HTML file (plotly.js beside it, or inlined), rendered from tables."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from common.errors import ConfigError
from common.fileio import atomic_write, atomic_write_text
from common.redact import redact
from common.schema import (
    BEATS_NAIVE_DM,
    BENCHMARK,
    BEST_MODEL,
    BLOCK_SIZE,
    BUY_HOLD_RETURN,
    CALENDAR,
    CC_P,
    CHECK,
    CHRISTOFFERSEN_P,
    COUNT,
    CUTOFF,
    DETAIL,
    ERROR_TYPE,
    FIT_SECONDS,
    FOLD,
    HIT_RATE,
    ID,
    IN_MCS,
    INTERVAL_LEVEL,
    KUPIEC_P,
    LOSS,
    MASE,
    MCS_P_VALUE,
    MCS_SIZE,
    MEAN_RANK,
    MESSAGE,
    METRIC,
    MODEL,
    N_FAILURES,
    N_INTERVALS,
    N_MODELS,
    N_OBS,
    N_SERIES,
    NAIVE,
    OOS_R2,
    P_LESS,
    P_VALUE,
    PINBALL,
    PREDICT_SECONDS,
    REFERENCE,
    REFIT,
    REFIT_EVERY,
    REPS,
    RULE,
    SCALED_CRPS,
    SECONDS,
    SPA_P_CONSISTENT,
    SPA_P_LOWER,
    SPA_P_UPPER,
    STAT,
    TARGET,
    TRAIN_END,
    TRAIN_START,
    TURNOVER,
    VALUE,
    VIOLATION_RATE,
    H,
)
from features.calendar import check_calendar, exchange_for, sessions
from reports import charts
from reports.data import (
    LEADERBOARD_METRICS,
    METRICS,
    RETURN_METRICS,
    TRADING_METRICS,
    ReportInput,
    highlighted_models,
    model_order,
    require_columns,
    series_ids,
)
from reports.diagnosis import TITLE as DIAGNOSIS_TITLE
from reports.diagnosis import diagnosis_sentences, diagnosis_view, has_diagnosis, naive_in, tuning_view
from reports.format import fmt_num, fmt_p, fmt_pct, fmt_seconds, fmt_value
from reports.tables import Cell, Formatter, Table, build_table, sessions_table
from reports.verdict import DEFAULT_MCS_SIZE, DM_NAME, SPA_NAME, dm_versus_naive, verdict

log = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
MAX_EQUITY_CHARTS = 12  # equity curves are long; the per-series trading table covers the rest
TEMPLATE = "report.html.j2"

# Rows of the data-quality table (ingest.quality) that are no check: the row counts before and after validation,
# and facts about the series (its target column and calendar, counted over rows_out).
ROW_COUNTS = ("rows_in", "rows_out")
SERIES_FACTS = (TARGET, CALENDAR)
CALENDAR_CHECK = CALENDAR
PLAN_ORDER = ("horizon", "step", "windows", "gap", "window_type", "first_cutoff", "train_size", "min_train_size")

# (id, heading) of every section, in page order; each is always rendered, with a note when its table is absent.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("run", "Run"),
    ("leaderboard", "Leaderboard"),
    ("significance", "Diebold–Mariano tests against naive"),
    ("horizon", "Error by horizon step"),
    ("forecasts", "Actual vs forecast"),
    ("folds", "Error across folds"),
    ("refit", "Refit policy trade-off"),
    ("trading", "Trading evaluation"),
    ("failures", "Failures"),
    ("quality", "Data quality"),
)
SECTION_IDS = tuple(s for s, _ in SECTIONS)
# Only in runs with covariate or tuning variants, after the significance section: other runs render as before.
DIAGNOSIS_SECTION = ("diagnosis", DIAGNOSIS_TITLE)
# Only in runs that stored interval tests (older runs have none), after the significance and diagnosis sections.
INTERVALS_SECTION = ("intervals", "Interval calibration")


@dataclass(frozen=True)
class Figure:
    html: Markup
    caption: str = ""


def render_html(
    data: ReportInput,
    out_path: Path,
    *,
    title: str = "pricecast backtest report",
    last_folds: int = 3,
    max_series: int = 24,
    plotlyjs: Literal["directory", "inline"] = "directory",
    alpha: float = 0.05,
) -> Path:
    """Write the report to `out_path` atomically and return it.

    Args:
        last_folds: folds per series shown in the actual-vs-forecast charts (keeps the file small).
        max_series: series that get their own forecast and equity chart; the tables still list every series.
        plotlyjs: "directory" writes plotly.min.js beside the HTML once (shared by reports in that folder);
            "inline" embeds it (+4.8 MB) for a single self-contained file. Never a CDN: the report opens offline.
    """
    _check(data)
    context = build_context(data, title=title, last_folds=last_folds, max_series=max_series, alpha=alpha)
    return write_page(TEMPLATE, context, Path(out_path), plotlyjs=plotlyjs)


def write_page(
    template: str, context: dict[str, Any], out_path: Path, *, plotlyjs: Literal["directory", "inline"]
) -> Path:
    """Render `template` with `context` plus the plotly.js script tag and write it atomically to `out_path`."""
    if plotlyjs == "inline":
        from plotly.offline import get_plotlyjs

        # plotly.min.js contains no "</script>" (plotly inlines it the same way in write_html).
        script = Markup("<script>") + Markup(get_plotlyjs()) + Markup("</script>")
    else:
        _write_plotlyjs(out_path.parent / PLOTLY_JS)
        script = Markup(f'<script src="{PLOTLY_JS}" charset="utf-8"></script>')
    html = _environment().get_template(template).render(**context, plotly_script=script)
    atomic_write_text(out_path, html)
    log.info("wrote %s (%.0f kB)", out_path, len(html) / 1024)
    return out_path


def _check(data: ReportInput) -> None:
    require_columns(data.leaderboard, [MODEL], table="leaderboard")
    if data.forecasts is not None and not data.forecasts.empty:
        require_columns(data.forecasts, [ID, MODEL, FOLD, CUTOFF], table="forecasts")
    if data.metrics is not None and not data.metrics.empty:
        require_columns(data.metrics, [ID, MODEL, FOLD, H, METRIC, VALUE], table="metrics")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every string from the data (tickers, model names, error messages) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _write_plotlyjs(path: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode("utf-8")
    if path.exists() and path.stat().st_size == len(js):
        return
    atomic_write(path, lambda fh: fh.write(js))


def build_context(
    data: ReportInput, *, title: str, last_folds: int = 3, max_series: int = 24, alpha: float = 0.05
) -> dict[str, Any]:
    """Everything the template shows, as plain values, tables and figure fragments (testable without rendering)."""
    order = model_order(data.leaderboard)
    series = series_ids(data)
    meta = data.meta or {}
    diagnosis = _diagnosis_section(data, alpha)
    intervals = _intervals_section(data, order, meta, alpha)
    highlighted = highlighted_models(data.leaderboard)
    return {
        "title": title,
        "sections": _sections(with_diagnosis=diagnosis is not None, with_intervals=intervals is not None),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "verdict": verdict(data.leaderboard, data.dm, alpha=alpha, mcs=data.mcs, spa=data.spa),
        "audit": meta.get("leakage_audit") or None,
        "run": _run_section(data, meta, series),
        "leaderboard": _leaderboard_section(data, order),
        "significance": _significance_section(data, order, alpha),
        "diagnosis": diagnosis,
        "intervals": intervals,
        "errors_shown": [m for m in order if m in highlighted] if highlighted is not None else None,
        "horizon": _figure(charts.horizon_chart(data.metrics, order, highlighted=highlighted), "fig-horizon"),
        "forecasts": _forecast_section(data, order, series, last_folds, max_series),
        "folds": _figure(
            charts.fold_chart(data.metrics, data.forecasts, data.fold_info, order, highlighted=highlighted), "fig-folds"
        ),
        "refit": _refit_section(data.refit_tradeoff),
        "trading": _trading_section(data, order, series, max_series),
        "failures": _failures_section(data.failures),
        "quality": _quality_section(data.quality),
        "glossary": [(info.label, info.caption) for key, info in METRICS.items() if key in _present_metrics(data)],
    }


def _figure(fig: Any, div_id: str, *, height: int = 340) -> Markup | None:
    return charts.to_html(fig, div_id, height=height)


# ---------------------------------------------------------------- run header


def _run_section(data: ReportInput, meta: Mapping[str, Any], series: list[str]) -> dict[str, Any]:
    tickers = meta.get("tickers") or series
    facts: list[tuple[str, str]] = []
    for label, value in (
        ("Source", meta.get("source")),
        ("Tickers", ", ".join(map(str, tickers)) if tickers else None),
        ("Fold plan", _describe_plan(meta.get("plan"), data.fold_info, data.quality)),
        ("Refit policy", _describe(meta.get("refit_every"))),
        ("Interval bands", _describe_bands(meta)),
        ("Global models", _describe_global(meta, len(tickers) if tickers else 0)),
        ("Total time", fmt_seconds(meta["elapsed_seconds"]) if meta.get("elapsed_seconds") is not None else None),
        ("Git commit", meta.get("git_commit")),
        ("Run id", meta.get("flow_run_id")),
        ("Created", fmt_value(meta["created_at"]) if meta.get("created_at") is not None else None),
    ):
        if value not in (None, ""):
            facts.append((label, redact(value)))
    known = {"source", "tickers", "plan", "refit_every", "elapsed_seconds", "git_commit", "flow_run_id", "created_at"}
    known |= {"sessions", "versions", "intervals", "conformal_models", "calibration_windows", "conformal_window"}
    known |= {"conformal_rows_without_95_band", "calibration_seconds", "global_models"}  # the 2nd: the time table's
    # Other facts (the source path, model parameters) may hold a URL with a password or a token: masked.
    facts += [
        (_META_LABELS.get(str(k), str(k).replace("_", " ").capitalize()), redact(_describe_meta(str(k), v) or ""))
        for k, v in meta.items()
        if k not in known and v is not None
    ]

    versions = meta.get("versions") or {}
    return {
        "facts": facts,
        "sessions": sessions_table(meta.get("sessions")),
        "versions": [(str(k), str(v)) for k, v in versions.items()] if isinstance(versions, Mapping) else [],
        "timings": _timings_table(
            data.timings, model_order(data.leaderboard), calibration=meta.get("calibration_seconds")
        ),
    }


_META_LABELS = {
    "path": "Path",
    "models": "Model parameters",
    "leakage_audit": "Leakage audit",
    "plan_fingerprint": "Fold plan fingerprint",
    "trading_cost_bps": "Trading cost",
    "date_mismatches": "Calendar vs data date mismatches",
}


def _describe_global(meta: Mapping[str, Any], n_series: int) -> str | None:
    """What a global model's rows mean: one network across the series, its refits counted once per series."""
    names = [str(m) for m in meta.get("global_models") or []]
    if not names:
        return None
    return (
        f"{', '.join(names)}: one network across all {n_series} series, fitted once per refit on every series cut at "
        "the fold's earliest cutoff; the time table counts each refit once per series and shares its seconds evenly"
    )


def _describe_bands(meta: Mapping[str, Any]) -> str | None:
    """The run's interval option in one line: 'split-conformal for every model · 20 calibration origins'."""
    intervals = meta.get("intervals")
    conformal = [str(m) for m in meta.get("conformal_models") or []]
    if intervals is None and not conformal:
        return None
    if intervals == "conformal":
        text = "split-conformal for every model"
    elif conformal:
        text = f"each model's own; split-conformal for {', '.join(conformal)}"
    else:
        return "each model's own"
    parts = [text]
    if meta.get("calibration_windows") is not None:
        parts.append(f"{fmt_value(meta['calibration_windows'])} calibration origins")
    if meta.get("conformal_window") is not None:
        parts.append(f"each band from the latest {fmt_value(meta['conformal_window'])} known errors")
    bandless = meta.get("conformal_rows_without_95_band") or {}
    if bandless:  # too few known errors at a cutoff (a short series): those rows have no 95% band and are not scored
        parts.append("no 95% band on " + ", ".join(f"{n} {m} rows" for m, n in bandless.items()))
    return " · ".join(parts)


def _describe_plan(plan: Any, fold_info: pd.DataFrame | None, quality: pd.DataFrame | None) -> str | None:
    """The fold plan as 'k v · k v' with what the run resolved filled in and unset options left out.

    A plan given by `windows` has no first cutoff and an expanding one no train size: the folds say what they were
    (the first cutoff; the sessions the first fold trained on), so those are shown instead of a dash.
    """
    if not isinstance(plan, Mapping):
        return _describe(plan)
    items = {str(k): v for k, v in plan.items() if v is not None and v != ""}
    folds = fold_info if fold_info is not None and not fold_info.empty and CUTOFF in fold_info.columns else None
    if "first_cutoff" not in items and folds is not None:
        items["first_cutoff"] = pd.to_datetime(folds[CUTOFF]).min()
    if "train_size" not in items and folds is not None:
        first_fold = _first_training_sessions(folds, quality)
        if first_fold:
            items["train_size"] = first_fold
    elif "train_size" in items:
        items["train_size"] = f"{fmt_value(items['train_size'])} sessions"
    if "min_train_size" in items:
        items["min_train_size"] = f"{fmt_value(items['min_train_size'])} sessions"
    labels = {"first_cutoff": "first cutoff", "train_size": "train size", "min_train_size": "min train size"}
    first = [k for k in PLAN_ORDER if k in items]  # meta.json stores keys sorted; read them in the plan's order
    items = {k: items[k] for k in [*first, *(k for k in items if k not in first)]}
    return " · ".join(
        f"{labels.get(k, k.replace('_', ' '))} {v if isinstance(v, str) else fmt_value(v)}" for k, v in items.items()
    )


def _first_training_sessions(fold_info: pd.DataFrame, quality: pd.DataFrame | None) -> str | None:
    """Sessions in the first fold's training window (train_start..train_end), counted on each series' calendar.

    'at fold 0' because an expanding window grows by `step` sessions per fold; a range when the series differ.
    """
    if not {ID, FOLD, TRAIN_START, TRAIN_END}.issubset(fold_info.columns):
        return None
    first = fold_info[fold_info[FOLD] == fold_info[FOLD].min()]
    calendars = _calendars(quality)
    counts = []
    for uid, start, end in zip(first[ID].astype(str), first[TRAIN_START], first[TRAIN_END], strict=True):
        if pd.isna(start) or pd.isna(end):
            continue
        try:
            counts.append(len(sessions(check_calendar(calendars.get(uid) or exchange_for(uid)), start, end)))
        except ConfigError:  # a calendar this installation does not know: the count is unknown, not zero
            return None
    if not counts:
        return None
    low, high = min(counts), max(counts)
    span = fmt_num(low) if low == high else f"{fmt_num(low)}–{fmt_num(high)}"
    return f"{span} sessions at fold 0"


def _calendars(quality: pd.DataFrame | None) -> dict[str, str]:
    """Each series' calendar as the data-quality table records it ('XNYS (assumed)' -> 'XNYS')."""
    if quality is None or quality.empty or not {ID, CHECK, DETAIL}.issubset(quality.columns):
        return {}
    rows = quality[quality[CHECK].astype(str) == CALENDAR_CHECK]
    return {str(u): str(d).split(" (")[0] for u, d in zip(rows[ID], rows[DETAIL], strict=True) if str(d).strip()}


def _describe_meta(key: str, value: Any) -> str | None:
    """A run-meta value as a reader wants it: the audit's sentence, only the parameters that were set, units."""
    if key == "leakage_audit" and isinstance(value, Mapping):
        return str(value.get("summary") or _describe(value))
    if key == "models" and isinstance(value, Mapping):
        set_params = [f"{name}: {_describe(params)}" for name, params in value.items() if params]
        return "; ".join(set_params) or "defaults for every model"
    if key == "trading_cost_bps":
        return f"{float(value):g} bps per unit of turnover" if isinstance(value, int | float) else fmt_value(value)
    return _describe(value)


def _describe(value: Any) -> str | None:
    """A dict as 'k v · k v', a list as 'a, b', anything else as text."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return " · ".join(f"{k.replace('_', ' ')} {fmt_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value)
    return fmt_value(value)


def _timings_table(
    timings: pd.DataFrame | None, order: list[str], *, calibration: Mapping[str, float] | None = None
) -> Table | None:
    """Fit and predict seconds per model over the scored folds, plus the conformal calibration origins' seconds
    (run meta `calibration_seconds`) when the run had any: they are part of what the model cost."""
    if timings is None or timings.empty:
        return None
    t = timings.assign(**{MODEL: timings[MODEL].astype(str)})
    t = t.assign(total=t[FIT_SECONDS].fillna(0) + t[PREDICT_SECONDS].fillna(0))
    agg = t.groupby(MODEL).agg(
        units=(FIT_SECONDS, "size"),
        refits=(REFIT, "sum") if REFIT in t.columns else (FIT_SECONDS, "size"),
        fit=(FIT_SECONDS, "sum"),
        predict=(PREDICT_SECONDS, "sum"),
        total=("total", "sum"),
    )
    agg["per_unit"] = agg["total"] / agg["units"]  # a scored (series, fold) unit's own cost
    columns = ["units", "refits", "fit", "predict", "total", "per_unit", "share"]
    if calibration:
        agg["calibration"] = pd.Series({str(k): float(v) for k, v in calibration.items()}).reindex(agg.index).fillna(0)
        agg["total"] = agg["total"] + agg["calibration"]
        columns.insert(columns.index("total"), "calibration")
    agg["share"] = agg["total"] / agg["total"].sum() if agg["total"].sum() > 0 else float("nan")
    agg = agg.reindex([m for m in order if m in agg.index] + [m for m in agg.index if m not in order])
    agg = agg[columns].reset_index()
    return build_table(
        agg,
        labels={
            MODEL: "model",
            "units": "units (series × fold)",
            "refits": "refits",
            "fit": "fit",
            "predict": "predict",
            "calibration": "calibration origins",
            "total": "total",
            "per_unit": "per unit",
            "share": "share",
        },
        formatters={
            "fit": fmt_seconds,
            "predict": fmt_seconds,
            "calibration": fmt_seconds,
            "total": fmt_seconds,
            "per_unit": fmt_seconds,
            "share": lambda v: "–" if pd.isna(v) else f"{v * 100:.0f}%",
            "refits": lambda v: fmt_num(int(v)),
        },
    )


# ---------------------------------------------------------------- leaderboard


# Probabilistic and return scores the leaderboard may carry beside the point metrics, each ranked by its direction.
SCORE_METRICS = (SCALED_CRPS, PINBALL, OOS_R2)


def _metric_columns(frame: pd.DataFrame, leading: list[str]) -> list[str]:
    ordered = [
        *LEADERBOARD_METRICS,
        *SCORE_METRICS,
        MEAN_RANK,
        "rank",
        BEATS_NAIVE_DM,
        IN_MCS,
        MCS_P_VALUE,
        N_SERIES,
        N_FAILURES,
    ]
    cols = leading + [c for c in ordered if c in frame.columns]
    extras = [c for c in frame.columns if c not in cols and pd.api.types.is_numeric_dtype(frame[c])]
    return cols + extras


def _tick(value: Any) -> str:
    """✓ for a true flag, blank otherwise (missing means 'not tested', which is not 'no')."""
    return "✓" if not pd.isna(value) and bool(value) else ""


def _leaderboard_section(data: ReportInput, order: list[str]) -> dict[str, Any]:
    # Rows in the order the backtest ranked them: the report never re-sorts the leaderboard.
    lb = data.leaderboard.copy()
    lb[MODEL] = lb[MODEL].astype(str)
    highlight = [*LEADERBOARD_METRICS, *SCORE_METRICS, MEAN_RANK]
    overall = build_table(
        lb, _metric_columns(lb, [MODEL]), highlight=highlight, labels={MODEL: "model"}, formatters={IN_MCS: _tick}
    )
    _mark(overall, BEATS_NAIVE_DM, lambda text: text == "yes", "good")
    _mark(overall, IN_MCS, lambda text: text == "✓", "good")

    per_series = None
    ps = data.per_series
    if ps is not None and not ps.empty:
        ps = ps.copy()
        ps[ID], ps[MODEL] = ps[ID].astype(str), ps[MODEL].astype(str)
        if MEAN_RANK not in ps.columns and MASE in ps.columns:
            ps["rank"] = ps.groupby(ID)[MASE].rank(method="min")
        key = MEAN_RANK if MEAN_RANK in ps.columns else "rank" if "rank" in ps.columns else None
        series_pos = {u: i for i, u in enumerate(dict.fromkeys(ps[ID]))}
        ps["_s"] = ps[ID].map(series_pos)
        ps = ps.sort_values(["_s", key] if key else ["_s"]).drop(columns="_s")
        per_series = build_table(
            ps,
            _metric_columns(ps, [ID, MODEL]),
            highlight=[*highlight, "rank"],
            group=ID,
            labels={ID: "series", MODEL: "model", "rank": "MASE rank"},
            formatters={IN_MCS: _tick},
        )
    return {"overall": overall, "per_series": per_series, "has_mcs": IN_MCS in lb.columns}


def _present_metrics(data: ReportInput) -> set[str]:
    present = set(data.leaderboard.columns)
    for frame in (data.trading, data.per_series):
        if frame is not None and not frame.empty:
            present |= set(frame.columns)
    return present


# ---------------------------------------------------------------- significance


def _significance_section(data: ReportInput, order: list[str], alpha: float) -> dict[str, Any]:
    """A one-row-per-model table (the test the verdict uses) plus p-value heatmaps by horizon and pairwise."""
    out: dict[str, Any] = {"table": None, "by_h": None, "pairwise": None, "alpha": alpha, "test": DM_NAME}
    out["multiple"] = _multiple_testing(data, order)
    results = dm_versus_naive(data.leaderboard, data.dm, alpha=alpha)
    level = f"{alpha * 100:g}%"
    if results:
        records = [
            {
                MODEL: r.model,
                LOSS: r.loss,
                H: r.h,
                STAT: r.stat,
                P_VALUE: r.p_value,
                P_LESS: r.p_less,
                N_OBS: r.n,
                "beats": "yes" if r.significant else "no",
            }
            for m in order
            if (r := results.get(m)) is not None
        ]
        frame = pd.DataFrame(records).dropna(axis=1, how="all")
        table = build_table(
            frame,
            labels={
                MODEL: "model",
                LOSS: "loss",
                H: "h",
                STAT: "DM stat",
                P_VALUE: "p (two-sided)",
                P_LESS: "p (model better)",
                N_OBS: "n",
                "beats": f"beats naive at {level}?",
            },
            formatters={
                H: lambda v: "all" if pd.isna(v) else fmt_num(int(v)),
                N_OBS: lambda v: fmt_num(v if pd.isna(v) else int(v)),
                P_VALUE: lambda v: fmt_p(v, digits=3),
                P_LESS: lambda v: fmt_p(v, digits=3),
            },
        )
        out["table"] = _mark(table, "beats", lambda text: text == "yes", "good")

    dm = data.dm
    if dm is not None and not dm.empty and {MODEL, H}.issubset(dm.columns):
        rows = dm[dm[REFERENCE].astype(str) == NAIVE] if REFERENCE in dm.columns else dm
        h = pd.to_numeric(rows[H], errors="coerce")
        per_h = rows[h.notna() & (h > 0)]
        pcol = P_LESS if P_LESS in per_h.columns else P_VALUE
        if len(per_h) and per_h[H].nunique() > 1 and pcol in per_h.columns:
            label = per_h[MODEL].astype(str) + (" · " + per_h[LOSS].astype(str) if LOSS in per_h.columns else "")
            matrix = per_h.assign(_row=label).pivot_table(index="_row", columns=H, values=pcol, aggfunc="first")
            rank = {m: i for i, m in enumerate(order)}
            matrix = matrix.loc[sorted(matrix.index, key=lambda r: (rank.get(r.split(" · ")[0], len(rank)), r))]
            matrix.columns = [int(c) for c in matrix.columns]
            fig = charts.pvalue_heatmap(
                matrix, title="one-sided p-value vs naive, by horizon step", xlabel="h", ylabel=""
            )
            out["by_h"] = _figure(fig, "fig-dm-h", height=130 + 26 * len(matrix))
    if data.dm_pairwise is not None and not data.dm_pairwise.empty:
        m = data.dm_pairwise
        fig = charts.pvalue_heatmap(m, title="pairwise DM p-values (row vs column)", xlabel="", ylabel="")
        out["pairwise"] = _figure(fig, "fig-dm-pairwise", height=140 + 36 * len(m))
    return out


def _mark(table: Table, key: str, test: Any, css: str) -> Table:
    """Add class `css` to the cells of column `key` whose text passes `test`."""
    idx = next((i for i, c in enumerate(table.columns) if c.key == key), None)
    if idx is None:
        return table
    for row in table.rows:
        cell = row[idx]
        if test(cell.text):
            row[idx] = Cell(cell.text, f"{cell.classes} {css}".strip(), cell.title)
    return table


def _sections(*, with_diagnosis: bool, with_intervals: bool) -> tuple[tuple[str, str], ...]:
    """The page's sections: SECTIONS plus the optional ones this run has, right after the significance section."""
    extra = [s for s, on in ((DIAGNOSIS_SECTION, with_diagnosis), (INTERVALS_SECTION, with_intervals)) if on]
    at = SECTION_IDS.index("significance") + 1
    return (*SECTIONS[:at], *extra, *SECTIONS[at:])


# ---------------------------------------------------------------- multiple testing


def _multiple_testing(data: ReportInput, order: list[str]) -> dict[str, Any] | None:
    """The Model Confidence Set as a table and one sentence per SPA test; None for a run stored before them."""
    mcs, spa = data.mcs, data.spa
    has_mcs = mcs is not None and not mcs.empty and {MODEL, IN_MCS, MCS_P_VALUE}.issubset(mcs.columns)
    has_spa = spa is not None and not spa.empty and {BENCHMARK, SPA_P_CONSISTENT}.issubset(spa.columns)
    if not has_mcs and not has_spa:
        return None
    size = DEFAULT_MCS_SIZE
    table, mcs_tested = None, False
    if mcs is not None and has_mcs:
        sizes = pd.to_numeric(mcs[MCS_SIZE], errors="coerce").dropna() if MCS_SIZE in mcs.columns else pd.Series()
        size = float(sizes.iloc[0]) if len(sizes) else DEFAULT_MCS_SIZE
        mcs_tested = bool(mcs[MCS_P_VALUE].notna().any())
        frame = mcs.assign(**{MODEL: mcs[MODEL].astype(str)})
        rank = {m: i for i, m in enumerate(order)}
        frame = frame.assign(_o=frame[MODEL].map(lambda m: rank.get(m, len(rank)))).sort_values(["_o", MODEL])
        table = build_table(
            frame,
            [MODEL, IN_MCS, MCS_P_VALUE],
            labels={MODEL: "model", IN_MCS: f"in the {size * 100:g}% set", MCS_P_VALUE: "MCS p-value"},
            formatters={IN_MCS: _tick, MCS_P_VALUE: lambda v: fmt_p(v, digits=2)},
        )
        _mark(table, IN_MCS, lambda text: text == "✓", "good")
    spa_lines = [] if spa is None or not has_spa else [_spa_sentence(row) for _, row in spa.iterrows()]
    return {"mcs": table if mcs_tested else None, "mcs_shown": has_mcs, "size": size, "spa": spa_lines}


def _spa_sentence(row: pd.Series) -> str:
    """ "Hansen's SPA test of 'no model beats naive' over 9 models and 20 folds: p = 0.66 (consistent; ...)"."""

    def get(key: str) -> Any:
        value = row.get(key)
        return None if value is None or pd.isna(value) else value

    benchmark = str(row[BENCHMARK])
    n_models, n_folds = get(N_MODELS), get(N_OBS)
    over = []
    if n_models is not None:
        over.append(f"{fmt_num(int(n_models))} model{'s' if int(n_models) != 1 else ''}")
    if n_folds is not None:
        over.append(f"{fmt_num(int(n_folds))} folds")
    head = f"{SPA_NAME} of 'no model beats {benchmark}'" + (f" over {' and '.join(over)}" if over else "")
    p = get(SPA_P_CONSISTENT)
    if p is None:
        return f"{head}: not tested (too few folds, or no model besides {benchmark})."
    bounds = [f"{name} {fmt_p(get(key))}" for name, key in (("lower", SPA_P_LOWER), ("upper", SPA_P_UPPER))]
    bounds = [b for b in bounds if not b.endswith(" –")]
    text = f"{head}: p = {fmt_p(p)}" if not fmt_p(p).startswith("<") else f"{head}: p {fmt_p(p)}"
    text += f" (consistent; {', '.join(bounds)})" if bounds else " (consistent)"
    method = ["stationary bootstrap"]
    if (block := get(BLOCK_SIZE)) is not None:
        method.append(f"mean block length {fmt_num(int(block))}")
    if (reps := get(REPS)) is not None:
        method.append(f"{fmt_num(int(reps))} replications")
    method.append("seed fixed")
    best = get(BEST_MODEL)
    lowest = f" The alternative with the lowest mean loss is {best}." if best is not None else ""
    return f"{text}, {', '.join(method)}.{lowest}"


# ---------------------------------------------------------------- interval calibration


def _intervals_section(
    data: ReportInput, order: list[str], meta: Mapping[str, Any], alpha: float
) -> dict[str, Any] | None:
    """Nominal vs observed coverage and the Kupiec / Christoffersen p-values per model and level, rejections
    marked; None for a run stored before the interval tests (or one where no model had a band)."""
    tests = data.interval_tests
    if tests is None or tests.empty or not {MODEL, INTERVAL_LEVEL, VIOLATION_RATE}.issubset(tests.columns):
        return None
    t = tests.assign(**{MODEL: tests[MODEL].astype(str)})
    rank = {m: i for i, m in enumerate(order)}
    t = t.assign(_o=t[MODEL].map(lambda m: rank.get(m, len(rank))))
    t = t.sort_values(["_o", MODEL, INTERVAL_LEVEL]).drop(columns="_o")
    t = t.assign(nominal=t[INTERVAL_LEVEL], observed=1 - pd.to_numeric(t[VIOLATION_RATE], errors="coerce"))
    p_columns = [c for c in (KUPIEC_P, CHRISTOFFERSEN_P, CC_P) if c in t.columns]
    table = build_table(
        t,
        [MODEL, "nominal", "observed", N_INTERVALS, *p_columns],
        labels={
            MODEL: "model",
            "nominal": "nominal coverage",
            "observed": "observed coverage",
            N_INTERVALS: "n",
            KUPIEC_P: "Kupiec p",
            CHRISTOFFERSEN_P: "Christoffersen p",
            CC_P: "cond. coverage p",
        },
        formatters={
            "nominal": lambda v: f"{float(v):g}%",
            "observed": lambda v: fmt_pct(v, digits=3),
            N_INTERVALS: lambda v: fmt_num(v if pd.isna(v) else int(v)),
            **{c: _p3 for c in p_columns},
        },
        group=MODEL,
    )
    titles = {
        "observed": "1 − violation rate: the share of actuals inside the band",
        N_INTERVALS: "intervals tested (series × fold × horizon step)",
        KUPIEC_P: "Kupiec unconditional coverage LR test, χ²(1): is the violation rate the nominal one?",
        CHRISTOFFERSEN_P: "Christoffersen independence LR test, χ²(1): are violations independent of the last one?",
        CC_P: "Conditional coverage (Kupiec + Christoffersen), χ²(2)",
    }
    table.columns[:] = [replace(c, title=titles.get(c.key, c.title)) for c in table.columns]
    rejected = 0
    for column in p_columns:
        values = pd.to_numeric(t[column], errors="coerce").to_numpy()
        idx = next(i for i, c in enumerate(table.columns) if c.key == column)
        for row, value in zip(table.rows, values, strict=True):
            if value < alpha:  # NaN (not tested) is never a rejection
                cell = row[idx]
                row[idx] = Cell(cell.text, f"{cell.classes} rejected".strip(), cell.title or f"rejected at {alpha:g}")
                rejected += 1
    return {
        "table": table,
        "alpha": alpha,
        "rejected": rejected,
        "bands": _bands_sentence(meta, order),
        "overlap": _overlapping_horizons(meta),
    }


def _p3(value: Any) -> str:
    return fmt_p(value, digits=3)


def _bands_sentence(meta: Mapping[str, Any], order: list[str]) -> str | None:
    """Which models' bands are split-conformal and how they were calibrated, from the run meta; None if unknown."""
    intervals = meta.get("intervals")
    conformal = [str(m) for m in meta.get("conformal_models") or []]
    if intervals is None and not conformal:
        return None  # a run stored before conformal bands: every band was the model's own
    if intervals == "conformal":
        who = "every model's bands are split-conformal"
    elif conformal:
        rank = {m: i for i, m in enumerate(order)}
        named = sorted(conformal, key=lambda m: (rank.get(m, len(rank)), m))
        listed = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
        who = f"the bands of {listed} are split-conformal (no native intervals); the others are the models' own"
    else:
        return "Every model's bands are its own (native intervals); none is split-conformal."
    windows, window = meta.get("calibration_windows"), meta.get("conformal_window")  # backtest.units.interval_meta
    if not isinstance(windows, int | float) or not isinstance(window, int | float) or pd.isna(windows):
        return f"{who[0].upper()}{who[1:]}."
    return (
        f"{who[0].upper()}{who[1:]}: calibrated on the latest {int(window)} known forecast errors per horizon step at "
        f"each cutoff, starting from {int(windows)} calibration origins before the first fold."
    )


def _overlapping_horizons(meta: Mapping[str, Any]) -> bool:
    """True when h-step targets of consecutive folds share sessions (horizon > step): clustering is partly built in."""
    plan = meta.get("plan")
    if not isinstance(plan, Mapping):
        return False
    horizon, step = plan.get("horizon"), plan.get("step")
    return isinstance(horizon, int) and isinstance(step, int) and horizon > step


# ---------------------------------------------------------------- did covariates or tuning help?


def _diagnosis_section(data: ReportInput, alpha: float) -> dict[str, Any] | None:
    """The variants table, one sentence per model and the chosen hyperparameters; None for a run without variants."""
    diagnosis = data.diagnosis
    if diagnosis is None or not has_diagnosis(diagnosis):
        return None
    naive_ran = naive_in(data.leaderboard)
    tuning, omitted = tuning_view(data.tuning)
    return {
        "table": diagnosis_view(diagnosis, alpha=alpha),
        "sentences": diagnosis_sentences(diagnosis, alpha=alpha, naive_ran=naive_ran),
        "tuning": tuning,
        "tuning_omitted": omitted,
        "alpha": alpha,
        "test": DM_NAME,
    }


# ---------------------------------------------------------------- charts per series


def _forecast_section(
    data: ReportInput, order: list[str], series: list[str], last_folds: int, max_series: int
) -> dict[str, Any]:
    figures = []
    if data.forecasts is not None and not data.forecasts.empty:
        visible = _initially_visible(order)
        # Split once: filtering the whole table per series is quadratic in the number of series.
        by_series = _split(data.forecasts, series[:max_series])
        info = (
            _split(data.fold_info, series[:max_series])
            if data.fold_info is not None and not data.fold_info.empty
            else {}
        )
        for i, uid in enumerate(series[:max_series]):
            if uid not in by_series:
                continue
            fig = charts.forecast_chart(
                by_series[uid], uid, order, fold_info=info.get(uid), last_folds=last_folds, visible=visible
            )
            html = _figure(fig, f"fig-forecast-{i}", height=320)
            if html is not None:
                figures.append(html)
    return {
        "figures": figures,
        "omitted": max(0, len(series) - max_series),
        "last_folds": last_folds,
        "visible": [m for m in _initially_visible(order) if m in order],
    }


def _initially_visible(order: list[str]) -> list[str]:
    """The best model other than naive, and naive: the comparison the report is about."""
    return [*[m for m in order if m != NAIVE][:1], NAIVE]


def _split(frame: pd.DataFrame, ids: list[str]) -> dict[str, pd.DataFrame]:
    keys = frame[ID].astype(str)
    subset = frame[keys.isin(ids)]
    return {str(k): g for k, g in subset.groupby(keys[keys.isin(ids)], sort=False)}


def _trading_section(data: ReportInput, order: list[str], series: list[str], max_series: int) -> dict[str, Any]:
    cost = (data.meta or {}).get("trading_cost_bps")
    out: dict[str, Any] = {
        "summary": None,
        "table": None,
        "figure": None,
        "rules": [],
        "omitted": 0,
        "idle": 0,
        "cost_bps": cost,
    }
    tr = data.trading
    if tr is not None and not tr.empty:
        tr = tr.assign(**{ID: tr[ID].astype(str), MODEL: tr[MODEL].astype(str)})
        metrics = [c for c in TRADING_METRICS if c in tr.columns]
        keys = [MODEL, RULE] if RULE in tr.columns else [MODEL]
        summary = tr.groupby(keys, sort=False)[metrics].mean().reset_index()
        summary["_o"] = summary[MODEL].map({m: i for i, m in enumerate(order)})
        summary = summary.sort_values(["_o", *keys[1:]]).drop(columns="_o")
        highlight = [c for c in metrics if c != BUY_HOLD_RETURN]
        percent: dict[str, Formatter] = {c: _pct for c in RETURN_METRICS}
        out["summary"] = build_table(
            summary,
            [*keys, *metrics],
            highlight=highlight,
            labels={MODEL: "model"},
            formatters=percent,
            contenders=_trades(summary),
        )
        series_pos = {u: i for i, u in enumerate(series)}
        tr = tr.assign(_s=tr[ID].map(series_pos), _o=tr[MODEL].map({m: i for i, m in enumerate(order)}))
        tr = tr.sort_values(["_s", "_o"])
        out["table"] = build_table(
            tr,
            [ID, *keys, *metrics],
            highlight=highlight,
            group=ID,
            labels={ID: "series", MODEL: "model"},
            formatters=percent,
            contenders=_trades(tr),
        )
        out["idle"] = int((~_trades(tr)).sum())
    eq = data.equity
    if eq is not None and not eq.empty:
        present = list(dict.fromkeys(eq[ID].astype(str)))
        shown = [u for u in series if u in set(present)] or present
        limit = min(max_series, MAX_EQUITY_CHARTS)
        fig = charts.equity_grid(eq, shown[:limit], order)
        if fig is not None:
            out["figure"] = _figure(fig, "fig-equity", height=int(fig["layout"]["height"]))
            dashes = {"solid": "solid", "dash": "dashed", "dot": "dotted", "dashdot": "dash-dotted"}
            rules = charts.equity_rules(eq)
            out["rules"] = [
                (rule, dashes[charts.RULE_DASHES[i % len(charts.RULE_DASHES)]]) for i, rule in enumerate(rules)
            ]
        out["omitted"] = max(0, len(shown) - limit)
    return out


def _pct(value: Any) -> str:
    return fmt_pct(value, digits=3)


def _trades(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose rule traded at all: zero turnover (or no in-market origin) earns no 'best' drawdown or return."""
    idle = pd.Series(False, index=frame.index)
    if TURNOVER in frame.columns:
        idle |= pd.to_numeric(frame[TURNOVER], errors="coerce").eq(0)
    elif HIT_RATE in frame.columns:  # hit rate is the share of in-market origins: undefined when there were none
        idle |= pd.to_numeric(frame[HIT_RATE], errors="coerce").isna()
    return (~idle).to_numpy()


# ---------------------------------------------------------------- small tables


def _refit_section(refit: pd.DataFrame | None) -> Table | None:
    if refit is None or refit.empty:
        return None
    frame = refit.sort_values([MODEL, REFIT_EVERY]) if {MODEL, REFIT_EVERY}.issubset(refit.columns) else refit
    return build_table(
        frame,
        [
            MODEL,
            REFIT_EVERY,
            MASE,
            SECONDS,
            *[c for c in frame.columns if c not in (MODEL, REFIT_EVERY, MASE, SECONDS)],
        ],
        labels={MODEL: "model", REFIT_EVERY: "refit every (folds)", SECONDS: "time"},
        formatters={SECONDS: fmt_seconds},
        highlight=[MASE],
        group=MODEL if MODEL in frame.columns else None,
    )


def _failures_section(failures: pd.DataFrame | None, *, max_rows: int = 200) -> dict[str, Any]:
    if failures is None or failures.empty:
        return {"count": 0, "summary": None, "table": None, "omitted": 0}
    f = failures.assign(**{MODEL: failures[MODEL].astype(str)})
    if MESSAGE in f.columns:  # error messages can quote a URL or a header with credentials
        f[MESSAGE] = f[MESSAGE].map(lambda m: m if pd.isna(m) else redact(m))
    group = [c for c in (MODEL, ERROR_TYPE) if c in f.columns]
    summary = f.groupby(group).size().rename("failures").reset_index().sort_values("failures", ascending=False)
    ordered = f.sort_values([c for c in (MODEL, ID, FOLD) if c in f.columns])
    table = build_table(
        ordered.head(max_rows),
        [ID, MODEL, FOLD, ERROR_TYPE, MESSAGE],
        labels={ID: "series", MODEL: "model", FOLD: "fold", ERROR_TYPE: "error", MESSAGE: "message"},
        formatters={FOLD: lambda v: fmt_value(v) if pd.isna(v) else str(int(v))},
    )
    return {
        "count": len(f),
        "summary": build_table(summary, labels={MODEL: "model", ERROR_TYPE: "error"}),
        "table": table,
        "omitted": max(0, len(f) - max_rows),
    }


def _quality_section(quality: pd.DataFrame | None) -> dict[str, Any] | None:
    """Rows in -> rows out per series, then a series x check matrix of the cleaning steps and checks (compact for
    many tickers) and the details of every check that counted something.

    rows_in/rows_out are sizes, and target/calendar facts about the series: neither is a finding, so neither is
    counted or highlighted as one.
    """
    if quality is None or quality.empty:
        return None
    q = quality.assign(**{ID: quality[ID].astype(str), CHECK: quality[CHECK].astype(str)})
    if DETAIL in q.columns:
        q[DETAIL] = q[DETAIL].map(lambda d: d if pd.isna(d) else redact(d))
    q["_n"] = pd.to_numeric(q[COUNT], errors="coerce") if COUNT in q.columns else 0
    series = list(dict.fromkeys(q[ID]))
    sizes = _quality_sizes(q, series)
    q = q[~q[CHECK].isin([*ROW_COUNTS, *SERIES_FACTS])]
    checks = list(dict.fromkeys(q[CHECK]))
    table = None
    if checks:
        matrix = q.pivot_table(index=ID, columns=CHECK, values="_n", aggfunc="sum", sort=False)
        matrix = matrix.reindex(columns=checks).reset_index()
        matrix.columns.name = None
        table = build_table(matrix, labels={ID: "series", **{c: c.replace("_", " ") for c in checks}})
        for check in checks:
            _mark(table, check, lambda text: text not in ("0", "–"), "warn")
    flagged = q[q["_n"].fillna(0) > 0]
    findings = build_table(
        flagged,
        [ID, CHECK, COUNT, DETAIL],
        labels={ID: "series", CHECK: "check", COUNT: "count", DETAIL: "detail"},
    )
    return {
        "sizes": sizes,
        "table": table,
        "findings": findings if len(flagged) else None,
        "flagged": len(flagged),
        "checks": len(q),
    }


def _quality_sizes(q: pd.DataFrame, series: list[str]) -> Table | None:
    """One row per series: 'rows in → rows out' and the series' facts (sessions kept, target, calendar)."""
    records = []
    for uid in series:
        rows = q[q[ID] == uid].drop_duplicates(CHECK).set_index(CHECK)
        counts = rows["_n"]
        details = rows[DETAIL] if DETAIL in rows.columns else pd.Series(dtype=object)
        record: dict[str, Any] = {ID: uid}
        if ROW_COUNTS[0] in counts.index or ROW_COUNTS[1] in counts.index:
            n_in, n_out = counts.get(ROW_COUNTS[0]), counts.get(ROW_COUNTS[1])
            record["rows"] = f"{fmt_num(n_in)} → {fmt_num(n_out)}"
            span = details.get(ROW_COUNTS[1])
            record["sessions"] = span if isinstance(span, str) and span.strip() else None
        for fact in SERIES_FACTS:
            value = details.get(fact)
            record[fact] = value if isinstance(value, str) and value.strip() else None
        if len(record) > 1:
            records.append(record)
    if not records:
        return None
    frame = pd.DataFrame(records).dropna(axis=1, how="all")
    labels = {ID: "series", "rows": "rows in → rows out", "sessions": "first .. last session", TARGET: "target"}
    return build_table(frame, labels={**labels, CALENDAR: "calendar"})
