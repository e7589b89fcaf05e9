"""Backtest result tables (forecasts, timings, failures, fold_info) with atomic save/load and concatenation.

Parquet is the source of truth (`load` reads it); a CSV beside each table is for people and spreadsheets.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import DataError
from common.schema import (
    BACKTEST_COLUMNS,
    CUTOFF,
    DS,
    ERROR_TYPE,
    FAILURE_COLUMNS,
    FIT_SECONDS,
    FOLD,
    FOLD_INFO_COLUMNS,
    ID,
    INTERVAL_COLUMNS,
    LAST_Y,
    LO_95,
    MESSAGE,
    MODEL,
    PARAMS,
    PREDICT_SECONDS,
    REFIT,
    SCALE_MAE,
    SCALE_MSE,
    TIMING_COLUMNS,
    TRAIN_END,
    TRAIN_START,
    TRIALS,
    TUNING_COLUMNS,
    VALIDATION_MAE,
    YHAT,
    H,
    Y,
)

log = logging.getLogger(__name__)

TABLES = ("forecasts", "timings", "failures", "fold_info", "tuning", "calibration")
OPTIONAL_TABLES = ("tuning", "calibration")  # absent from runs saved before they existed: read as empty
META_FILE = "meta.json"

_STRINGS = (ID, MODEL, ERROR_TYPE, MESSAGE, PARAMS)
_DATES = (DS, CUTOFF, TRAIN_START, TRAIN_END)
_INTS = (FOLD, H, TRIALS)
_FLOATS = (Y, YHAT, *INTERVAL_COLUMNS, FIT_SECONDS, PREDICT_SECONDS, LAST_Y, SCALE_MAE, SCALE_MSE, VALIDATION_MAE)


def normalize(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """`frame` with exactly `columns` in order and canonical dtypes (missing columns become NaN/empty)."""
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        values = frame[col] if col in frame.columns else pd.Series(np.nan, index=frame.index)
        if col in _STRINGS:
            values = values.astype("str")
        elif col in _DATES:
            values = pd.to_datetime(values).astype("datetime64[ns]")
        elif col in _INTS:
            values = values.astype("int64")
        elif col == REFIT:
            values = values.astype(bool)
        elif col in _FLOATS:
            values = values.astype("float64")
        out[col] = values
    return out.reset_index(drop=True)


def empty_table(columns: tuple[str, ...]) -> pd.DataFrame:
    """A zero-row table with the canonical dtypes of `columns`."""
    return normalize(pd.DataFrame({c: [] for c in columns}), columns)


@dataclass
class UnitResult:
    """What one (series, model) unit produces; the Prefect flow maps over these and concatenates them."""

    forecasts: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame
    fold_info: pd.DataFrame
    date_mismatches: int = 0  # model (calendar) dates that differ from the data's test sessions
    # What a `+tuned` unit chose per fold (TUNING_COLUMNS); empty for every other unit.
    tuning: pd.DataFrame = field(default_factory=lambda: empty_table(TUNING_COLUMNS))
    # Forecasts of the calibration origins before fold 0 (folds -k..-1, BACKTEST_COLUMNS): read by the conformal
    # intervals (backtest.conformal), never scored; empty for a unit without them.
    calibration: pd.DataFrame = field(default_factory=lambda: empty_table(BACKTEST_COLUMNS))
    calibration_seconds: float = 0.0  # wall time of those origins' fits and forecasts (the run meta sums it)


@dataclass
class BacktestResult:
    """The tidy tables of a whole backtest plus run metadata (plan, models, refit policy, ...)."""

    forecasts: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame
    fold_info: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    tuning: pd.DataFrame = field(default_factory=lambda: empty_table(TUNING_COLUMNS))
    calibration: pd.DataFrame = field(default_factory=lambda: empty_table(BACKTEST_COLUMNS))  # never scored

    def save(self, out_dir: str | Path) -> Path:
        """Write every table as parquet + CSV and meta.json atomically; other files in out_dir are kept.

        Everything is serialised into a temporary sibling directory first, so a failure while writing leaves
        out_dir untouched; the finished files are then moved in with os.replace (atomic per file), meta.json
        last, so a reader that finds meta.json finds complete tables.
        """
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; a run directory is meant to be shared
        try:
            for name in TABLES:
                table = getattr(self, name)
                table.to_parquet(staging / f"{name}.parquet", index=False)
                table.to_csv(staging / f"{name}.csv", index=False, date_format="%Y-%m-%d")
            (staging / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str))
            if not out_dir.exists():
                staging.rename(out_dir)  # whole directory appears at once
                return out_dir
            out_dir.mkdir(exist_ok=True)
            names = [f"{n}.{ext}" for n in TABLES for ext in ("parquet", "csv")] + [META_FILE]
            for name in names:
                os.replace(staging / name, out_dir / name)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return out_dir

    @classmethod
    def load(cls, out_dir: str | Path) -> BacktestResult:
        """Read a result written by `save` (parquet tables + meta.json)."""
        out_dir = Path(out_dir)
        required = [f"{t}.parquet" for t in TABLES if t not in OPTIONAL_TABLES]
        missing = [n for n in (*required, META_FILE) if not (out_dir / n).exists()]
        if missing:
            raise DataError(f"{out_dir} is not a complete backtest result: missing {missing}; re-run the backtest")
        tables = {
            name: pd.read_parquet(out_dir / f"{name}.parquet")
            if (out_dir / f"{name}.parquet").exists()
            else empty_table(_COLUMNS[name])
            for name in TABLES
        }
        meta = json.loads((out_dir / META_FILE).read_text())
        return cls(**{k: normalize(v, _COLUMNS[k]) for k, v in tables.items()}, meta=meta)

    def summary(self) -> str:
        """One line for logs: counts of series, models, forecast rows and failures."""
        f = self.forecasts
        return (
            f"{f[ID].nunique()} series x {f[MODEL].nunique()} models, {len(f)} forecast rows, "
            f"{len(self.failures)} failed folds"
        )


_COLUMNS = {
    "forecasts": BACKTEST_COLUMNS,
    "timings": TIMING_COLUMNS,
    "failures": FAILURE_COLUMNS,
    "fold_info": FOLD_INFO_COLUMNS,
    "tuning": TUNING_COLUMNS,
    "calibration": BACKTEST_COLUMNS,
}


def concat(results: Iterable[UnitResult | BacktestResult], *, meta: dict[str, Any] | None = None) -> BacktestResult:
    """Merge unit (or whole) results into one BacktestResult, sorted deterministically.

    fold_info is per series x fold and identical across models, so duplicates are dropped.
    """
    results = list(results)
    parts = {name: [t for r in results if len(t := _table(r, name))] for name in TABLES}
    tables = {
        name: normalize(pd.concat(frames, ignore_index=True), _COLUMNS[name]) if frames else empty_table(_COLUMNS[name])
        for name, frames in parts.items()
    }
    tables["fold_info"] = tables["fold_info"].drop_duplicates([ID, FOLD], keep="first")
    order = {
        "forecasts": [ID, MODEL, FOLD, H],
        "timings": [ID, MODEL, FOLD],
        "failures": [ID, MODEL, FOLD],
        "fold_info": [ID, FOLD],
        "tuning": [ID, MODEL, FOLD],
        "calibration": [ID, MODEL, FOLD, H],
    }
    for name, keys in order.items():
        tables[name] = tables[name].sort_values(keys, kind="stable").reset_index(drop=True)
    merged_meta = dict(meta or {})
    mismatches = sum(
        r.date_mismatches if isinstance(r, UnitResult) else int(r.meta.get("date_mismatches", 0)) for r in results
    )
    merged_meta.setdefault("date_mismatches", int(mismatches))
    if merged_meta.get("conformal_models"):
        merged_meta[BANDLESS_KEY] = bandless_rows(tables["forecasts"], merged_meta["conformal_models"])
    seconds: dict[str, float] = {}
    for r in results:  # the calibration origins' cost per model: the timings table holds scored folds only
        if isinstance(r, UnitResult) and r.calibration_seconds and len(r.calibration):
            model = str(r.calibration[MODEL].iloc[0])
            seconds[model] = seconds.get(model, 0.0) + float(r.calibration_seconds)
    if seconds:
        merged_meta["calibration_seconds"] = {m: round(v, 3) for m, v in seconds.items()}
    return BacktestResult(**tables, meta=merged_meta)


BANDLESS_KEY = "conformal_rows_without_95_band"  # meta: {model: forecast rows} with too few scores for a 95% band


def bandless_rows(forecasts: pd.DataFrame, models: Iterable[str]) -> dict[str, int]:
    """Per conformal model, the forecast rows left without a 95% band (too few calibration scores: a short series
    or failed calibration origins), logged once; empty when every row has one."""
    rows = forecasts[forecasts[MODEL].isin(list(models)) & forecasts[LO_95].isna()]
    counts = {str(m): int(n) for m, n in rows.groupby(MODEL).size().items()}
    if counts:
        log.warning(
            "conformal intervals: %s forecast rows have no 95%% band (fewer than 19 known errors at their cutoff: "
            "a short series or failed calibration origins); they are left out of coverage, CRPS and pinball",
            ", ".join(f"{m} {n}" for m, n in counts.items()),
        )
    return counts


def _table(result: UnitResult | BacktestResult, name: str) -> pd.DataFrame:
    """One of a result's tables; an optional table a result cached before it existed lacks is empty."""
    table = getattr(result, name, None)
    return empty_table(_COLUMNS[name]) if table is None else table
