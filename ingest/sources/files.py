"""CSV and Parquet files: one file or a directory; one file per ticker (ticker = file stem) or long files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pandas as pd
from pandas.api.types import is_numeric_dtype

from common.errors import DataError, SourceError
from common.redact import redact
from common.schema import CLOSE, DS, ID, PRICE_COLUMNS, VOLUME
from ingest.columns import column_role, duplicated_names, finish_raw, index_datetime, normalise_columns, one_based
from ingest.spec import SourceSpec

log = logging.getLogger(__name__)

FileKind = Literal["csv", "parquet"]
SUFFIXES: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz"),
    "parquet": (".parquet", ".pq", ".parq"),
}
CSV_CHUNK_ROWS = 200_000  # rows parsed at a time: a big file never holds all of its numbers as text
# Cells read as missing in every column but the ticker's (pandas' own list): 'NA' or 'NULL' can be a ticker.
NA_MARKERS: tuple[str, ...] = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A"),
    *("NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
_NUMBERS = frozenset((*PRICE_COLUMNS, VOLUME))
_CSV_OPTIONS: dict = {"encoding": "utf-8-sig", "skipinitialspace": True}
_NAMES = {DS: "Date", CLOSE: "Close"}


def read_files(spec: SourceSpec) -> pd.DataFrame:
    """Raw bars from `spec.path`; the names of skipped files of another type go to `frame.attrs['ignored_files']`."""
    kind: FileKind = "csv" if spec.source == "csv" else "parquet"
    if spec.path is None:
        raise SourceError(f"source {kind!r} needs a path")
    files, ignored = list_files(Path(spec.path), kind=kind)
    notes: list[str] = []
    frames = [read_file(f, kind=kind, column_map=spec.columns, notes=notes) for f in files]
    raw = pd.concat(frames) if len(frames) > 1 else frames[0]
    raw.attrs["ignored_files"] = ignored
    raw.attrs["column_notes"] = notes  # single-value columns read as close (also logged as warnings)
    return raw


def list_files(path: Path, *, kind: FileKind) -> tuple[list[Path], list[str]]:
    """Files of `kind` at `path` (a file or a directory), and the names of the other files that were skipped."""
    if not path.exists():
        raise SourceError(f"{_show(path)} does not exist; pass an existing {kind} file or a directory of them")
    if not path.is_file() and not path.is_dir():  # /dev/null, a FIFO, a socket: nothing to read prices from
        raise DataError(
            f"{_show(path)} is not a regular file or a directory (a device, pipe or socket); "
            f"pass a {kind} file or a directory of them"
        )
    if path.is_file():
        if _stem(path, kind) is None:
            raise DataError(
                f"{_show(path)} is not a {kind} file (expected {', '.join(SUFFIXES[kind])}); pass source=..."
            )
        return [path], []
    entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    files = [p for p in entries if _stem(p, kind) is not None]
    ignored = [p.name for p in entries if _stem(p, kind) is None]
    if not files:
        raise DataError(
            f"{_show(path)}: no {kind} files ({', '.join(SUFFIXES[kind])}); it has {ignored[:10] or 'no files'}; "
            "pick the source matching those files or point path at the right directory"
        )
    if ignored:
        log.warning(
            "%s: reading %d %s files, ignoring %d others: %s", _show(path), len(files), kind, len(ignored), ignored
        )
    return files, ignored


def read_file(
    path: Path, *, kind: FileKind, column_map: dict[str, str] | None = None, notes: list[str] | None = None
) -> pd.DataFrame:
    """One file as raw bars; without a ticker column the ticker is the file stem ('005930.csv' -> '005930').

    `column_map` ({schema column: file column}, SourceSpec.columns) names columns the automatic spellings miss.
    """
    frame = _read_csv(path, column_map) if kind == "csv" else _read_parquet(path)
    frame = index_datetime(frame)
    if frame.empty:
        raise DataError(
            f"{_show(path)}: no data rows (empty file or header only); fill it or remove it from the directory"
        )
    columns = [str(c) for c in frame.columns]
    frame = normalise_columns(one_based(frame), where=_show(path), column_map=column_map, notes=notes)
    _require_file_columns(frame, path, columns, kind=kind)
    if ID in frame.columns and is_numeric_dtype(frame[ID]):
        log.warning("%s: ticker column holds numbers; leading zeros (KRX '005930') may already be lost", _show(path))
        frame[ID] = frame[ID].astype("Int64").astype(str)
    return finish_raw(frame, ticker=_stem(path, kind))


def _require_file_columns(frame: pd.DataFrame, path: Path, columns: list[str], *, kind: FileKind) -> None:
    """Date and Close must be in the file; the message quotes the file's header and a delimiter it seems to use."""
    missing = [c for c in (DS, CLOSE) if c not in frame.columns]
    if not missing:
        return
    if ID in frame.columns:
        tickers = sorted(map(str, frame[ID].dropna().unique()))[:5]
    else:
        tickers = [_stem(path, kind) or path.name]
    hint = ""
    if len(columns) == 1:
        seps = [name for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")) if sep in columns[0]]
        if seps:
            hint = f"; the file looks {seps[0]}-separated: save it comma-separated"
    raise DataError(
        f"{_show(path)}: tickers {tickers}: missing required column(s) {[_NAMES[c] for c in missing]}; "
        f"the file has columns {columns[:20]}{hint}; add {', '.join(_NAMES[c] for c in missing)} "
        "(names match case-insensitively, with spaces/underscores/dashes alike) or map a column with "
        f"--columns {','.join(f'{c}=NAME' for c in missing)}"
    )


def _read_csv(path: Path, column_map: dict[str, str] | None = None) -> pd.DataFrame:
    """Prices and volume as floats, every other column as text (tickers keep their leading zeros).

    Read in chunks of CSV_CHUNK_ROWS, so a big file never holds all of its numbers as text. A cell that is no
    number makes the whole file be read again as text, for validation to name the ticker, column and rows. Only a
    blank cell is a missing ticker: 'NA' and 'NULL' are tickers too.
    """
    try:
        header = pd.read_csv(path, nrows=0, dtype=str, **_CSV_OPTIONS).columns
        _refuse_duplicated_header(path)
        na = {c: [""] if column_role(c, column_map) == ID else list(NA_MARKERS) for c in header}
        numbers = {c: "float64" for c in header if column_role(c, column_map) in _NUMBERS}
        try:
            return _read_chunks(path, header, na_values=na, dtype={**dict.fromkeys(header, str), **numbers})
        except (UnicodeDecodeError, pd.errors.ParserError):
            raise
        except ValueError:  # 'abc' or '1,234' in a price column
            return _read_chunks(path, header, na_values=na, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"{_show(path)}: empty file (no header, no rows); fill it or remove it") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{_show(path)}: not UTF-8 ({exc.reason} at byte {exc.start}); re-encode it as UTF-8, "
            f"e.g. iconv -f cp949 -t utf-8 '{path.name}' > fixed.csv (Korean Excel exports are often CP949/EUC-KR)"
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{_show(path)}: not a readable CSV ({exc}); check the delimiter and quoting") from None


def _refuse_duplicated_header(path: Path) -> None:
    """pandas reads a second 'Close' as 'Close.1' and the first would win silently: refuse the file instead."""
    raw = pd.read_csv(path, nrows=1, header=None, dtype=str, keep_default_na=False, **_CSV_OPTIONS)
    names = [str(v) for v in raw.iloc[0]] if len(raw) else []
    dups = duplicated_names([n for n in names if n.strip()])
    if dups:
        counts = [sum(1 for n in names if n.strip().lower() == d.strip().lower()) for d in dups]
        raise DataError(
            f"{_show(path)}: column {dups[0]!r} appears {counts[0]} times in the header {names[:20]}; "
            "keep one of them (or rename the others) so it is clear which one holds the prices"
        )


def _read_chunks(path: Path, header: pd.Index, *, na_values: dict, dtype: object) -> pd.DataFrame:
    options = {**_CSV_OPTIONS, "dtype": dtype}
    with pd.read_csv(path, keep_default_na=False, na_values=na_values, chunksize=CSV_CHUNK_ROWS, **options) as reader:
        chunks = list(reader)
    if not chunks:
        return pd.DataFrame(columns=header)
    return pd.concat(chunks) if len(chunks) > 1 else chunks[0]


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file; an unreadable one names the file."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{_show(path)}: not a readable Parquet file ({redact(exc)}); rewrite it with pandas.to_parquet"
        ) from None


def _show(path: Path) -> str:
    """A path for messages and logs, credentials masked (a URL given as a path can carry a password)."""
    return redact(path)


def _stem(path: Path, kind: FileKind) -> str | None:
    """The file name without its `kind` suffix (case-insensitive), or None when it is another type."""
    name = path.name
    for suffix in SUFFIXES[kind]:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None
