"""Atomic file writes shared by every package: a reader or a crash never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write` on a temporary file in the target directory, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)  # no fsync: the rename gives readers all-or-nothing; crash durability is not needed here
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def write_table(frame: pd.DataFrame, out_dir: str | Path, name: str, *, parquet: bool = True) -> Path:
    """`name`.parquet (the source of truth) and `name`.csv beside it (for people), each written atomically."""
    out_dir = Path(out_dir)
    if parquet:
        atomic_write(out_dir / f"{name}.parquet", lambda fh: frame.to_parquet(fh, index=False))
    atomic_write_text(out_dir / f"{name}.csv", frame.to_csv(index=False, date_format="%Y-%m-%d"))
    return out_dir / f"{name}.{'parquet' if parquet else 'csv'}"
