"""CSV copies of the report's tables, so every number in the report can be checked in a spreadsheet."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from common.errors import ConfigError
from common.fileio import atomic_write_text

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def export_csv(tables: Mapping[str, pd.DataFrame | None], out_dir: Path) -> dict[str, Path]:
    """Write `<out_dir>/<name>.csv` for each table (None entries are skipped); returns name -> path.

    Each file is written atomically. A frame with a meaningful index (e.g. the square dm_pairwise matrix) keeps it as
    the first column; a plain RangeIndex is dropped.
    """
    out_dir = Path(out_dir)
    bad = [name for name in tables if not _SAFE_NAME.match(name)]
    if bad:
        raise ConfigError(
            f"table names must be plain file names (letters, digits, _ . -), got {bad}; rename them before exporting"
        )
    written: dict[str, Path] = {}
    for name, frame in tables.items():
        if frame is None:
            continue
        keep_index = not isinstance(frame.index, pd.RangeIndex)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=keep_index, date_format="%Y-%m-%d")
        written[name] = atomic_write_text(out_dir / f"{name}.csv", buffer.getvalue())
    return written
