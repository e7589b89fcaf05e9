"""Flow benchmarks: what Prefect orchestration costs, what the unit cache saves, what Dask workers buy.

    python benchmarks/bench_flow.py [--quick] [--part overhead|cache|dask|all]

  overhead  backtest_flow (threads runner, 1 worker) vs the same work done by calling the pure functions the
            flow's tasks call, in one process without Prefect (store, features, leakage audit, run_backtest
            with n_jobs=1, evaluate, report, results store), on W1's statistical family (naive, ses, holt,
            ets, arima on AAPL, GOOG, IBM, MSFT from 2005-03-01, 50 origins, step 5, horizon 5): the cost of
            orchestration. Goal: flow/direct <= 1.15. Also shown: flow vs the engine alone (load_panel +
            run_backtest + evaluate, no audit, report or store).
  cache     the same flow run again, unchanged: every unit is a cache hit. Goal: rerun/first <= 0.10.
  dask      backtest_flow on a local Dask cluster with 2 worker processes vs 1, on 40 series (the sample's
            four tickers from W1's start repeated under distinct ids), the statistical family on W1's folds
            (50 origins, step 5, horizon 5). Goal: speed-up >= 1.7.
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
sys.path.insert(0, str(HERE / "peers"))
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


def bench_overhead_and_cache(cfg: dict, models: list[str], tmp: Path, repeats: int) -> dict:
    """Medians of `repeats` runs, interleaved (engine, same work, flow, cached rerun) so load drifts hit all."""
    import statistics

    from backtest.audit import audit_leakage
    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan, panel_folds
    from common.schema import ID
    from common.settings import store_path
    from features.build import FeatureConfig, build_features_for
    from flows.backtest import backtest_flow
    from flows.runners import task_runner
    from ingest.load import load_panel
    from ingest.price_store import PriceStore
    from ingest.spec import SourceSpec
    from outputs.write import save_run
    from store.results_store import ResultStore

    plan = FoldPlan(horizon=cfg["horizon"], step=cfg["step"], windows=cfg["windows"], window_type="expanding")
    spec = SourceSpec(tickers=tuple(cfg["tickers"]), start=cfg["start"])

    def engine_only():
        panel, _ = load_panel(spec)
        return evaluate(run_backtest(panel, models=models, plan=plan))

    def same_work(out: Path):
        """Everything the flow's tasks do, called directly: store, features, audit, units, scores, report."""
        panel, quality = load_panel(spec, store=PriceStore(store_path()))
        config = FeatureConfig()
        features = {str(u): g.reset_index(drop=True) for u, g in build_features_for(panel, config).groupby(ID)}
        folds = panel_folds(panel, plan)
        audit_leakage(panel, features, folds, config)
        result = run_backtest(panel, models=models, plan=plan)
        evaluation = evaluate(result)
        save_run(result, evaluation, quality.to_frame(), out)
        ResultStore(store_path()).write_backtest(
            flow_run_id=out.name, forecasts=result.forecasts, metrics=evaluation.metrics,
            leaderboard=evaluation.leaderboard, meta=result.meta, fold_info=result.fold_info,
        )  # fmt: skip

    flow = backtest_flow.with_options(task_runner=task_runner("threads", workers=1))
    _fresh_home(tmp, "warm")
    flow(
        params=_params(**{**cfg, "windows": 2}, models=models, out_dir=str(tmp / "warm-out"))
    )  # imports, numba/statsmodels warm-up
    runs: dict[str, list[float]] = {"engine": [], "same": [], "flow": [], "cached": []}
    for i in range(repeats):
        runs["engine"].append(_timed(engine_only)[0])
        _fresh_home(tmp, f"same{i}")
        runs["same"].append(_timed(lambda i=i: same_work(tmp / f"same-out{i}"))[0])
        _fresh_home(tmp, f"flow{i}")
        runs["flow"].append(
            _timed(lambda i=i: flow(params=_params(**cfg, models=models, out_dir=str(tmp / f"first{i}"))))[0]
        )
        runs["cached"].append(
            _timed(lambda i=i: flow(params=_params(**cfg, models=models, out_dir=str(tmp / f"cached{i}"))))[0]
        )
        print(f"  repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "repeats": repeats,
        "engine_s": round(med["engine"], 2),
        "direct_s": round(med["same"], 2),
        "flow_s": round(med["flow"], 2),
        "overhead_ratio": round(med["flow"] / med["same"], 3),
        "flow_vs_engine": round(med["flow"] / med["engine"], 3),
        "cached_rerun_s": round(med["cached"], 2),
        "cached_ratio": round(med["cached"] / med["flow"], 3),
        "walls": {k: [round(x, 2) for x in v] for k, v in runs.items()},
    }


def _params(**flat):
    """flows.params.BacktestParams from flat keywords: SourceSpec's fields go into `source`."""
    from flows.params import BacktestParams
    from ingest.spec import SourceSpec

    source = {k: flat.pop(k) for k in list(flat) if k in SourceSpec.model_fields}
    return BacktestParams(source=SourceSpec(**source), **flat)


class CpuSampler:
    """CPU seconds of this process and of every process it started, by kind (Prefect server, Dask workers).

    Child processes are sampled every half second while they live (a worker's last half second may be missed).
    """

    def __init__(self) -> None:
        import threading

        import psutil

        self._me = psutil.Process()
        self._error = psutil.Error
        self._seen: dict[int, tuple[str, float]] = {}
        self._start = self._snapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        out = {}
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                kind = "flow" if proc.pid == self._me.pid else self._kind(" ".join(proc.cmdline()))
                times = proc.cpu_times()
                out[proc.pid] = (kind, times.user + times.system)
            except self._error:
                continue
        return out

    @staticmethod
    def _kind(cmdline: str) -> str:
        return "prefect_server" if "uvicorn" in cmdline or "prefect" in cmdline.split(" -c ")[0] else "dask_workers"

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._seen.update(self._snapshot())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._seen.update(self._snapshot())
        totals: dict[str, float] = {}
        for pid, (kind, cpu) in self._seen.items():
            totals[kind] = totals.get(kind, 0.0) + cpu - self._start.get(pid, (kind, 0.0))[1]
        return {k: round(v, 1) for k, v in sorted(totals.items())}


def bench_dask(n_series: int, windows: int, models: list[str], tmp: Path) -> dict:
    import pandas as pd
    from prefect_dask import DaskTaskRunner

    from flows.backtest import backtest_flow
    from ingest.sources.sample import read_sample
    from ingest.spec import SourceSpec

    raw = read_sample(SourceSpec(tickers=("AAPL", "GOOG", "IBM", "MSFT")))
    raw = raw[raw["unique_id"].isin(W1["tickers"]) & (raw["ds"] >= W1["start"])]  # the sample also ships FB
    groups = [g for _, g in raw.groupby("unique_id")]
    copies = [groups[i % len(groups)].assign(unique_id=f"S{i:02d}") for i in range(n_series)]
    path = tmp / "series.csv"
    pd.concat(copies).to_csv(path, index=False)
    params = {"source": "csv", "path": str(path), "models": models, "windows": windows, "step": 5}
    out = {}
    for workers in (1, 2):
        _fresh_home(tmp, f"dask{workers}")
        runner = DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1})
        sampler = CpuSampler()
        seconds, _ = _timed(
            lambda r=runner, w=workers: backtest_flow.with_options(task_runner=r)(
                params=_params(**params, out_dir=str(tmp / f"d{w}"))
            )
        )
        out[f"workers_{workers}_s"] = round(seconds, 2)
        out[f"workers_{workers}_cpu_s"] = sampler.stop()
    out["speedup"] = round(out["workers_1_s"] / out["workers_2_s"], 3)
    out["n_series"] = n_series
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 tickers, 10 origins, 16 Dask series")
    parser.add_argument("--part", default="all", choices=["overhead", "cache", "dask", "all"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per side for the overhead/cache medians")
    args = parser.parse_args()
    from _common import use_bytecode_cache

    use_bytecode_cache()  # as an installed package runs: compiled bytecode, here and in the Dask workers
    from prefect.testing.utilities import prefect_test_harness

    cfg, models = (QUICK, ["naive", "ses", "arima"]) if args.quick else (W1, STATS)
    results: dict = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
                     "config": {**cfg, "models": models}, "cpus": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=180):
        if args.part in ("overhead", "cache", "all"):
            results["overhead"] = bench_overhead_and_cache(cfg, models, Path(tmp), args.repeats)
            print("overhead/cache:", results["overhead"], flush=True)
        if args.part in ("dask", "all"):
            results["dask"] = bench_dask(16 if args.quick else 40, 4 if args.quick else 50, models, Path(tmp))
            print("dask:", results["dask"], flush=True)
    name = "flow_quick" if args.quick else "flow"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    previous = out / f"{name}.json"
    if args.part != "all" and previous.exists():  # one part re-measured: keep the other parts' figures
        kept = {k: v for k, v in json.loads(previous.read_text()).items() if k in ("overhead", "dask")}
        results = {**kept, **results}
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
        lines.append(f"| engine alone: load_panel + run_backtest + evaluate (s) | {o.get('engine_s', '')} | |")
        lines.append(f"| same work as the flow, direct calls without Prefect (s) | {o['direct_s']} | |")
        lines.append(f"| backtest_flow, first run (s) | {o['flow_s']} | |")
        lines.append(f"| flow / same work direct (orchestration overhead) | {o['overhead_ratio']} | <= 1.15 |")
        lines.append(f"| flow / engine alone | {o.get('flow_vs_engine', '')} | |")
        lines.append(f"| cached rerun (s) | {o['cached_rerun_s']} | |")
        lines.append(f"| cached rerun / first run | {o['cached_ratio']} | <= 0.10 |")
    if "dask" in r:
        d = r["dask"]
        lines.append(f"| Dask 1 worker, {d['n_series']} series (s) | {d['workers_1_s']} | |")
        lines.append(f"| Dask 2 workers (s) | {d['workers_2_s']} | |")
        lines.append(f"| speed-up 2 vs 1 | {d['speedup']} | >= 1.7 |")
        for w in (1, 2):
            if f"workers_{w}_cpu_s" in d:
                cpu = ", ".join(f"{k} {v}" for k, v in d[f"workers_{w}_cpu_s"].items())
                lines.append(f"| CPU seconds with {w} worker{'s' * (w > 1)}: {cpu} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
