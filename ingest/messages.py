"""How validation messages quote the source: offending rows with their row number and date, days and date spans.

Shared by ingest.validate and ingest.spikes so every DataError and warning names rows the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from common.schema import DS

SHOW_ROWS = 3  # offending rows quoted in one message; the rest are counted ("and 12 more")


def show_rows(g: pd.DataFrame, mask: pd.Series | Iterable[bool], cols: list[str], limit: int = SHOW_ROWS) -> str:
    """'row 12 (2020-01-03): close='abc'; ...' for the first `limit` rows where mask holds."""
    mask = pd.Series(mask, index=g.index) if not isinstance(mask, pd.Series) else mask
    hit = g.loc[mask.reindex(g.index, fill_value=False).to_numpy()]
    items = []
    for label, row in hit.head(limit).iterrows():
        values = ", ".join(f"{c}={show_value(row[c])}" for c in cols if c != DS)
        items.append(f"row {label} ({show_day(row[DS]) if DS in row else '?'})" + (f": {values}" if values else ""))
    more = f" and {len(hit) - limit} more" if len(hit) > limit else ""
    return "; ".join(items) + more


def show_value(value: object) -> str:
    """A cell for messages: short floats, quoted text."""
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def show_day(value: object) -> str:
    """A date for messages: ISO day for timestamps, the raw text otherwise."""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else str(value)
    return str(value)


def show_span(g: pd.DataFrame) -> str:
    """'2024-01-02 .. 2024-03-28': the first and last date of a frame (or 'no rows')."""
    return f"{show_day(g[DS].min())} .. {show_day(g[DS].max())}" if len(g) else "no rows"
