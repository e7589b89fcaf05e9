"""Numbers are shown with 3-4 significant digits and JSON records are rounded and NaN-free."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.format import fmt_num, fmt_seconds, sig_round


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.000"),
        (0.98234, "0.9823"),
        (12.3456, "12.35"),
        (1234.56, "1,235"),
        (1_234_567.8, "1,234,568"),
        (0, "0"),
        (3, "3"),
        (-0.5, "-0.5000"),
        (0.000012341, "1.234e-05"),
        (np.nan, "–"),
        (None, "–"),
        (True, "yes"),
        (np.float32(2.5), "2.500"),
        ("text", "text"),
    ],
)
def test_fmt_num(value, text):
    assert fmt_num(value) == text


def test_fmt_seconds():
    assert [fmt_seconds(s) for s in (0.0123, 12.34, 245, 3725)] == ["12 ms", "12.3 s", "4 min 05 s", "1 h 02 min"]


def test_sig_round_is_json_safe():
    values = [np.float64(1.234567), np.nan, np.int64(3), np.bool_(True), pd.Timestamp("2024-01-02"), float("inf")]
    assert [sig_round(v) for v in values] == [1.235, None, 3, True, "2024-01-02T00:00:00", None]
