"""Scale benchmark (issue #16, deliverable 4): cost against series count, pricecast vs statsforecast in one run.

    python benchmarks/bench_scale.py [--quick] [--sizes 100,500,2000] [--repeats N] [--part all|ingest]

Universes: benchmarks/peers/universe.py, seeded geometric random walks on real XNYS sessions (mostly one year
long, a tail up to ten years), written as one long CSV per size. Universes nest: the 500-series file holds the
100-series one. Every size runs the statistical family (naive, ses, holt, ets, arima), 20 origins, step 5,
horizon 5, on three sides, each a whole subprocess, interleaved (cli engine sf cli engine sf ...):
  cli            `pricecast backtest --source csv --path <file> --models ... --windows 20 --step 5 --horizon 5
                 --out <dir>`, what a user runs, against one Prefect server started by this script before any
                 timing (PREFECT_API_URL); the server's start is not timed and its memory is not counted.
  engine         backtest.engine.run_backtest on the same file (ingest.load_panel + run_backtest, no Prefect):
                 cli minus engine is the orchestration's cost.
  statsforecast  benchmarks/peers/sf_scale.py: StatsForecast(freq=1, n_jobs=-1).cross_validation(h=5,
                 n_windows=20, step_size=5, refit=True), sf_cv.py's model mapping.
Per size and side: wall seconds (median over repeats), peak RSS of the side's whole process tree (psutil every
0.2 s, RSS of the process plus all its children summed, so forked workers' shared pages count once per worker;
PSS, which splits shared pages, is sampled every 1 s beside it), the largest single process's peak RSS (exact,
from wait4), mean MASE scored here by peers/_common.score from the panel's truth for every side, and the ratios
to statsforecast. One untimed warm-up of every side on a tiny universe comes first (numba caches, disk cache).
--part ingest times only ingest.load_panel on each file (wall, peak RSS): where a big universe's time goes
before any model runs.
Goal (100 series): cli wall <= 0.5x statsforecast, mean MASE <= +1 %. RSS must grow no faster than linearly
(log-ratio exponent <= 1 between sizes) and 2,000 series must fit in this machine's memory.
Results: benchmarks/results/scale[_quick].json, .md and .png (log-log cost against series count).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
sys.path.insert(0, str(PEERS))
sys.path.insert(0, str(HERE))

from _common import bytecode_env, same_folds, score, warm_bytecode, write_json  # noqa: E402
from bench_backtest import bench_env, md_table, verdict  # noqa: E402
from universe import write_universe  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
MODELS = ("naive", "ses", "holt", "ets", "arima")
FOLDS = {"windows": 20, "step": 5, "horizon": 5}
# cli_processes: the same command with PRICECAST_TASK_RUNNER=processes (the thread runner shares one GIL)
SIDES = ("cli", "cli_processes", "engine", "statsforecast")
SIZES, QUICK_SIZES = (100, 500, 2000), (20, 50)
REPEATS = {100: 3, 500: 2, 2000: 1}  # default per size; any other size: 1
GOAL_SIZE = 100
MB = 1024 * 1024


# ---- measuring one process tree -------------------------------------------------------------------------
class TreeSampler:
    """Peak summed RSS (every `every` s) and PSS (every `pss_every` s) of a process and all its descendants."""

    def __init__(self, pid: int, *, every: float = 0.2, pss_every: float = 1.0) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self.peak_rss = self.peak_pss = 0
        self.max_procs = 0
        self._every, self._pss_every = every, pss_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except self._psutil.Error:
            return []

    def _run(self) -> None:
        last_pss = 0.0
        while not self._stop.is_set():
            procs = self._tree()
            rss = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                except self._psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.max_procs = max(self.max_procs, len(procs))
            if time.monotonic() - last_pss >= self._pss_every:  # smaps is slower to read than statm
                last_pss = time.monotonic()
                pss = 0
                for proc in procs:
                    try:
                        pss += proc.memory_full_info().pss
                    except (self._psutil.Error, AttributeError):
                        continue
                self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(self._every)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {
            "peak_rss_mb": round(self.peak_rss / MB, 1),
            "peak_pss_mb": round(self.peak_pss / MB, 1),
            "max_procs": self.max_procs,
        }


class CpuMeter:
    """CPU seconds a running process tree (the Prefect server) spends between start() and stop()."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)

    def _cpu(self) -> float:
        total = 0.0
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except self._psutil.Error:
                continue
        return total

    def __enter__(self) -> CpuMeter:
        self._start = self._cpu()
        self.sampler = TreeSampler(self._root.pid, every=1.0, pss_every=1e9)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(self._cpu() - self._start, 1)
        self.memory = self.sampler.stop()


def run_measured(name: str, cmd: list[str], work: Path, extra_env: dict[str, str] | None = None) -> dict:
    """Run one side as a subprocess in fresh temp homes: wall seconds, peak tree RSS/PSS, largest process RSS."""
    tmp = Path(tempfile.mkdtemp(prefix=f"scale-{name}-", dir=work))
    load_before = os.getloadavg()[0]
    with (tmp / "stdout.log").open("w") as out, (tmp / "stderr.log").open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=bench_env(tmp, extra_env), stdout=out, stderr=err, cwd=HERE.parent)
        sampler = TreeSampler(proc.pid)
        # wait4, not proc.wait: the kernel's ru_maxrss is the exact peak of the largest process in the tree
        _, status, usage = os.wait4(proc.pid, 0)
        wall = round(time.perf_counter() - started, 2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        memory = sampler.stop()
    tail = (tmp / "stderr.log").read_text()[-1500:]
    print(
        f"  {name}: {wall:.1f} s, peak RSS {memory['peak_rss_mb']:.0f} MB (rc={proc.returncode}, "
        f"load {load_before:.1f})",
        flush=True,
    )
    if proc.returncode not in (0, 1):  # the CLI exits 1 when some folds failed: still scored
        print(tail, file=sys.stderr)
    return {
        "name": name,
        "wall_s": wall,
        "rc": proc.returncode,
        "dir": str(tmp),
        "load1": load_before,
        **memory,
        "max_proc_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # the side's own process (its waited-for children too)
        "tail": tail,
    }


# ---- the Prefect server (started once, never timed) -----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`prefect server start` on a free local port with its own PREFECT_HOME; returns (process, api url)."""
    port = _free_port()
    home = work / "prefect-server"
    env = bytecode_env()
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    log = (work / "prefect-server.log").open("w")
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see {work / 'prefect-server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s; see {work / 'prefect-server.log'}")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (its own session: nothing else is in it)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# ---- the sides --------------------------------------------------------------------------------------------
def side_commands(path: Path, out: Path, api_url: str) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    models = ",".join(MODELS)
    folds = ["--windows", str(FOLDS["windows"]), "--step", str(FOLDS["step"]), "--horizon", str(FOLDS["horizon"])]
    return {
        "cli": (
            [str(BIN / "pricecast"), "backtest", "--source", "csv", "--path", str(path), "--models", models, *folds]
            + ["--out", str(out / "cli")],
            {"PREFECT_API_URL": api_url},
        ),
        "cli_processes": (
            [str(BIN / "pricecast"), "backtest", "--source", "csv", "--path", str(path), "--models", models, *folds]
            + ["--out", str(out / "cli_processes")],
            {"PREFECT_API_URL": api_url, "PRICECAST_TASK_RUNNER": "processes"},
        ),
        "engine": ([PY, str(Path(__file__)), "--run-engine", str(path), str(out / "engine.parquet")], None),
        "statsforecast": (
            [PY, str(PEERS / "sf_scale.py"), "--path", str(path), "--models", models, *folds]
            + ["--out", str(out / "statsforecast.parquet")],
            None,
        ),
    }


def forecasts_of(side: str, out: Path):
    import pandas as pd

    cli = side in ("cli", "cli_processes")
    return pd.read_parquet(out / side / "forecasts.parquet" if cli else out / f"{side}.parquet")


def sidecar_of(side: str, out: Path) -> dict:
    path = out / f"{side}.parquet.json"
    return json.loads(path.read_text()) if path.exists() else {}


def run_engine_side(path: str, out: str) -> None:
    """The engine side's subprocess: load_panel on the CSV, then run_backtest; forecasts + a timing sidecar."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    from backtest.engine import run_backtest
    from backtest.folds import FoldPlan
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    imported = time.perf_counter()
    panel, _ = load_panel(SourceSpec(source="csv", path=path))
    loaded = time.perf_counter()
    plan = FoldPlan(horizon=FOLDS["horizon"], step=FOLDS["step"], windows=FOLDS["windows"])
    result = run_backtest(panel, models=list(MODELS), plan=plan)
    done = time.perf_counter()
    result.forecasts.to_parquet(out)
    write_json(
        Path(out + ".json"),
        {
            "imports_s": round(imported - started, 3),
            "ingest_s": round(loaded - imported, 3),
            "engine_s": round(done - loaded, 3),
            "failures": int(len(result.failures)),
            "refit_every": result.meta.get("refit_every"),
        },
    )


def run_ingest_side(path: str, out: str) -> None:
    """The ingest part's subprocess: ingest.load_panel on the CSV only (no store), timed in a sidecar."""
    started = time.perf_counter()
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    imported = time.perf_counter()
    panel, _ = load_panel(SourceSpec(source="csv", path=path))
    write_json(
        Path(out),
        {"imports_s": round(imported - started, 3), "ingest_s": round(time.perf_counter() - imported, 3)}
        | {"rows": len(panel)},
    )


def truth_panel(path: Path):
    """The panel every side is scored against: pricecast's validated view of the file (y = Adj Close)."""
    from common.schema import DS, ID, Y
    from ingest.load import load_panel
    from ingest.spec import SourceSpec

    panel, _ = load_panel(SourceSpec(source="csv", path=str(path)))
    panel = panel[[ID, DS, Y]].copy()
    panel[ID] = panel[ID].astype(str)
    panel[DS] = panel[DS].astype("datetime64[ns]")
    return panel.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def universe(work: Path, n: int, seed: int) -> Path:
    path = work / f"universe-{n}-seed{seed}.csv"
    return path if path.exists() else write_universe(path, n, seed=seed)


# ---- one size ---------------------------------------------------------------------------------------------
def bench_size(n: int, repeats: int, cfg: argparse.Namespace, work: Path, server: subprocess.Popen, api: str) -> dict:
    path = universe(work, n, cfg.seed)
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    last: dict[str, Path] = {}
    for r in range(repeats):
        print(f" {n} series, repeat {r + 1}/{repeats}", flush=True)
        out = work / f"n{n}-r{r}"
        out.mkdir(parents=True, exist_ok=True)
        for side, (cmd, env) in side_commands(path, out, api).items():
            if side in ("cli", "cli_processes"):
                with CpuMeter(server.pid) as meter:
                    res = run_measured(f"{side}-{n}", cmd, work, env)
                res["server_cpu_s"], res["server_peak_rss_mb"] = meter.seconds, meter.memory["peak_rss_mb"]
            else:
                res = run_measured(f"{side}-{n}", cmd, work, env)
            res["sidecar"] = sidecar_of(side, out)
            runs[side].append(res)
            last[side] = out
    panel = truth_panel(path)
    lengths = panel.groupby("unique_id").size()
    fc = {side: forecasts_of(side, last[side]) for side in SIDES}
    scores = {side: score(f, panel)["mase"].reindex(list(MODELS)) for side, f in fc.items()}
    sf_mean = float(scores["statsforecast"].mean())
    sf_wall = statistics.median(r["wall_s"] for r in runs["statsforecast"])
    rows = []
    for side in SIDES:
        side_runs = runs[side]
        wall = statistics.median(r["wall_s"] for r in side_runs)
        mean = float(scores[side].mean())
        row = {
            "series": n,
            "side": side,
            "wall_s": round(wall, 2),
            "walls": [r["wall_s"] for r in side_runs],
            "ratio_vs_sf": round(wall / sf_wall, 3),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in side_runs),
            "peak_pss_mb": statistics.median(r["peak_pss_mb"] for r in side_runs),
            "max_proc_rss_mb": statistics.median(r["max_proc_rss_mb"] for r in side_runs),
            "procs": max(r["max_procs"] for r in side_runs),
            "mean_mase": round(mean, 4),
            "mase_vs_sf_pct": round(100 * (mean / sf_mean - 1), 2),
            "rc": [r["rc"] for r in side_runs],
        }
        rows.append(row)
    checks = {s: same_folds(fc[s], fc["statsforecast"]) for s in ("cli", "cli_processes", "engine")}
    board = last["cli"] / "cli" / "leaderboard.csv"
    if board.exists():  # the CLI's own leaderboard must agree with our scoring
        import pandas as pd

        lb = pd.read_csv(board).set_index("model")["mase"]
        checks["cli"]["leaderboard_max_abs_diff"] = float((lb.reindex(scores["cli"].index) - scores["cli"]).abs().max())
    per_model = [
        {"series": n, "model": m} | {f"mase_{s}": round(float(scores[s][m]), 4) for s in SIDES} for m in MODELS
    ]
    return {
        "series": n,
        "repeats": repeats,
        "rows_in_file": int(len(panel)),
        "length": {"mean": round(float(lengths.mean()), 1), "min": int(lengths.min()), "max": int(lengths.max())},
        "sides": rows,
        "per_model": per_model,
        "checks": checks,
        "runs": runs,
    }


def bench_ingest(sizes: Sequence[int], cfg: argparse.Namespace, work: Path) -> list[dict]:
    rows = []
    for n in sizes:
        path = universe(work, n, cfg.seed)
        side = work / f"ingest-{n}.json"
        res = run_measured(f"ingest-{n}", [PY, str(Path(__file__)), "--run-ingest", str(path), str(side)], work)
        car = json.loads(side.read_text()) if side.exists() else {}
        rows.append(
            {"series": n, "rows": car.get("rows"), "wall_s": res["wall_s"], "ingest_s": car.get("ingest_s")}
            | {"imports_s": car.get("imports_s"), "peak_rss_mb": res["peak_rss_mb"], "file_mb": path.stat().st_size}
        )
        rows[-1]["file_mb"] = round(rows[-1]["file_mb"] / MB, 1)
    return rows


# ---- verdicts, plot, files --------------------------------------------------------------------------------
def growth(sizes_rows: list[dict], key: str) -> list[dict]:
    """Per side, between consecutive sizes: the log-ratio exponent of `key` and the MB (or s) per added series."""
    out = []
    for side in SIDES:
        pts = [(r["series"], r[key]) for s in sizes_rows for r in s["sides"] if r["side"] == side]
        for (n1, v1), (n2, v2) in zip(pts, pts[1:], strict=False):
            out.append(
                {
                    "side": side,
                    "from": n1,
                    "to": n2,
                    "exponent": round(math.log(v2 / v1) / math.log(n2 / n1), 3) if v1 > 0 and v2 > 0 else None,
                    "per_added_series": round((v2 - v1) / (n2 - n1), 3),
                }
            )
    return out


def plot(sizes_rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"cli": "tab:blue", "cli_processes": "tab:purple", "engine": "tab:green", "statsforecast": "tab:orange"}
    for ax, key, label in ((axes[0], "wall_s", "wall seconds"), (axes[1], "peak_rss_mb", "peak RSS of the tree, MB")):
        for side in SIDES:
            pts = [(r["series"], r[key]) for s in sizes_rows for r in s["sides"] if r["side"] == side]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, "o-", color=colours[side], label=side)
            ax.plot(xs, [ys[0] * x / xs[0] for x in xs], ":", color=colours[side], alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])  # the sizes themselves, not powers of ten
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("series in the universe")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].plot([], [], "k:", alpha=0.6, label="linear from the smallest size")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verdicts(sizes_rows: list[dict], rss_growth: list[dict], total_mb: float) -> list[str]:
    notes = []
    by = {(r["series"], r["side"]): r for s in sizes_rows for r in s["sides"]}
    goal = [s for s in sizes_rows if s["series"] == GOAL_SIZE]
    if goal:
        cli = by[(GOAL_SIZE, "cli")]
        for side in ("cli", "cli_processes"):
            row = by[(GOAL_SIZE, side)]
            notes.append(
                f"goal at {GOAL_SIZE} series, wall {side}/statsforecast <= 0.5: {row['ratio_vs_sf']} -> "
                f"{verdict(row['ratio_vs_sf'] <= 0.5)}"
            )
        notes.append(
            f"goal at {GOAL_SIZE} series, mean MASE <= +1 % vs statsforecast: {cli['mase_vs_sf_pct']} % -> "
            f"{verdict(cli['mase_vs_sf_pct'] <= 1.0)}"
        )
    else:
        notes.append(f"goal (at {GOAL_SIZE} series) not measured in this run: pass --sizes including {GOAL_SIZE}")
    for side in SIDES:
        exps = [g["exponent"] for g in rss_growth if g["side"] == side and g["exponent"] is not None]
        if exps:
            notes.append(
                f"{side}: RSS growth exponents between sizes {exps} (1 = linear) -> RSS no faster than linear: "
                f"{verdict(max(exps) <= 1.0)}"
            )
    largest = max(s["series"] for s in sizes_rows)
    for side in SIDES:
        peak = by[(largest, side)]["peak_rss_mb"]
        if largest >= 2000:
            notes.append(
                f"{side}: 2,000+ series peak RSS {peak:.0f} MB of {total_mb:.0f} MB total memory "
                f"({100 * peak / total_mb:.1f} %) -> fits in memory: {verdict(peak < total_mb)}"
            )
        else:
            slope = [g["per_added_series"] for g in rss_growth if g["side"] == side]
            est = peak + max(slope[-1] if slope else 0.0, 0.0) * (2000 - largest)
            notes.append(
                f"{side}: 2,000 series not measured; linear extrapolation from {largest} series: ~{est:.0f} MB "
                f"of {total_mb:.0f} MB ({100 * est / total_mb:.1f} %)"
            )
    return notes


def save(name: str, payload: dict, tables: dict[str, list[dict]], notes: list[str], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    text = [f"# scale benchmark: {name}", "", f"`{' '.join(sys.argv)}` — {payload['created_at']}", ""]
    text += [f"Machine: {payload['cpus']} CPUs, {payload['memory_total_mb']:.0f} MB memory. {payload['what']}", ""]
    for title, rows in tables.items():
        text += [f"## {title}", "", md_table(rows), ""]
    text += ["## Verdict", ""] + [f"- {n}" for n in notes]
    if (out_dir / f"{name}.png").exists() and "sizes" in payload:
        text += ["", f"![cost against series count]({name}.png)"]
    (out_dir / f"{name}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text[4:]))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, one run per side")
    p.add_argument("--sizes", default=None, help=f"comma list of series counts (default {SIZES})")
    p.add_argument("--repeats", type=int, default=None, help=f"runs per side and size (default {REPEATS}, else 1)")
    p.add_argument("--part", choices=["all", "ingest"], default="all", help="ingest: time load_panel only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--keep", action="store_true", help="keep the work directory (universes, run outputs)")
    p.add_argument("--run-engine", nargs=2, metavar=("CSV", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--run-ingest", nargs=2, metavar=("CSV", "OUT"), help=argparse.SUPPRESS)
    cfg = p.parse_args(argv)
    if cfg.run_engine:
        return run_engine_side(*cfg.run_engine)
    if cfg.run_ingest:
        return run_ingest_side(*cfg.run_ingest)

    import psutil

    sizes = tuple(int(s) for s in cfg.sizes.split(",")) if cfg.sizes else QUICK_SIZES if cfg.quick else SIZES
    sizes = tuple(sorted(sizes))
    name = ("scale_ingest" if cfg.part == "ingest" else "scale") + ("_quick" if cfg.quick else "")
    total_mb = psutil.virtual_memory().total / MB
    base = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_total_mb": round(total_mb),
        "config": {"sizes": sizes, "seed": cfg.seed, "models": MODELS, **FOLDS},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"work dir {work}; warming the bytecode cache ...", flush=True)
    clock = time.perf_counter()
    warm_bytecode()
    server = None
    try:
        if cfg.part == "ingest":
            rows = bench_ingest(sizes, cfg, work)
            what = "ingest.load_panel on each universe CSV in its own process (no price store)."
            save(name, base | {"what": what, "rows": rows}, {"Ingest": rows}, [], cfg.out)
            return None
        server, api = start_server(work)
        print(f"prefect server at {api}; untimed warm-up on 5 series ...", flush=True)
        warm = universe(work, 5, cfg.seed)
        (work / "warm").mkdir()
        for side, (cmd, env) in side_commands(warm, work / "warm", api).items():
            run_measured(f"warm-{side}", cmd, work, env)
        sizes_rows = []
        for n in sizes:
            repeats = cfg.repeats or (1 if cfg.quick else REPEATS.get(n, 1))
            sizes_rows.append(bench_size(n, repeats, cfg, work, server, api))
        rss_growth = growth(sizes_rows, "peak_rss_mb")
        wall_growth = growth(sizes_rows, "wall_s")
        plot(
            sizes_rows,
            cfg.out / f"{name}.png",
            f"statistical family, 20 origins x step 5, horizon 5; dotted: linear from {sizes[0]} series",
        )
        notes = verdicts(sizes_rows, rss_growth, total_mb)
        notes += [
            "peak_rss_mb: RSS of the side's process and all its children summed, sampled every 0.2 s (a forked "
            "worker's shared pages count once per worker; peak_pss_mb splits them); the Prefect server is started "
            "once before any timing and is not counted (its CPU and memory during each cli run are in the JSON)",
            "max_proc_rss_mb: the largest single process's exact peak RSS (kernel ru_maxrss via wait4)",
            "mean_mase: mean over the five models of the mean over series of the per-series MASE, every side "
            "scored here from the panel's truth (benchmarks/peers/_common.score)",
        ]
        folds_ok = all(c["identical"] for s in sizes_rows for c in s["checks"].values())
        notes.append(f"folds identical to statsforecast's on every size: {folds_ok}")
        notes.append(f"the whole benchmark took {time.perf_counter() - clock:.0f} s")
        sides_table = [
            {k: v for k, v in r.items() if k not in ("walls", "rc")} | {"rc": r["rc"]}
            for s in sizes_rows
            for r in s["sides"]
        ]
        universes = [{"series": s["series"], "rows": s["rows_in_file"], **s["length"]} for s in sizes_rows]
        what = (
            "Sides are whole subprocesses run interleaved; wall_s and RSS are medians over the repeats; "
            "ratio_vs_sf and mase_vs_sf_pct compare with statsforecast at the same size."
        )
        payload = base | {
            "what": what,
            "sizes": sizes_rows,
            "rss_growth": rss_growth,
            "wall_growth": wall_growth,
            "verdict": notes,
        }
        save(
            name,
            payload,
            {
                "Universes (sessions per series)": universes,
                "Cost and accuracy per size": sides_table,
                "Peak RSS growth between sizes": rss_growth,
                "Wall-time growth between sizes": wall_growth,
                "MASE per model": [m for s in sizes_rows for m in s["per_model"]],
            },
            notes,
            cfg.out,
        )
    finally:
        if server is not None:
            stop_server(server)
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    return None


if __name__ == "__main__":
    main()
