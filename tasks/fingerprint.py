"""Stable fingerprints for cache keys: data values and code version, never pickled DataFrames."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.units import Unit
from common.fileio import safe_name
from common.schema import DS

_PURE_PACKAGES = ("common", "features", "models", "backtest")
# Libraries whose upgrade can change a model's numbers: part of the code version too.
_NUMERIC_LIBRARIES = ("numpy", "pandas", "scipy", "statsmodels", "prophet", "keras", "tensorflow-cpu")


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """Hash of a frame's column names and values (row order matters), independent of pickle/pandas internals."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def digest(payload: dict[str, Any]) -> str:
    """24 hex digits of a JSON-serialisable payload (keys sorted): the variable part of a cache key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def folds_key(folds: Sequence[Any]) -> list[tuple]:
    """What identifies a unit's folds in a cache key: number, cutoff, training start and test length."""
    return [(f.fold, str(f.cutoff), str(f.train_start), len(f.test_ds)) for f in folds]


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the source of the packages that compute results and the numeric libraries' versions.

    Editing a model or upgrading statsmodels invalidates the cached backtest units.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for dist in _NUMERIC_LIBRARIES:
        digest.update(f"{dist}=={_version(dist)};".encode())
    for package in _PURE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def unit_key(prefix: str, unit: Unit, series: pd.DataFrame, **extra: Any) -> str:
    """Cache key of a (ticker, model) unit task: its model config, folds and resolved refit policy, a fingerprint
    of its rows up to its last test session, the code version, and `extra` (what else that kind of unit reads:
    the horizon and calendar of a price unit, the look-ahead, features and tail of an event unit). Extras that are
    None are left out, so adding an optional one later keeps the keys of units that do not set it.

    Raw DataFrames are never hashed by Prefect (fragile, prefect#17547): we fingerprint the values we use.
    """
    last = max(f.test_ds[-1] for f in unit.folds)
    payload = {
        "model": unit.model,
        "params": unit.params,
        "folds": folds_key(unit.folds),
        "refit_every": unit.refit_every,
        "data": frame_fingerprint(series.loc[series[DS] <= last]),
        "code": code_version(),
        **{key: value for key, value in extra.items() if value is not None},
    }
    # The key is the result's file name under results_dir(): the ticker goes in encoded, never as a path.
    return f"{prefix}-{safe_name(unit.uid)}-{unit.model}-{digest(payload)}"
