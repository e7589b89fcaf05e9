"""Atomic file writes shared by every package: a reader or a crash never sees a half-written file."""

from __future__ import annotations

import hashlib
import os
import string
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


# ---- file names from user text (tickers) ----------------------------------------------------------------------
_NAME_SAFE = frozenset(string.ascii_letters + string.digits + "._=^-")
_NAME_MAX = 96  # encoded characters kept before the hash of a long name (file systems allow 255 bytes)
_TAG = "~"  # never produced by the encoding, so a tagged name cannot equal an untagged one
_TAG_HEX = 10


def safe_name(text: str) -> str:
    """A file name for user text (a ticker) that never shapes a path and never collides with another's.

    Characters outside [A-Za-z0-9._=^-] are percent-encoded as UTF-8 (`/` `\\` `:` NUL `%` ...), and so is a
    leading dot, so `..`, `../x`, `a/b` and hidden names cannot arise. Readable names stay as they are (`AAPL`,
    `005930.KS`, `^GSPC`, `BTC-USD`; `USD/KRW` -> `USD%2FKRW`). A name with a lower-case letter (which a
    case-insensitive file system would confuse with its upper-case twin) or longer than 96 characters gets
    `~` and 10 hex digits of the text's SHA-256. `name_of` turns a name back into its text.
    """
    if not text:
        raise ValueError("an empty name cannot name a file")
    encoded = "".join(c if c in _NAME_SAFE else _percent(c) for c in text)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded) > _NAME_MAX or any(c.islower() for c in text):
        return f"{encoded[:_NAME_MAX]}{_TAG}{_name_hash(text)}"
    return encoded


def name_of(name: str) -> str | None:
    """The text `safe_name` encoded into `name`, or None when the name was shortened (or is not one of its names)."""
    from urllib.parse import unquote

    try:
        text = unquote(name.partition(_TAG)[0], errors="strict")
    except UnicodeDecodeError:
        return None
    return text if text and safe_name(text) == name else None


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


def _name_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_TAG_HEX]
