"""CSV and Parquet files: one file or a directory; one file per ticker (ticker = file stem) or long files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd
from pandas.api.types import is_numeric_dtype

from features.schema import ID
from ingest.columns import finish_raw, index_datetime, normalise_columns, one_based
from ingest.spec import SourceSpec
from pricecast.errors import DataError, SourceError

log = logging.getLogger(__name__)

FileKind = Literal["csv", "parquet"]
SUFFIXES: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz"),
    "parquet": (".parquet", ".pq", ".parq"),
}


def read_files(spec: SourceSpec) -> pd.DataFrame:
    """Raw bars from `spec.path`; the names of skipped files of another type go to `frame.attrs['ignored_files']`."""
    kind: FileKind = "csv" if spec.source == "csv" else "parquet"
    if spec.path is None:
        raise SourceError(f"source {kind!r} needs a path")
    files, ignored = list_files(Path(spec.path), kind=kind)
    frames = [read_file(f, kind=kind) for f in files]
    raw = pd.concat(frames) if len(frames) > 1 else frames[0]
    raw.attrs["ignored_files"] = ignored
    return raw


def list_files(path: Path, *, kind: FileKind) -> tuple[list[Path], list[str]]:
    """Files of `kind` at `path` (a file or a directory), and the names of the other files that were skipped."""
    if not path.exists():
        raise SourceError(f"{path} does not exist; pass an existing {kind} file or a directory of them")
    if path.is_file():
        if _stem(path, kind) is None:
            raise DataError(f"{path} is not a {kind} file (expected {', '.join(SUFFIXES[kind])}); pass source=...")
        return [path], []
    entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    files = [p for p in entries if _stem(p, kind) is not None]
    ignored = [p.name for p in entries if _stem(p, kind) is None]
    if not files:
        raise DataError(
            f"{path}: no {kind} files ({', '.join(SUFFIXES[kind])}); it has {ignored[:10] or 'no files'}; "
            "pick the source matching those files or point path at the right directory"
        )
    if ignored:
        log.warning("%s: reading %d %s files, ignoring %d others: %s", path, len(files), kind, len(ignored), ignored)
    return files, ignored


def read_file(path: Path, *, kind: FileKind) -> pd.DataFrame:
    """One file as raw bars; without a ticker column the ticker is the file stem ('005930.csv' -> '005930')."""
    frame = _read_csv(path) if kind == "csv" else _read_parquet(path)
    frame = index_datetime(frame)
    if frame.empty:
        raise DataError(f"{path}: no data rows (empty file or header only); fill it or remove it from the directory")
    frame = normalise_columns(one_based(frame), where=str(path))
    if ID in frame.columns and is_numeric_dtype(frame[ID]):
        log.warning("%s: ticker column holds numbers; leading zeros (KRX '005930') may already be lost", path)
        frame[ID] = frame[ID].astype("Int64").astype(str)
    return finish_raw(frame, ticker=_stem(path, kind))


def _read_csv(path: Path) -> pd.DataFrame:
    """Every column as text (tickers keep leading zeros; validation converts and reports bad numbers)."""
    try:
        return pd.read_csv(path, dtype=str, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header, no rows); fill it or remove it") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-encode it as UTF-8, "
            f"e.g. iconv -f cp949 -t utf-8 '{path.name}' > fixed.csv (Korean Excel exports are often CP949/EUC-KR)"
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); check the delimiter and quoting") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file; an unreadable one names the file."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); rewrite it with pandas.to_parquet") from None


def _stem(path: Path, kind: FileKind) -> str | None:
    """The file name without its `kind` suffix (case-insensitive), or None when it is another type."""
    name = path.name
    for suffix in SUFFIXES[kind]:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None
