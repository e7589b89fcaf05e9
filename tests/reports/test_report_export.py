"""export_csv writes one CSV per table, atomically, and keeps a meaningful index."""

from __future__ import annotations

import pandas as pd
import pytest

from common.errors import ConfigError
from common.schema import ID
from reports.export import export_csv


def test_export_writes_every_table(report_input, tmp_path):
    tables = report_input.tables()
    written = export_csv(tables, tmp_path / "csv")
    assert set(written) == set(tables) and {"forecasts", "metrics", "leaderboard", "dm_pairwise"} <= set(written)
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(f"{n}.csv" for n in tables)  # no temp files
    back = pd.read_csv(written["forecasts"], dtype={ID: str})
    assert len(back) == len(report_input.forecasts)
    pairwise = pd.read_csv(written["dm_pairwise"], index_col=0)
    assert list(pairwise.index) == list(report_input.dm_pairwise.index)


def test_export_skips_none_and_rejects_path_like_names(tmp_path):
    assert export_csv({"a": pd.DataFrame({"x": [1]}), "b": None}, tmp_path) == {"a": tmp_path / "a.csv"}
    with pytest.raises(ConfigError, match=r"\.\./evil"):
        export_csv({"../evil": pd.DataFrame({"x": [1]})}, tmp_path)
