"""Frames -> plain table view-models (formatted text + CSS classes); the Jinja template escapes every cell."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.data import METRICS, MetricInfo
from reports.format import fmt_date, fmt_value, is_missing


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    title: str = ""  # tooltip: the metric's one-line caption
    numeric: bool = False


@dataclass(frozen=True)
class Cell:
    text: str
    classes: str = ""
    title: str = ""  # full text when the cell is truncated


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""
    group_starts: set[int] = field(default_factory=set)  # row indices that start a new group (a rule above them)
    # A header row above the column labels: (label, columns spanned), e.g. one label over a variant's three columns.
    header_groups: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


Formatter = Callable[[Any], str]


def build_table(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    formatters: dict[str, Formatter] | None = None,
    highlight: Sequence[str] = (),
    group: str | None = None,
    caption: str = "",
    max_chars: int = 160,
    contenders: Sequence[bool] | np.ndarray | None = None,
) -> Table:
    """A table of `frame[columns]`; the best value of each `highlight` column (per `group` when given) is marked.

    Args:
        contenders: per row, whether it may be marked best at all (default: every row); a trading rule that never
            trades has the "best" drawdown and turnover (zero) without earning them.
    """
    columns = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    labels = labels or {}
    formatters = formatters or {}
    frame = frame.reset_index(drop=True)
    eligible = np.ones(len(frame), dtype=bool) if contenders is None else np.asarray(contenders, dtype=bool)
    best = {c: _best_mask(frame, c, group, eligible) for c in highlight if c in columns}

    cols = []
    for c in columns:
        info = METRICS.get(c)
        numeric = pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        cols.append(Column(c, labels.get(c, info.label if info else c), info.caption if info else "", numeric))

    rows: list[list[Cell]] = []
    group_starts: set[int] = set()
    previous = object()
    for i, record in enumerate(frame[columns].itertuples(index=False, name=None)):
        if group is not None:
            key = frame.at[i, group]
            if i > 0 and key != previous:
                group_starts.add(i)
            previous = key
        row = []
        for col, value in zip(cols, record, strict=True):
            text = formatters[col.key](value) if col.key in formatters else fmt_value(value)
            title = ""
            if len(text) > max_chars:
                title, text = text, text[: max_chars - 1] + "…"
            flags = {
                "num": col.numeric,
                "best": col.key in best and bool(best[col.key][i]),
                "na": is_missing(value),
            }
            classes = " ".join(k for k, on in flags.items() if on)
            row.append(Cell(text, classes, title))
        rows.append(row)
    return Table(cols, rows, caption, group_starts)


def _best_mask(frame: pd.DataFrame, column: str, group: str | None, eligible: np.ndarray) -> np.ndarray:
    """True where `column` holds the best value of its group, by the metric's direction (ties all marked).

    Rows not `eligible` neither win nor count: their values are treated as missing.
    """
    info = METRICS.get(column)
    values = pd.to_numeric(frame[column], errors="coerce").astype(float).where(eligible)
    if info is None or info.better == "none" or values.notna().sum() < 2:
        return np.zeros(len(frame), dtype=bool)
    score = _score(values, info).to_numpy()
    codes = pd.factorize(frame[group])[0] if group is not None else np.zeros(len(frame), dtype=int)
    best = np.full(codes.max() + 1 if len(codes) else 0, np.inf)
    np.fmin.at(best, codes, score)  # fmin ignores NaN: a missing value never wins
    group_best = best[codes]
    return np.isfinite(score) & (np.abs(score - group_best) <= 1e-12 * (1 + np.abs(group_best)))


def _score(values: pd.Series, info: MetricInfo) -> pd.Series:
    """Lower is better after this transform."""
    if info.better == "higher":
        return -values
    if info.better == "nominal" and info.nominal is not None:
        nominal = info.nominal * 100 if values.abs().max() > 1.5 else info.nominal  # coverage may be in percent
        return (values - nominal).abs()
    return values


def sessions_table(sessions: Any) -> Table | None:
    """The run header's per-ticker session spans (meta['sessions']: {ticker: (first, last[, n])} or records)."""
    if sessions is None:
        return None
    if isinstance(sessions, pd.DataFrame):
        frame = sessions
    elif isinstance(sessions, Mapping):
        records = []
        for ticker, span in sessions.items():
            if isinstance(span, Mapping):
                first, last = span.get("first"), span.get("last")
                n = span.get("n", span.get("sessions"))
            elif isinstance(span, list | tuple) and len(span) >= 2:
                first, last = span[0], span[1]
                n = span[2] if len(span) > 2 else None
            else:
                first, last, n = span, None, None
            records.append({"ticker": str(ticker), "first": first, "last": last, "sessions": n})
        frame = pd.DataFrame(records).dropna(axis=1, how="all")
    else:
        return None
    return build_table(frame, formatters={"first": fmt_date, "last": fmt_date})
