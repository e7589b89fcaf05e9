"""Shared by bench_backtest.py and the peer scripts: the W1 panel, one MASE definition, fold checks, I/O.

Every side of a comparison writes a canonical forecast table (unique_id, model, cutoff, ds, h, yhat) to
parquet; the driver scores all of them here with the SAME definition as pricecast's leaderboard:
each row's |y - yhat| divided by the in-sample one-step naive MAE of that fold's training window
(rows up to the cutoff), averaged over folds and h per series, then averaged over series.
The truth y always comes from the panel, never from the side being scored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common.schema import CUTOFF, DS, ID, MODEL, YHAT, H, Y  # noqa: E402

# Benchmarks time processes as an installed package would run them, with compiled bytecode: a private cache,
# warmed before any timing (some sandboxes set PYTHONDONTWRITEBYTECODE, and then every new process, Dask
# workers included, would recompile prefect, pandas and scipy from source: ~10 s per worker process).
PYCACHE = Path(tempfile.gettempdir()) / "pricecast-bench-pycache"
HEAVY_IMPORTS = (
    "import pandas, scipy.stats, statsmodels.api, statsforecast.models, prophet, prefect, prefect.task_engine, "
    "distributed, prefect_dask, backtest.engine, tasks.backtest, flows.backtest"
)


def bytecode_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default os.environ) without PYTHONDONTWRITEBYTECODE and with the private bytecode cache."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def warm_bytecode(env: dict[str, str] | None = None, code: str = HEAVY_IMPORTS) -> None:
    """Compile every heavy import once into the private bytecode cache (not timed)."""
    subprocess.run([sys.executable, "-c", code], env=bytecode_env(env), capture_output=True, cwd=ROOT)


def use_bytecode_cache() -> None:
    """This process and the processes it starts (Dask workers) read and write the warmed bytecode cache."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(PYCACHE)
    warm_bytecode()


W1_TICKERS = ("AAPL", "GOOG", "IBM", "MSFT")
W1_START = date(2005, 3, 1)
CANONICAL = (ID, MODEL, CUTOFF, DS, H, YHAT)


def load_w1(tickers: Sequence[str] = W1_TICKERS, start: date = W1_START) -> pd.DataFrame:
    """The bundled sample's adjusted closes as a long frame unique_id, ds, y (sorted)."""
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    panel, _ = load_panel(SourceSpec(source="sample", tickers=tuple(tickers), start=start))
    panel = panel[[ID, DS, Y]].copy()
    panel[ID] = panel[ID].astype(str)
    panel[DS] = pd.to_datetime(panel[DS]).astype("datetime64[ns]")
    return panel.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The six canonical columns with fixed dtypes, sorted."""
    out = frame[list(CANONICAL)].copy()
    out[ID] = out[ID].astype(str)
    out[MODEL] = out[MODEL].astype(str)
    out[CUTOFF] = pd.to_datetime(out[CUTOFF]).astype("datetime64[ns]")
    out[DS] = pd.to_datetime(out[DS]).astype("datetime64[ns]")
    out[H] = out[H].astype("int64")
    out[YHAT] = out[YHAT].astype(float)
    return out.sort_values([MODEL, ID, CUTOFF, H], kind="stable").reset_index(drop=True)


def fold_scales(panel: pd.DataFrame, cutoffs: pd.DataFrame) -> pd.DataFrame:
    """Per (unique_id, cutoff): mean |diff(y)| over the series' rows up to the cutoff (expanding window)."""
    rows = []
    for uid, group in panel.groupby(ID, sort=True):
        y = group[Y].to_numpy(float)
        ds = group[DS].to_numpy("datetime64[ns]")
        cum = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(y)))])  # cum[k] = sum of first k |diffs|
        wanted = cutoffs.loc[cutoffs[ID] == uid, CUTOFF].drop_duplicates()
        for cutoff in wanted:
            pos = int(np.searchsorted(ds, np.datetime64(cutoff, "ns"), side="right")) - 1  # rows 0..pos train
            rows.append((uid, cutoff, cum[pos] / pos if pos > 0 else np.nan))
    return pd.DataFrame(rows, columns=[ID, CUTOFF, "scale"])


def score(forecasts: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """Per model: mean MASE (mean over series of the per-series mean over folds and h) and row counts."""
    fc = canonical(forecasts)
    truth = panel[[ID, DS, Y]]
    rows = fc.merge(truth, on=[ID, DS], how="left", validate="many_to_one")
    if rows[Y].isna().any():
        bad = rows.loc[rows[Y].isna()].iloc[0]
        raise ValueError(f"forecast for {bad[ID]} {bad[DS]} has no truth in the panel")
    rows = rows.merge(fold_scales(panel, fc[[ID, CUTOFF]]), on=[ID, CUTOFF], how="left", validate="many_to_one")
    rows["ase"] = np.abs(rows[Y] - rows[YHAT]) / rows["scale"]
    per_series = rows.groupby([MODEL, ID])["ase"].mean()
    out = per_series.groupby(level=MODEL).mean().rename("mase").to_frame()
    out["n_rows"] = rows.groupby(MODEL).size()
    out["n_nan"] = rows.groupby(MODEL)[YHAT].apply(lambda s: int(s.isna().sum()))
    return out


def fold_signature(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The (unique_id, cutoff, ds, h) rows of one model: what must be identical between two sides."""
    fc = canonical(forecasts)
    first = fc[MODEL].iloc[0]
    sig = fc.loc[fc[MODEL] == first, [ID, CUTOFF, DS, H]]
    return sig.sort_values([ID, CUTOFF, H]).reset_index(drop=True)


def same_folds(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Whether two forecast tables cover identical (series, cutoff, ds, h) rows; with a short diagnosis."""
    sa, sb = fold_signature(a), fold_signature(b)
    cut_a = sa[[ID, CUTOFF]].drop_duplicates()
    cut_b = sb[[ID, CUTOFF]].drop_duplicates()
    equal = len(sa) == len(sb) and bool((sa.to_numpy() == sb.to_numpy()).all())
    return {
        "identical": equal,
        "n_cutoffs": [len(cut_a), len(cut_b)],
        "rows": [len(sa), len(sb)],
        "first_cutoff": [str(cut_a[CUTOFF].min().date()), str(cut_b[CUTOFF].min().date())],
        "last_cutoff": [str(cut_a[CUTOFF].max().date()), str(cut_b[CUTOFF].max().date())],
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


class Clock:
    """Wall-clock seconds since construction (perf_counter)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 3)
