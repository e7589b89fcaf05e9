"""pricecast's lag regressors beside skforecast's ForecasterDirect on W1: same folds, same estimators, one run.

Run: `.venv/bin/python benchmarks/bench_regressors.py --peer-python /path/to/skf-env/bin/python [--windows 20]`
-> a table on stdout and benchmarks/results/regressors.{json,md}.

W1: the bundled sample's adjusted closes (AAPL, GOOG, IBM, MSFT from 2005-03-01), FoldPlan(horizon=5, step=5,
`--windows`), each model's default refit policy (every 10th fold). pricecast: ONE `run_backtest` call with naive,
random_forest, gradient_boosting and svr; cost = fit + predict seconds of the scored folds from the timings table
(the conformal calibration origins are listed apart: skforecast's backtest makes no intervals). skforecast
(benchmarks/peers/skf_direct.py, its own interpreter since skforecast needs pandas < 3): ForecasterDirect with the
same estimators and hyperparameters on log prices with differentiation=1, 10 lags and 5/20-session return
means and stds, backtesting_forecaster on the same cutoffs (checked). Both scored by benchmarks/peers/_common.score.

The peer's environment (neuralforecast, skforecast and their dependencies from PyPI):
    python3.11 -m venv /tmp/peer-env && /tmp/peer-env/bin/pip install skforecast scikit-learn pyarrow
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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks" / "peers"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

from _common import load_w1, same_folds, score  # noqa: E402

from common.schema import CUTOFF, DS, FIT_SECONDS, ID, MODEL, PREDICT_SECONDS, YHAT, H, Y  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("naive", "random_forest", "gradient_boosting", "svr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--peer-python", required=True, help="an interpreter with skforecast installed")
    cfg = parser.parse_args()
    from backtest.engine import run_backtest
    from backtest.folds import FoldPlan

    panel = load_w1()
    started = time.perf_counter()
    result = run_backtest(panel, models=list(MODELS), plan=FoldPlan(horizon=5, step=5, windows=cfg.windows))
    ours_wall = time.perf_counter() - started
    forecasts = result.forecasts
    cost = result.timings.groupby(MODEL)[[FIT_SECONDS, PREDICT_SECONDS]].sum().sum(axis=1)
    calibration = result.meta.get("calibration_seconds", {})
    reference = forecasts[forecasts[MODEL] == "naive"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        panel[[ID, DS, Y]].to_parquet(work / "panel.parquet")
        reference[[ID, CUTOFF]].drop_duplicates().to_parquet(work / "cutoffs.parquet")
        script = ROOT / "benchmarks" / "peers" / "skf_direct.py"
        files = [str(work / name) for name in ("panel.parquet", "cutoffs.parquet", "out.parquet")]
        cmd = [cfg.peer_python, str(script), *files]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"skforecast side failed:\n{done.stderr[-3000:]}")
        peer_meta = json.loads(done.stdout.strip().splitlines()[-1])
        peer = pd.read_parquet(work / "out.parquet")
    folds_same = all(same_folds(peer[peer[MODEL] == name], reference)["identical"] for name in peer[MODEL].unique())
    table = pd.concat([forecasts[[ID, MODEL, CUTOFF, DS, H, YHAT]], peer], ignore_index=True)
    scored = score(table, panel)
    naive = float(scored.loc["naive", "mase"])
    rows = []
    for model in MODELS:
        rows.append(_row(model, "pricecast", scored, naive, cost[model], calibration.get(model)))
        if model != "naive":
            name = f"skforecast {model}"
            rows.append(_row(model, "skforecast ForecasterDirect", scored, naive, peer_meta["seconds"][model], None))
            rows[-1]["label"] = name
    payload = {
        "meta": {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "when": datetime.now(UTC).isoformat(timespec="minutes"),
            "windows": cfg.windows,
            "skforecast": peer_meta["skforecast"],
            "folds_identical": folds_same,
            "pricecast_run_wall_s": round(ours_wall, 1),
            "command": " ".join(sys.argv),
        },
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "regressors.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    text = markdown(payload)
    (RESULTS / "regressors.md").write_text(text + "\n")
    print(text)


def _row(model: str, side: str, scored: pd.DataFrame, naive: float, seconds: float, cal: float | None) -> dict:
    key = model if side == "pricecast" else f"skforecast {model}"
    mase = float(scored.loc[key, "mase"])
    return {
        "label": model,
        "side": side,
        "mase": round(mase, 4),
        "vs_naive_pct": round(100 * (mase / naive - 1), 2),
        "fit_predict_s": round(float(seconds), 2),
        "calibration_s": None if cal is None else round(float(cal), 2),
    }


def markdown(payload: dict[str, Any]) -> str:
    meta = payload["meta"]
    lines = [
        "# Lag regressors: pricecast beside skforecast ForecasterDirect (W1)",
        "",
        f"{meta['machine']}; {meta['when']}; W1 (4 tickers), FoldPlan(horizon=5, step=5, windows={meta['windows']}), "
        f"refit every 10th fold; skforecast {meta['skforecast']}; identical folds: {meta['folds_identical']}.",
        "fit + predict s: the scored folds' fit and predict seconds, summed over tickers (pricecast: its timings "
        "table; skforecast: backtesting_forecaster's wall time). Calibration s: pricecast's conformal calibration "
        "origins (split-conformal bands; skforecast made none). MASE: benchmarks/peers/_common.score.",
        "",
        "| model | side | MASE | vs naive % | fit + predict s | calibration s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        cal = "" if r["calibration_s"] is None else f"{r['calibration_s']:.2f}"
        lines.append(
            f"| {r['label']} | {r['side']} | {r['mase']:.4f} | {r['vs_naive_pct']:+.2f} | {r['fit_predict_s']:.2f} | "
            f"{cal} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
