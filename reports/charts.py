"""Plotly figures of the report, built from the tidy tables; each returns None when its table is absent."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.io as pio
from markupsafe import Markup

from common.schema import (
    BUY_AND_HOLD,
    BUY_HOLD,
    CUTOFF,
    DS,
    EQUITY,
    FOLD,
    HI_80,
    HI_95,
    ID,
    LAST_Y,
    LO_80,
    LO_95,
    MAE,
    MASE,
    METRIC,
    MODEL,
    NAIVE,
    RULE,
    VALUE,
    YHAT,
    H,
    Y,
)

PALETTE = (
    "#2563eb",
    "#dc2626",
    "#059669",
    "#d97706",
    "#7c3aed",
    "#db2777",
    "#0891b2",
    "#65a30d",
    "#9333ea",
    "#ea580c",
)
NAIVE_COLOUR = "#6b7280"
ACTUAL_COLOUR = "#111827"

# Figures are plain dicts in plotly's JSON schema: building graph_objects validates every property and costs ~100x
# more, which adds up over one chart per series. A small template instead of plotly's default keeps each embedded
# figure a few kB instead of ~10 kB.
Figure = dict[str, Any]
_TEMPLATE = {
    "layout": {
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12, "color": "#1f2937"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": list(PALETTE),
        "xaxis": {"gridcolor": "#eef0f3", "linecolor": "#d1d5db", "zeroline": False, "automargin": True},
        "yaxis": {"gridcolor": "#eef0f3", "linecolor": "#d1d5db", "zeroline": False, "automargin": True},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        "margin": {"l": 50, "r": 16, "t": 36, "b": 40},
        "hovermode": "x unified",
    }
}
_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def colours(models: Sequence[str]) -> dict[str, str]:
    """A stable colour per model (naive always grey) so every chart uses the same key."""
    out: dict[str, str] = {}
    others = [m for m in models if m != NAIVE]
    for i, m in enumerate(others):
        out[m] = PALETTE[i % len(PALETTE)]
    out[NAIVE] = NAIVE_COLOUR
    out[BUY_AND_HOLD] = ACTUAL_COLOUR
    return out


def to_html(fig: Figure | None, div_id: str, *, height: int = 340) -> Markup | None:
    """The figure as a <div> + <script> fragment without plotly.js (the page loads it once).

    plotly's JSON encoder writes <, > and / inside strings as \\u escapes, so user text cannot close the script.
    """
    if fig is None:
        return None
    layout = {"template": _TEMPLATE, **fig.get("layout", {}), "height": height}
    html = pio.to_html(
        {"data": fig["data"], "layout": layout},
        include_plotlyjs=False,
        full_html=False,
        config=_CONFIG,
        div_id=div_id,
        default_height=f"{height}px",
        validate=False,
    )
    return Markup(html)  # plotly output: user strings are JSON-escaped inside it


def _title(text: str) -> dict[str, Any]:
    return {"text": text, "x": 0, "font": {"size": 13}}


def _dates(values: pd.Series) -> list[str]:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d").tolist()


def _floats(values: pd.Series | np.ndarray, digits: int = 6) -> list[float | None]:
    """Floats to `digits` significant digits (short JSON, any price scale), NaN as None (a gap in the line)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # strings or pd.NA in an object column
        arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return [None if v != v else float(f"{v:.{digits}g}") for v in arr.tolist()]


def _line(model: str, palette: dict[str, str]) -> dict[str, Any]:
    return {"color": palette.get(model, PALETTE[0]), "dash": "dash" if model == NAIVE else "solid"}


def _metric_by(metrics: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, str] | None:
    """Mean MASE (MAE when MASE is absent) over everything but `keys`."""
    if metrics is None or metrics.empty:
        return None
    names = set(metrics[METRIC].astype(str).unique())
    metric = MASE if MASE in names else MAE if MAE in names else None
    if metric is None:
        return None
    rows = metrics[metrics[METRIC].astype(str) == metric].copy()
    rows[VALUE] = pd.to_numeric(rows[VALUE], errors="coerce")
    rows = rows[np.isfinite(rows[VALUE])]
    rows[MODEL] = rows[MODEL].astype(str)
    return rows.groupby(keys, as_index=False)[VALUE].mean(), metric


def horizon_chart(
    metrics: pd.DataFrame, order: Sequence[str], *, highlighted: Collection[str] | None = None
) -> Figure | None:
    """Error by horizon step: one line per model; random-walk error grows with h, so look at the gap, not the slope.

    The y axis is logarithmic: one bad model (prophet at MASE 16) would otherwise flatten the rest into one line.
    Models outside `highlighted` (None: every model is shown) start hidden behind their legend entry.
    """
    result = (
        _metric_by(metrics, [MODEL, H]) if metrics is not None and not metrics.empty and H in metrics.columns else None
    )
    if result is None:
        return None
    by_h, metric = result
    by_h[H] = pd.to_numeric(by_h[H], errors="coerce")
    by_h = by_h[by_h[H] > 0]
    if by_h.empty:
        return None
    palette = colours(order)
    data = []
    for model in _ordered(by_h[MODEL], order):
        part = by_h[by_h[MODEL] == model].sort_values(H)
        data.append(
            {
                "type": "scatter",
                "x": part[H].astype(int).tolist(),
                "y": _floats(part[VALUE], 4),
                "name": model,
                "mode": "lines+markers",
                "line": _line(model, palette),
                "visible": _shown(model, highlighted),
            }
        )
    xaxis: dict[str, Any] = {"title": {"text": "horizon step h (sessions ahead)"}}
    if by_h[H].max() <= 20:
        xaxis["dtick"] = 1
    return {"data": data, "layout": {"xaxis": xaxis, "yaxis": _log_axis(f"{metric.upper()} (log scale)")}}


def fold_chart(
    metrics: pd.DataFrame,
    forecasts: pd.DataFrame,
    fold_info: pd.DataFrame | None,
    order: Sequence[str],
    *,
    highlighted: Collection[str] | None = None,
) -> Figure | None:
    """Per-fold error (mean over series and steps) against the fold's cutoff date: shows regimes, not just averages.

    Log y axis and `highlighted` models shown at first, as in `horizon_chart`.
    """
    result = _metric_by(metrics, [ID, MODEL, FOLD])
    if result is None:
        return None
    per_fold, metric = result
    per_fold = per_fold.groupby([MODEL, FOLD], as_index=False)[VALUE].mean()
    source = fold_info if fold_info is not None and not fold_info.empty and CUTOFF in fold_info.columns else forecasts
    if source is None or source.empty or CUTOFF not in source.columns:
        return None
    # Series on different exchanges can have different cutoffs for the same fold; the latest one labels it.
    cutoffs = pd.to_datetime(source[CUTOFF]).groupby(source[FOLD]).max()
    per_fold[CUTOFF] = per_fold[FOLD].map(cutoffs)
    per_fold = per_fold.dropna(subset=[CUTOFF])
    if per_fold.empty:
        return None
    palette = colours(order)
    data = []
    for model in _ordered(per_fold[MODEL], order):
        part = per_fold[per_fold[MODEL] == model].sort_values(CUTOFF)
        data.append(
            {
                "type": "scatter",
                "x": _dates(part[CUTOFF]),
                "y": _floats(part[VALUE], 4),
                "name": model,
                "mode": "lines+markers",
                "marker": {"size": 5},
                "line": _line(model, palette),
                "customdata": part[FOLD].tolist(),
                "hovertemplate": "fold %{customdata}: %{y:.4g}",
                "visible": _shown(model, highlighted),
            }
        )
    layout = {
        "xaxis": {"title": {"text": "fold cutoff (last training session)"}},
        "yaxis": _log_axis(f"{metric.upper()} (fold mean, log scale)"),
    }
    return {"data": data, "layout": layout}


def forecast_chart(
    forecasts: pd.DataFrame,
    unique_id: str,
    order: Sequence[str],
    *,
    fold_info: pd.DataFrame | None = None,
    last_folds: int = 3,
    visible: Sequence[str] = (),
) -> Figure | None:
    """Actuals and each model's forecasts with 80%/95% bands for the series' last folds; click the legend to pick.

    Models not in `visible` start hidden ("legendonly") so the default view stays readable.
    """
    rows = forecasts[forecasts[ID].astype(str) == unique_id]
    if rows.empty:
        return None
    folds = sorted(rows[FOLD].dropna().unique())[-last_folds:]
    rows = rows[rows[FOLD].isin(folds)]
    rows = rows.assign(**{MODEL: rows[MODEL].astype(str), DS: pd.to_datetime(rows[DS])}).sort_values(DS)
    rows["_x"] = rows[DS].dt.strftime("%Y-%m-%d")

    actual = rows[[DS, Y]].dropna().drop_duplicates(DS)
    if fold_info is not None and not fold_info.empty and LAST_Y in fold_info.columns:
        # The last observed price at each cutoff, so every forecast visibly starts from where the data ended.
        info = fold_info[(fold_info[ID].astype(str) == unique_id) & fold_info[FOLD].isin(folds)]
        anchors = pd.DataFrame({DS: pd.to_datetime(info[CUTOFF]), Y: info[LAST_Y]})
        actual = pd.concat([anchors, actual]).dropna().drop_duplicates(DS)
    actual = actual.sort_values(DS)

    palette = colours(order)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": _dates(actual[DS]),
            "y": _floats(actual[Y]),
            "name": "actual",
            "mode": "lines+markers",
            "marker": {"size": 4},
            "line": {"color": ACTUAL_COLOUR, "width": 2},
        }
    ]
    # Positional indices per (model, fold) and whole-column arrays: one pass instead of a filter per trace.
    groups = rows.groupby([MODEL, FOLD], sort=False).indices
    x_all = rows["_x"].to_numpy()
    values = {c: rows[c].to_numpy(dtype=float) for c in (YHAT, LO_80, HI_80, LO_95, HI_95) if c in rows.columns}
    for model in _ordered(rows[MODEL], order):
        colour = palette.get(model, PALETTE[0])
        shown: bool | str = True if not visible or model in visible else "legendonly"
        first = True
        for fold in folds:
            idx = groups.get((model, fold))
            if idx is None:
                continue
            x = x_all[idx].tolist()
            for lo, hi, opacity, level in ((LO_95, HI_95, 0.10, 95), (LO_80, HI_80, 0.18, 80)):
                if (
                    lo in values
                    and hi in values
                    and np.isfinite(values[lo][idx]).all()
                    and np.isfinite(values[hi][idx]).all()
                ):
                    data.append(
                        {
                            "type": "scatter",
                            "x": x + x[::-1],
                            "y": _floats(values[hi][idx]) + _floats(values[lo][idx][::-1]),
                            "fill": "toself",
                            "mode": "lines",  # without it plotly draws a marker at every band vertex
                            "fillcolor": colour,
                            "opacity": opacity,
                            "line": {"width": 0},
                            "hoverinfo": "skip",
                            "legendgroup": model,
                            "showlegend": False,
                            "visible": shown,
                            "name": f"{model} {level}%",
                        }
                    )
            data.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": _floats(values[YHAT][idx]),
                    "name": model,
                    "mode": "lines",
                    "line": _line(model, palette),
                    "legendgroup": model,
                    "showlegend": first,
                    "visible": shown,
                }
            )
            first = False
    shapes = []
    if CUTOFF in rows.columns:
        for cutoff in pd.to_datetime(rows.groupby(FOLD)[CUTOFF].max().dropna()):
            shapes.append(
                {
                    "type": "line",
                    "x0": cutoff.strftime("%Y-%m-%d"),
                    "x1": cutoff.strftime("%Y-%m-%d"),
                    "y0": 0,
                    "y1": 1,
                    "yref": "paper",
                    "line": {"color": "#cbd5e1", "width": 1, "dash": "dot"},
                }
            )
    layout = {
        "title": _title(unique_id),
        "yaxis": {"title": {"text": "price"}},
        "shapes": shapes,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.08, "xanchor": "left", "x": 0},
    }
    return {"data": data, "layout": layout}


RULE_DASHES = ("solid", "dash", "dot", "dashdot")  # the line style of each trading rule, in order of appearance
HOLD_NAME = "buy & hold"


def equity_rules(equity: pd.DataFrame) -> list[str]:
    """The trading rules of the equity table in order of appearance (their line styles follow RULE_DASHES)."""
    if equity is None or equity.empty or RULE not in equity.columns:
        return []
    rules = equity.loc[equity[MODEL].astype(str) != BUY_AND_HOLD, RULE].dropna().astype(str)
    return list(dict.fromkeys(rules))


def equity_grid(
    equity: pd.DataFrame,
    series: Sequence[str],
    order: Sequence[str],
    *,
    columns: int = 2,
    row_height: int = 230,
    max_points: int = 200,
) -> Figure | None:
    """Equity curves of each model's trading rules against buy-and-hold: one subplot per series, one shared legend.

    Each model has one legend entry for all subplots and rules (legendgroup; the rule is the line style), placed to
    the right of the grid so it never covers a curve. Every subplot has its own x axis ranged over its own sessions:
    series need not cover the same dates, and a shared or fixed range would cut one of them short.
    The figure's layout carries its height (`row_height` per row of subplots plus room for the titles).
    """
    if equity is None or equity.empty:
        return None
    rows = equity.assign(
        **{ID: equity[ID].astype(str), MODEL: equity[MODEL].astype(str), DS: pd.to_datetime(equity[DS])}
    ).sort_values(DS)
    ids = [u for u in dict.fromkeys(map(str, series)) if u in set(rows[ID])]
    if not ids:
        return None
    rules = equity_rules(rows)
    n_cols = max(1, min(columns, len(ids)))
    n_rows = math.ceil(len(ids) / n_cols)
    height = n_rows * row_height + 40
    gap_x = 0.07 if n_cols > 1 else 0.0
    gap_y = min(0.3, 70 / height) if n_rows > 1 else 0.0  # room for the tick labels above the next title
    width = (1 - gap_x * (n_cols - 1)) / n_cols
    tall = (1 - gap_y * (n_rows - 1)) / n_rows
    palette = colours(order)
    keys = [MODEL, RULE] if RULE in rows.columns else [MODEL]
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {
        "legend": {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top", "tracegroupgap": 2},
        "margin": {"l": 50, "r": 16, "t": 28, "b": 30},
        "hovermode": "closest",
        "annotations": [],
        "height": height,
    }
    in_legend: set[str] = set()

    def legend_entry(group: str) -> bool:
        first = group not in in_legend
        in_legend.add(group)
        return first

    for i, uid in enumerate(ids):
        suffix = "" if i == 0 else str(i + 1)
        col, row = i % n_cols, i // n_cols
        x0 = col * (width + gap_x)
        y1 = 1 - row * (tall + gap_y)
        part = rows[rows[ID] == uid]
        hold = part[part[MODEL] == BUY_AND_HOLD].drop_duplicates(DS)
        if hold.empty and BUY_HOLD in part.columns:  # the trading table keeps buy-and-hold beside every curve
            hold = part.dropna(subset=[BUY_HOLD]).drop_duplicates(DS).assign(**{EQUITY: lambda f: f[BUY_HOLD]})
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        if not hold.empty:
            hold = _thin(hold, max_points)
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": _dates(hold[DS]),
                    "y": _floats(hold[EQUITY], 5),
                    "name": HOLD_NAME,
                    "legendgroup": HOLD_NAME,
                    "showlegend": legend_entry(HOLD_NAME),
                    "line": {"color": ACTUAL_COLOUR, "dash": "dot", "width": 1.5},
                    "hovertemplate": "%{y:.4f}",
                    **axes,
                }
            )
        others = part[part[MODEL] != BUY_AND_HOLD]
        groups = others.groupby(keys, sort=False, dropna=False).indices
        x_all = others[DS].dt.strftime("%Y-%m-%d").to_numpy()
        y_all = others[EQUITY].to_numpy(dtype=float)
        for key in sorted(groups, key=lambda k: (_rank(str(_first(k)), order), str(k))):
            model = str(_first(key))
            rule = str(key[1]) if len(keys) > 1 else ""
            idx = _thin_idx(groups[key], max_points)
            dash = RULE_DASHES[rules.index(rule) % len(RULE_DASHES)] if rule in rules else "solid"
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": x_all[idx].tolist(),
                    "y": _floats(y_all[idx], 5),
                    "name": model,
                    "legendgroup": model,
                    "showlegend": legend_entry(model),
                    "line": {"color": palette.get(model, PALETTE[0]), "dash": dash, "width": 1.5},
                    "meta": rule,
                    "hovertemplate": "%{meta}: %{y:.4f}" if rule else "%{y:.4f}",
                    **axes,
                }
            )
        first, last = part[DS].min(), part[DS].max()
        layout[f"xaxis{suffix}"] = {
            "domain": [round(x0, 4), round(x0 + width, 4)],
            "anchor": f"y{suffix}",
            "type": "date",
            "range": [first.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d")],
        }
        yaxis: dict[str, Any] = {"domain": [round(y1 - tall, 4), round(y1, 4)], "anchor": f"x{suffix}"}
        if col == 0:
            yaxis["title"] = {"text": "equity (start = 1)"}
        layout[f"yaxis{suffix}"] = yaxis
        layout["annotations"].append(
            {
                "text": uid,
                "xref": "paper",
                "yref": "paper",
                "x": round(x0, 4),
                "y": round(y1, 4),
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
    return {"data": data, "layout": layout}


def pvalue_heatmap(matrix: pd.DataFrame, *, title: str, xlabel: str, ylabel: str) -> Figure | None:
    """A p-value matrix as a heatmap, darker = smaller p; cells are labelled with the value."""
    if matrix is None or matrix.empty:
        return None
    z = matrix.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.3f}" for v in row] for row in z]
    heatmap = {
        "type": "heatmap",
        "z": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in z],
        "x": [str(c) for c in matrix.columns],
        "y": [str(i) for i in matrix.index],
        "text": text,
        "texttemplate": "%{text}",
        "zmin": 0,
        "zmax": 1,
        # Anything below 5% is dark blue, 5-10% mid blue, the rest near white: significance pops out at a glance.
        "colorscale": [[0, "#1e3a8a"], [0.05, "#3b82f6"], [0.1001, "#dbeafe"], [1, "#f8fafc"]],
        "colorbar": {"title": {"text": "p"}, "thickness": 12},
        "hovertemplate": f"{ylabel} %{{y}} vs {xlabel} %{{x}}: p = %{{z:.4f}}<extra></extra>",
    }
    layout = {
        "title": _title(title),
        "hovermode": "closest",
        "xaxis": {"title": {"text": xlabel}, "type": "category"},
        "yaxis": {"title": {"text": ylabel}, "type": "category", "autorange": "reversed"},
    }
    return {"data": [heatmap], "layout": layout}


def _shown(model: str, highlighted: Collection[str] | None) -> bool | str:
    """Plotly's `visible`: True for a highlighted model (or when nothing is), else hidden behind its legend entry."""
    return True if highlighted is None or model in highlighted else "legendonly"


def _log_axis(title: str) -> dict[str, Any]:
    return {"type": "log", "title": {"text": title}}


def _rank(model: str, order: Sequence[str]) -> int:
    return order.index(model) if model in order else len(order)


def _ordered(present: pd.Series, order: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(present.astype(str)))
    return [m for m in order if m in seen] + [m for m in seen if m not in order]


def _first(key: Any) -> Any:
    return key[0] if isinstance(key, tuple) else key


def _thin_idx(idx: np.ndarray, max_points: int) -> np.ndarray:
    """Every k-th position plus the last one."""
    if len(idx) <= max_points:
        return idx
    step = int(np.ceil(len(idx) / max_points))
    return np.unique(np.r_[idx[::step], idx[-1]])


def _thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """Every k-th row plus the last one, so a long curve still ends where it ends."""
    if len(frame) <= max_points:
        return frame
    step = int(np.ceil(len(frame) / max_points))
    keep = np.zeros(len(frame), dtype=bool)
    keep[::step] = True
    keep[-1] = True
    return frame[keep]
