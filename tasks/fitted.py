"""Fitted live models kept between forecast runs: a few new sessions update the stored fit instead of refitting.

PRICECAST_HOME/models/<ticker>/<model>-<params digest>/ (the ticker encoded by common.fileio.safe_name) holds
the fitted model (its own `save`) and fit.json: the fingerprint (tasks.fingerprint.frame_fingerprint) of the rows
it was fitted on, restricted to the columns the model reads (unique_id, ds, y and its exogenous columns), their last
session and the code version; rows.npz keeps each row's hash so a refit can say where the history changed.

The next run reuses the fit when those rows are an exact prefix of today's series (same rows up to the fit's
last session) and at most `max_update_sessions` sessions came after it: the model is loaded, conditioned on the
new rows with `update()` (parameters fixed, as the backtest engine does between refits) and forecasts. The
stored fit is not rewritten after an update, so "sessions since the fit" stays the true count and a model is
refitted at least every `max_update_sessions` sessions. Otherwise (no fit, history changed, too many sessions,
code changed, unreadable) the model is refitted and stored.

A directory is written under a temporary name and renamed into place, so a crash never leaves a half-written
fit; a model whose `save` fails is simply refitted on every run. No prefect import: tasks/forecast.py logs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from common.errors import DataError, ModelFitError
from common.fileio import atomic_write_text, safe_name
from common.schema import CALENDAR_PREFIX, DS, ID, Y
from common.settings import home
from models import make_model
from models.base import Forecaster, fit_model
from tasks.fingerprint import code_version, digest, frame_fingerprint

MAX_UPDATE_SESSIONS = 20
MODEL_FILE, ROWS_FILE, META_FILE = "model.pkl", "rows.npz", "fit.json"
_STALE_STAGING_SECONDS = 3600.0  # a staging directory this old belongs to a writer that died
_NO_FIT = "no stored fit"
_META_KEYS = ("columns", "n_rows", "last_ds", "fingerprint", "code")

FitPath = Literal["fit", "refit", "update"]


@dataclass(frozen=True)
class FitOutcome:
    """A model fitted (or updated) on the whole series, which path it took and a sentence for the run log."""

    model: Forecaster
    path: FitPath
    message: str
    new_sessions: int = 0
    warning: str | None = None  # the fit could not be stored (it is refitted next run)


def fits_dir() -> Path:
    """Where fitted live models are kept: PRICECAST_HOME/models."""
    return home() / "models"


def fit_dir(root: Path, uid: str, model: str, params: dict[str, Any]) -> Path:
    """root/<ticker>/<model>-<params digest>; the ticker as common.fileio.safe_name encodes it (USD/KRW ->
    USD%2FKRW; `..` or `../x` never leave root), the model a registry name."""
    return root / safe_name(uid) / f"{model}-{digest({'model': model, 'params': params})[:12]}"


def fit_or_update(
    series: pd.DataFrame,
    *,
    model: str,
    params: dict[str, Any],
    root: Path,
    max_update_sessions: int = MAX_UPDATE_SESSIONS,
    horizon: int | None = None,
    calendar: str | None = None,
) -> FitOutcome:
    """`model` fitted on every row of `series`: the stored fit updated with the new sessions when it qualifies,
    else a fresh fit, stored for the next run.

    A model that needs the horizon at fit (requires_horizon_in_fit) is fitted for `horizon` steps, and the horizon
    is part of its stored fit's key: a run with another horizon never reuses a network trained for a different one.
    """
    fresh = make_model(model, **params)
    uid = str(series[ID].iloc[0])
    rows = _fitted_rows(series, fresh)
    keyed = {**params, "_fit_horizon": horizon} if horizon is not None and fresh.needs_horizon() else params
    keyed = {**keyed, "_calendar": calendar} if calendar is not None else keyed  # its forecast dates follow it
    directory = fit_dir(root, uid, model, keyed)
    stored, reason = _load(directory, fresh, uid)
    if stored is not None:
        loaded, meta = stored
        why, n_new = _why_not_update(meta, directory, rows, max_update_sessions)
        if why is None:
            try:
                if n_new:
                    loaded.update(series.iloc[len(series) - n_new :])
                plural = "" if n_new == 1 else "s"
                message = f"updated {uid} {model} with {n_new} new session{plural} (fitted through {meta['last_ds']})"
                return FitOutcome(loaded, "update", message, n_new)
            except (ModelFitError, DataError) as exc:  # a fresh fit may still succeed: its failure is the real one
                why = f"update failed ({exc})"
        reason = why
    fitted = fit_model(fresh, series, horizon, calendar=calendar)
    path: FitPath = "fit" if reason == _NO_FIT else "refit"
    warning = _store(fitted, rows, directory, label=f"{model} on {uid}")
    return FitOutcome(fitted, path, f"{path} {uid} {model}: {reason}", warning=warning)


# ---- the decision ---------------------------------------------------------------------------------------------
def _fitted_rows(series: pd.DataFrame, model: Forecaster) -> pd.DataFrame:
    """What the model reads, in canonical dtypes (a datetime64[us] vs [ns] or str vs object column hashes apart)."""
    exog = [c for c in model.exog_columns if not c.startswith(CALENDAR_PREFIX) and c in series.columns]
    rows = pd.DataFrame(
        {
            ID: series[ID].astype(str).to_numpy(dtype=object),
            DS: pd.to_datetime(series[DS]).to_numpy(dtype="datetime64[ns]"),
            Y: series[Y].to_numpy(dtype="float64"),
        }
    )
    for col in exog:
        rows[col] = series[col].to_numpy(dtype="float64")
    return rows


def _why_not_update(
    meta: dict[str, Any], directory: Path, rows: pd.DataFrame, max_update_sessions: int
) -> tuple[str | None, int]:
    """(None, new sessions) when the stored fit can be updated, else (the reason to refit, 0)."""
    if meta.get("code") != code_version():
        return f"code changed since the stored fit ({meta.get('code')} -> {code_version()})", 0
    if list(meta.get("columns", [])) != list(rows.columns):
        return f"the model reads other columns now ({meta.get('columns')} -> {list(rows.columns)})", 0
    last = pd.Timestamp(meta["last_ds"])
    prefix = rows.loc[rows[DS] <= last]
    if len(prefix) != meta["n_rows"] or frame_fingerprint(prefix) != meta["fingerprint"]:
        return f"data changed before {last.date()} ({_first_change(directory, prefix)})", 0
    n_new = len(rows) - len(prefix)
    if n_new > max_update_sessions:
        return f"{n_new} new sessions since the fit through {last.date()} (more than {max_update_sessions})", 0
    return None, n_new


def _first_change(directory: Path, prefix: pd.DataFrame) -> str:
    """Where today's rows first differ from the stored fit's, from the stored per-row hashes."""
    try:
        with np.load(directory / ROWS_FILE) as stored:
            old_hash, old_ds = stored["hash"], stored["ds"]
    except (OSError, KeyError, ValueError):
        return "the stored row hashes are unreadable"
    new_hash = pd.util.hash_pandas_object(prefix, index=False).to_numpy()
    n = min(len(old_hash), len(new_hash))
    differ = np.flatnonzero(old_hash[:n] != new_hash[:n])
    if differ.size:
        return f"first changed session {pd.Timestamp(prefix[DS].iloc[differ[0]]).date()}"
    if len(new_hash) < len(old_hash):
        return f"{len(old_hash) - len(new_hash)} fitted sessions are gone, first {pd.Timestamp(old_ds[n]).date()}"
    return f"{len(new_hash) - len(old_hash)} sessions inserted after {pd.Timestamp(prefix[DS].iloc[n - 1]).date()}"


# ---- the stored fit -------------------------------------------------------------------------------------------
def _load(directory: Path, fresh: Forecaster, uid: str) -> tuple[tuple[Forecaster, dict[str, Any]] | None, str]:
    """(model, meta) of the stored fit, or (None, why there is none to use)."""
    if not (directory / META_FILE).is_file():
        return None, _NO_FIT
    try:
        meta = json.loads((directory / META_FILE).read_text())
        loaded = type(fresh).load(directory / MODEL_FILE)
    except Exception as exc:  # a pickle from other library versions raises anything: refit
        return None, f"stored fit unreadable ({type(exc).__name__}: {exc})"
    missing = sorted(set(_META_KEYS) - set(meta))
    if missing:
        return None, f"stored fit unreadable ({META_FILE} lacks {missing})"
    if type(loaded) is not type(fresh) or getattr(loaded, "unique_id_", None) != uid:
        return None, f"stored fit is a {type(loaded).__name__} of {getattr(loaded, 'unique_id_', '?')}"
    return (loaded, meta), ""


def _store(model: Forecaster, rows: pd.DataFrame, directory: Path, *, label: str) -> str | None:
    """Write the fit under a temporary name, then rename it into place; returns a warning when it cannot."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; PRICECAST_HOME is shared like the run directories
    try:
        model.save(staging / MODEL_FILE)
        ds = rows[DS].to_numpy(dtype="datetime64[ns]")
        np.savez(staging / ROWS_FILE, hash=pd.util.hash_pandas_object(rows, index=False).to_numpy(), ds=ds)
        meta = {
            "model": model.name,
            "unique_id": str(rows[ID].iloc[0]),
            "columns": list(rows.columns),
            "n_rows": len(rows),
            "first_ds": str(pd.Timestamp(ds[0]).date()),
            "last_ds": str(pd.Timestamp(ds[-1]).date()),
            "fingerprint": frame_fingerprint(rows),
            "code": code_version(),
            "saved_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        }
        atomic_write_text(staging / META_FILE, json.dumps(meta, indent=2))  # last: a fit.json means a whole fit
        _swap_in(staging, directory)
    except Exception as exc:  # a model that cannot be pickled, a full disk, a concurrent writer: refit next run
        return f"could not store the fitted {label} ({type(exc).__name__}: {exc}); it is refitted next run"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return None


def _swap_in(staging: Path, directory: Path) -> None:
    """Replace `directory` by the finished `staging` directory (a rename can only replace an empty directory)."""
    old = directory.with_name(f".{directory.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(directory, old)
    except FileNotFoundError:
        pass  # first fit, or another writer moved it a moment ago
    os.rename(staging, directory)  # a concurrent writer that renamed first wins: OSError, ours is dropped
    shutil.rmtree(old, ignore_errors=True)


def _clean_leftovers(directory: Path) -> None:
    """Directories a crashed writer left: replaced fits at once, staging ones once surely abandoned."""
    now = time.time()
    for path in directory.parent.glob(f".{directory.name}.*"):
        abandoned = ".old-" in path.name or now - path.stat().st_mtime > _STALE_STAGING_SECONDS
        if path.is_dir() and abandoned:
            shutil.rmtree(path, ignore_errors=True)
