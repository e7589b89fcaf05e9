"""Number, date and duration formatting shared by the HTML and Markdown renderers (plain strings, no markup)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

DASH = "–"


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA (scalars only)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and other non-scalars are not "missing"
        return False


def fmt_num(value: Any, *, digits: int = 4) -> str:
    """A number with `digits` significant digits, thousands separators for large values and no 1e-05 noise."""
    if is_missing(value):
        return DASH
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    x = float(value)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if isinstance(value, int | np.integer) or (x.is_integer() and abs(x) >= 10**digits):
        return f"{int(round(x)):,}"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= digits - 1:
        return f"{x:,.0f}"
    if magnitude < -4:
        return f"{x:.{digits - 1}e}"
    decimals = digits - 1 - magnitude
    return f"{x:.{decimals}f}"


def fmt_pct(value: Any, *, digits: int = 3) -> str:
    """A fraction as a percentage (0.0123 -> '1.23%')."""
    if is_missing(value):
        return DASH
    return f"{fmt_num(float(value) * 100, digits=digits)}%"


def fmt_p(value: Any, *, digits: int = 2) -> str:
    """A p-value: '0.012', '0.3', '< 0.001'."""
    if is_missing(value):
        return DASH
    p = float(value)
    return "< 0.001" if p < 0.001 else f"{p:.{digits}g}"


def fmt_seconds(value: Any) -> str:
    """A duration in seconds as '850 ms', '12.3 s', '4 min 05 s' or '1 h 02 min'."""
    if is_missing(value):
        return DASH
    s = float(value)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{fmt_num(s, digits=3)} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_date(value: Any) -> str:
    """A session date as YYYY-MM-DD (keeps the time only when it is not midnight)."""
    if is_missing(value):
        return DASH
    if isinstance(value, str):
        return value
    ts = pd.Timestamp(value)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def fmt_value(value: Any) -> str:
    """Any cell: numbers via fmt_num, dates via fmt_date, the rest as text."""
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        return fmt_date(value)
    return fmt_num(value)


def sig_round(value: Any, digits: int = 4) -> Any:
    """JSON-safe scalar: floats rounded to `digits` significant digits, NaN -> None, numpy -> Python, dates -> ISO."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isinf(x):
            return None
        return float(f"{x:.{digits}g}")
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        return pd.Timestamp(value).isoformat()
    return str(value)
