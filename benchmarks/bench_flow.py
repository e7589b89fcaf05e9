"""Flow benchmarks: what Prefect orchestration costs, what the unit cache saves, what Dask workers buy.

    python benchmarks/bench_flow.py [--quick] [--part overhead|cache|dask|all]

  overhead  backtest_flow (threads runner, 1 worker) vs calling the pure code directly (load_panel +
            run_backtest(n_jobs=1) + evaluate) on W1's statistical family (naive, ses, holt, ets, arima on
            AAPL, GOOG, IBM, MSFT from 2005-03-01, 50 origins, step 5, horizon 5). Goal: flow/direct <= 1.15.
  cache     the same flow run again, unchanged: every unit is a cache hit. Goal: rerun/first <= 0.10.
  dask      backtest_flow on a local Dask cluster with 2 worker processes vs 1, on 40 series (the sample's
            four tickers repeated under distinct ids), ses + holt. Goal: speed-up >= 1.7.
One Prefect test server is started first and excluded from every timing; each flow run gets a fresh
PRICECAST_HOME (an empty unit cache) unless it is the cached rerun. Timings are wall seconds of one run on
whatever machine runs this (noisy, shared 2-core boxes inflate everything).
Results: benchmarks/results/flow[_quick].json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
STATS = ["naive", "ses", "holt", "ets", "arima"]
W1 = {"tickers": ["AAPL", "GOOG", "IBM", "MSFT"], "windows": 50, "step": 5, "horizon": 5, "start": "2005-03-01"}
QUICK = {"tickers": ["AAPL", "IBM"], "windows": 10, "step": 5, "horizon": 5, "start": "2010-01-01"}


def _fresh_home(tmp: Path, name: str) -> Path:
    home = tmp / name
    os.environ["PRICECAST_HOME"] = str(home)
    return home


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def bench_overhead_and_cache(cfg: dict, models: list[str], tmp: Path) -> dict:
    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan
    from flows.backtest import backtest_flow
    from flows.runners import task_runner
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    plan = FoldPlan(horizon=cfg["horizon"], step=cfg["step"], windows=cfg["windows"], window_type="expanding")

    def direct():
        panel, _ = load_panel(SourceSpec(tickers=tuple(cfg["tickers"]), start=cfg["start"]))
        return evaluate(run_backtest(panel, models=models, plan=plan, n_jobs=1))

    flow = backtest_flow.with_options(task_runner=task_runner("threads", workers=1))
    _fresh_home(tmp, "warm")
    flow(**{**cfg, "windows": 2}, models=models, out_dir=str(tmp / "warm-out"))  # imports, numba/statsmodels warm-up
    direct_s, _ = _timed(direct)
    _fresh_home(tmp, "flow")
    first_s, _ = _timed(lambda: flow(**cfg, models=models, out_dir=str(tmp / "first")))
    cached_s, _ = _timed(lambda: flow(**cfg, models=models, out_dir=str(tmp / "cached")))
    return {
        "direct_s": round(direct_s, 2),
        "flow_s": round(first_s, 2),
        "overhead_ratio": round(first_s / direct_s, 3),
        "cached_rerun_s": round(cached_s, 2),
        "cached_ratio": round(cached_s / first_s, 3),
    }


def bench_dask(n_series: int, windows: int, tmp: Path) -> dict:
    import pandas as pd
    from prefect_dask import DaskTaskRunner

    from flows.backtest import backtest_flow
    from ingest.sources.sample import read_sample
    from ingest.spec import SourceSpec

    raw = read_sample(SourceSpec(tickers=("AAPL", "GOOG", "IBM", "MSFT")))
    raw = raw[raw["ds"] >= "2008-01-01"]
    groups = [g for _, g in raw.groupby("unique_id")]
    copies = [groups[i % len(groups)].assign(unique_id=f"S{i:02d}") for i in range(n_series)]
    path = tmp / "series.csv"
    pd.concat(copies).to_csv(path, index=False)
    params = {"source": "csv", "path": str(path), "models": ["ses", "holt"], "windows": windows, "step": 5}
    out = {}
    for workers in (1, 2):
        _fresh_home(tmp, f"dask{workers}")
        runner = DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1})
        seconds, _ = _timed(
            lambda r=runner, w=workers: backtest_flow.with_options(task_runner=r)(**params, out_dir=str(tmp / f"d{w}"))
        )
        out[f"workers_{workers}_s"] = round(seconds, 2)
    out["speedup"] = round(out["workers_1_s"] / out["workers_2_s"], 3)
    out["n_series"] = n_series
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 tickers, 10 origins, 16 Dask series")
    parser.add_argument("--part", default="all", choices=["overhead", "cache", "dask", "all"])
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    cfg, models = (QUICK, ["naive", "ses", "arima"]) if args.quick else (W1, STATS)
    results: dict = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
                     "config": {**cfg, "models": models}, "cpus": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=180):
        if args.part in ("overhead", "cache", "all"):
            results["overhead"] = bench_overhead_and_cache(cfg, models, Path(tmp))
            print("overhead/cache:", results["overhead"], flush=True)
        if args.part in ("dask", "all"):
            results["dask"] = bench_dask(16 if args.quick else 40, 4 if args.quick else 10, Path(tmp))
            print("dask:", results["dask"], flush=True)
    name = "flow_quick" if args.quick else "flow"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(_markdown(results))
    print(_markdown(results))


def _markdown(r: dict) -> str:
    lines = [f"# Flow benchmarks ({'quick' if r['quick'] else 'W1'}, {r['created_at']}, {r['cpus']} CPUs)", ""]
    lines.append(f"Config: {r['config']}")
    lines.append("")
    lines += ["| measure | value | goal |", "|:---|---:|---:|"]
    if "overhead" in r:
        o = r["overhead"]
        lines.append(f"| direct run_backtest + evaluate (s) | {o['direct_s']} | |")
        lines.append(f"| backtest_flow, first run (s) | {o['flow_s']} | |")
        lines.append(f"| flow / direct | {o['overhead_ratio']} | <= 1.15 |")
        lines.append(f"| cached rerun (s) | {o['cached_rerun_s']} | |")
        lines.append(f"| cached rerun / first run | {o['cached_ratio']} | <= 0.10 |")
    if "dask" in r:
        d = r["dask"]
        lines.append(f"| Dask 1 worker, {d['n_series']} series (s) | {d['workers_1_s']} | |")
        lines.append(f"| Dask 2 workers (s) | {d['workers_2_s']} | |")
        lines.append(f"| speed-up 2 vs 1 | {d['speedup']} | >= 1.7 |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
