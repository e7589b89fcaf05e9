"""One network across every series (global_lstm, global_gru) against one per series (lstm) and naive, same folds.

Run: `.venv/bin/python benchmarks/bench_global.py [--series 100] [--windows 5] [--quick] [--peer-python PATH]`
-> a table on stdout and benchmarks/results/global.{json,md} (global_quick.* with --quick).

Three universes, each backtested with every model in ONE `backtest.engine.run_backtest` call on one FoldPlan
(horizon 5, step 5, `--windows` folds), in this process; a model's cost is its fit + predict seconds from the
run's timings table (TensorFlow is imported before any timing):
- random walks: the scale benchmark's synthetic universe (benchmarks/peers/universe.py, `--series` series,
  mostly 252-300 sessions, 1-3 % daily volatility). The truth is a random walk, so nothing can beat naive: this
  measures cost and how far each network strays from naive.
- shared AR(1): `--series` short series (300 sessions) whose daily log returns follow the SAME AR(1), phi = 0.3,
  with per-series volatility 1-3 %. A signal every series shares: the case where pooling should pay, since a local
  network sees ~250 windows and the global one `--series` times more.
- the bundled sample (AAPL, GOOG, IBM, MSFT adjusted closes from 2005-03-01, W1).
Accuracy: the peers' MASE (benchmarks/peers/_common.score: per series mean over folds and h, then over series).

The anchor, neuralforecast's LSTM (one global network, its own scaling), runs with `--peer-python` (an interpreter
with neuralforecast installed; it needs torch, so it lives in its own environment) on the same folds
(benchmarks/peers/nf_global.py), scored by the same function.

The peer's environment (neuralforecast, skforecast and their dependencies from PyPI):
    python3.11 -m venv /tmp/peer-env && /tmp/peer-env/bin/pip install neuralforecast pyarrow
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks" / "peers"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from _common import load_w1, same_folds, score  # noqa: E402

from common.schema import (  # noqa: E402
    BEATS_NAIVE_DM,
    CUTOFF,
    DS,
    FIT_SECONDS,
    ID,
    IN_MCS,
    MODEL,
    PREDICT_SECONDS,
    YHAT,
    H,
    Y,
)

RESULTS = ROOT / "benchmarks" / "results"
HORIZON, STEP = 5, 5
MODELS = ("naive", "lstm", "global_lstm", "global_gru")


def random_walks(n_series: int, *, seed: int = 0) -> pd.DataFrame:
    """The scale benchmark's synthetic universe as a long unique_id, ds, y frame."""
    from universe import synthetic_universe

    raw = synthetic_universe(n_series, seed=seed)
    return pd.DataFrame(
        {ID: raw["Ticker"], DS: pd.to_datetime(raw["Date"]).astype("datetime64[ns]"), Y: raw["Adj Close"]}
    )


def shared_ar(n_series: int, *, n_steps: int = 300, phi: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """`n_series` series whose daily log returns follow one AR(1) (coefficient `phi`), volatility 1-3 % each."""
    from universe import sessions

    days = sessions(n_steps)
    frames = []
    for i in range(1, n_series + 1):
        rng = np.random.default_rng([seed, i])
        vol = rng.uniform(0.01, 0.03)
        shocks = rng.normal(0.0, vol * np.sqrt(1 - phi**2), n_steps + 50)
        r = np.zeros_like(shocks)
        for t in range(1, len(r)):
            r[t] = phi * r[t - 1] + shocks[t]
        y = 50.0 * np.exp(np.cumsum(r[50:]))  # 50 burn-in steps: stationary returns from the first session
        frames.append(pd.DataFrame({ID: f"A{i:04d}", DS: days, Y: y}))
    return pd.concat(frames, ignore_index=True)


def run_models(panel: pd.DataFrame, params: dict[str, dict], windows: int) -> Any:
    """Every model in ONE run_backtest call (identical folds), scored by pricecast's evaluate."""
    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan

    plan = FoldPlan(horizon=HORIZON, step=STEP, windows=windows)
    result = run_backtest(panel, models={m: params.get(m, {}) for m in MODELS}, plan=plan)
    return result, evaluate(result)


def run_peer(python: str, panel: pd.DataFrame, reference: pd.DataFrame, work: Path, *, quick: bool) -> dict[str, Any]:
    """neuralforecast's LSTM in its own interpreter on the reference model's cutoffs; its forecasts and wall time."""
    work.mkdir(parents=True, exist_ok=True)
    data, cutoffs, out = work / "panel.parquet", work / "cutoffs.parquet", work / "nf.parquet"
    panel.to_parquet(data)
    reference[[ID, CUTOFF]].drop_duplicates().to_parquet(cutoffs)
    script = ROOT / "benchmarks" / "peers" / "nf_global.py"
    cmd = [python, str(script), str(data), str(cutoffs), str(out), "--horizon", str(HORIZON)]
    cmd += ["--quick"] if quick else []
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr[-2000:], "seconds": wall}
    meta = json.loads(done.stdout.strip().splitlines()[-1])
    return {"forecasts": pd.read_parquet(out), "seconds": wall, **meta}


def bench(universe: str, panel: pd.DataFrame, cfg: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"{universe}: {panel[ID].nunique()} series, {len(panel)} rows", flush=True)
    epochs = {"epochs": 3, "warm_epochs": 1} if cfg.quick else {}
    result, evaluation = run_models(panel, {m: dict(epochs) for m in MODELS if m != "naive"}, cfg.windows)
    forecasts = result.forecasts
    scored = score(forecasts[[ID, MODEL, CUTOFF, DS, H, YHAT]], panel)
    naive = float(scored.loc["naive", "mase"])
    cost = result.timings.groupby(MODEL)[[FIT_SECONDS, PREDICT_SECONDS]].sum().sum(axis=1)
    board = evaluation.leaderboard.set_index(MODEL)
    failed = result.failures.groupby(MODEL).size()
    rows = []
    for model in MODELS:
        rows.append(
            _row(model, float(scored.loc[model, "mase"]), naive, float(cost[model]), int(failed.get(model, 0)))
            | {"beats_naive_dm": _flag(board.loc[model, BEATS_NAIVE_DM]), "in_mcs": _flag(board.loc[model, IN_MCS])}
        )
    spa = evaluation.spa.to_dict("records")
    peer: dict[str, Any] = {}
    if cfg.peer_python:
        reference = forecasts[forecasts[MODEL] == "naive"]
        peer = run_peer(cfg.peer_python, panel[[ID, DS, Y]], reference, work / universe, quick=cfg.quick)
        if "forecasts" in peer:
            nf = peer.pop("forecasts")
            assert same_folds(nf, reference)["identical"], "the peer forecast other folds"
            mase = float(score(nf, panel)["mase"].iloc[0])
            rows.append(_row("neuralforecast LSTM (anchor)", mase, naive, peer["seconds"], 0))
    for row in rows:
        print(f"  {row}", flush=True)
    return {"universe": universe, "series": int(panel[ID].nunique()), "rows": rows, "spa": spa, "peer": peer}


def _flag(value: object) -> str:
    return "" if pd.isna(value) else ("yes" if bool(value) else "no")


def _row(model: str, mase: float, naive: float, seconds: float, failures: int) -> dict[str, Any]:
    return {
        "model": model,
        "mase": round(mase, 4),
        "vs_naive_pct": round(100 * (mase / naive - 1), 2),
        "seconds": round(seconds, 1),
        "failed_folds": failures,
        "beats_naive_dm": "",
        "in_mcs": "",
    }


def markdown(payload: dict[str, Any]) -> str:
    meta = payload["meta"]
    lines = [
        "# Global vs local recurrent networks",
        "",
        f"{meta['machine']}; {meta['when']}; FoldPlan(horizon={HORIZON}, step={STEP}, windows={meta['windows']}); "
        f"{'quick (3 epochs)' if meta['quick'] else 'default configurations'}.",
        "Every model in ONE `run_backtest` call (identical folds); seconds: the model's fit + predict seconds from "
        "the run's timings table (TensorFlow imported first; the anchor: its wall time in its own process). "
        "MASE: benchmarks/peers/_common.score. vs naive: MASE relative to naive's (negative = better). "
        "DM and MCS: pricecast's evaluate (Diebold-Mariano vs naive; the 10% Model Confidence Set).",
        "",
    ]
    for part in payload["universes"]:
        lines += [f"## {part['universe']} ({part['series']} series)", ""]
        lines += [
            "| model | MASE | vs naive % | seconds | beats naive (DM) | in 10% MCS | failed folds |",
            "|---|---:|---:|---:|---|---|---:|",
        ]
        lines += [
            f"| {r['model']} | {r['mase']:.4f} | {r['vs_naive_pct']:+.2f} | {r['seconds']:.1f} | "
            f"{r['beats_naive_dm']} | {r['in_mcs']} | {r['failed_folds']} |"
            for r in part["rows"]
        ]
        for spa in part["spa"]:
            p = spa["spa_p_consistent"]
            said = "not tested (fewer than 5 folds)" if pd.isna(p) else f"consistent p = {p:.3f}"
            lines += ["", f"Hansen's SPA, does any of the {spa['n_models']} models beat naive: {said}"]
        if part["peer"].get("error"):
            lines += ["", f"neuralforecast failed: `{part['peer']['error'].splitlines()[-1]}`"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 epochs, for a smoke run")
    parser.add_argument("--peer-python", help="an interpreter with neuralforecast (the anchor); skipped if absent")
    parser.add_argument("--only", help="comma list of universes: random_walks,shared_ar,sample")
    cfg = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from models.rnn import _keras

    _keras()  # import TensorFlow before any timing
    universes = {
        "random_walks": lambda: random_walks(cfg.series),
        "shared_ar": lambda: shared_ar(cfg.series),
        "sample": load_w1,
    }
    chosen = cfg.only.split(",") if cfg.only else list(universes)
    with tempfile.TemporaryDirectory() as tmp:
        parts = [bench(name, universes[name](), cfg, Path(tmp)) for name in chosen]
    payload = {
        "meta": {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "when": datetime.now(UTC).isoformat(timespec="minutes"),
            "windows": cfg.windows,
            "quick": cfg.quick,
            "command": " ".join(sys.argv),
        },
        "universes": parts,
    }
    stem = "global_quick" if cfg.quick else "global"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    text = markdown(payload)
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
