"""Start-up benchmark: what one small CLI job costs against the one-shot statsforecast script doing the same.

    python benchmarks/bench_startup.py [--quick] [--repeats N] [--port P]

Side by side in one run, interleaved (a to e per repeat, so load drifts hit every side), medians of N repeats
(default 5, --quick 2), each a whole process timed from spawn to exit:
  a  benchmarks/peers/sf_oneshot.py: import statsforecast, read AAPL of the bundled sample, fit Naive, forecast 5
     steps with 80/95% intervals.
  b  `pricecast forecast --tickers AAPL --models naive --horizon 5` cold: no server running, a fresh PREFECT_HOME
     (so a fresh database), which starts the background server (pricecast.server); stopped after the repeat.
  c  the same command again while that server runs.
  d  `pricecast server start` alone in another fresh PREFECT_HOME: the server's own boot, the floor under b.
  e  the command with b's PREFECT_HOME after its server stopped (after a reboot): no migrations to run.
b and c each get a fresh PRICECAST_HOME, so both fit every model (naive and the always-run ensemble) from scratch
like the peer does; the only difference between them is the server. Goals: b/a <= 3, c/a <= 1.5.
Also recorded: which heavy modules the naive forecast imports (one untimed in-process run against the server).
Every process reads a warmed private bytecode cache (peers/_common.py). Results: benchmarks/results/startup[_quick]
.json and .md. Timings are wall seconds on whatever machine runs this (a busy shared 2-core box inflates them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "peers"))

from _common import bytecode_env, warm_bytecode  # noqa: E402

COMMAND = ["forecast", "--tickers", "AAPL", "--models", "naive", "--horizon", "5"]
PRICECAST = [sys.executable, "-m", "pricecast.cli"]
PEER = [sys.executable, str(HERE / "peers" / "sf_oneshot.py"), "--ticker", "AAPL", "--horizon", "5"]
HEAVY = (
    *("statsmodels", "prophet", "cmdstanpy", "tensorflow", "keras", "torch", "statsforecast", "sklearn", "scipy"),
    *("numba", "distributed", "dask", "plotly", "duckdb", "exchange_calendars", "pyarrow"),
)
WARM = (
    "import pandas, scipy.stats, statsmodels.tsa.api, statsforecast.models, prefect, prefect.task_engine, "
    "prefect.flow_engine, prefect.server.api.server, uvicorn, flows.forecast, pricecast.cli"
)
# One in-process run of the command, then the heavy top-level packages it loaded, as JSON on the last line.
IMPORTED = f"""
import json, sys
from pricecast.cli import app
try:
    app({COMMAND!r})
except SystemExit:
    pass
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))
"""


def _env(base: dict[str, str], port: int, prefect_home: Path, pricecast_home: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != "PREFECT_API_URL" and not k.startswith("PYTEST_")}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PRICECAST_HOME=str(pricecast_home),
        PRICECAST_SERVER="background",
        PRICECAST_SERVER_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[-7:])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return round(elapsed, 3)


def _stop(env: dict[str, str]) -> None:
    subprocess.run([*PRICECAST, "server", "stop"], env=env, cwd=ROOT, capture_output=True, timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(repeats: int, port: int, tmp: Path) -> dict:
    base = bytecode_env()
    warm_bytecode(code=WARM)
    times: dict[str, list[float]] = {"a_peer": [], "b_cold": [], "c_running": [], "d_server_boot": []}
    times["e_restart"] = []
    imported: list[str] = []
    for i in range(repeats):
        times["a_peer"].append(_timed(PEER, base))
        env = _env(base, port, tmp / f"prefect-{i}", tmp / f"pricecast-cold-{i}")
        try:
            times["b_cold"].append(_timed([*PRICECAST, *COMMAND], env))
            running = {**env, "PRICECAST_HOME": str(tmp / f"pricecast-running-{i}")}
            times["c_running"].append(_timed([*PRICECAST, *COMMAND], running))
            if i == 0:  # untimed: what the naive forecast loads (fits stored by c: the update path, same imports)
                probe = {**env, "PRICECAST_HOME": str(tmp / "pricecast-probe")}
                done = subprocess.run([sys.executable, "-c", IMPORTED], env=probe, cwd=ROOT, capture_output=True)
                imported = json.loads(done.stdout.decode().strip().splitlines()[-1])
        finally:
            _stop(env)
        try:  # the same PREFECT_HOME after the server stopped (a reboot): its database exists, no migrations
            times["e_restart"].append(_timed([*PRICECAST, *COMMAND], {**env, "PRICECAST_HOME": str(tmp / f"pc-e-{i}")}))
        finally:
            _stop(env)
        boot = _env(base, port, tmp / f"prefect-boot-{i}", tmp / f"pricecast-boot-{i}")
        try:
            times["d_server_boot"].append(_timed([*PRICECAST, "server", "start"], boot))
        finally:
            _stop(boot)
        print(f"repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    medians = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {
        "times": times,
        "medians": medians,
        "ratios": {
            "cold_over_peer": round(medians["b_cold"] / medians["a_peer"], 3),
            "running_over_peer": round(medians["c_running"] / medians["a_peer"], 3),
            "server_boot_over_peer": round(medians["d_server_boot"] / medians["a_peer"], 3),
            "restart_over_peer": round(medians["e_restart"] / medians["a_peer"], 3),
        },
        "heavy_modules_imported": imported,
    }


def _markdown(results: dict) -> str:
    m, r = results["medians"], results["ratios"]
    rows = [
        ("a: one-shot statsforecast script (s)", m["a_peer"], ""),
        ("b: pricecast forecast, cold: starts the server (s)", m["b_cold"], ""),
        ("c: pricecast forecast, server running (s)", m["c_running"], ""),
        ("d: `pricecast server start` alone, fresh PREFECT_HOME (s)", m["d_server_boot"], ""),
        ("e: pricecast forecast, server stopped, PREFECT_HOME kept (s)", m["e_restart"], ""),
        ("b / a", r["cold_over_peer"], "<= 3"),
        ("c / a", r["running_over_peer"], "<= 1.5"),
        ("d / a (the server's boot: the floor under b)", r["server_boot_over_peer"], ""),
        ("e / a (cold after a restart: the database exists)", r["restart_over_peer"], ""),
    ]
    lines = [
        f"# Start-up benchmark ({'quick, ' if results['quick'] else ''}{results['created_at']}, "
        f"{os.cpu_count()} CPUs, medians of {results['repeats']})",
        "",
        f"Command: `pricecast {' '.join(COMMAND)}`; peer: `python benchmarks/peers/sf_oneshot.py`.",
        "",
        "| measure | value | goal |",
        "|:---|---:|---:|",
        *[f"| {name} | {value} | {goal} |" for name, value, goal in rows],
        "",
        "Heavy modules the naive forecast imported: " + (", ".join(results["heavy_modules_imported"]) or "none"),
        "",
        "Every repeat: " + "; ".join(f"{k} {v}" for k, v in results["times"].items()),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 repeats")
    p.add_argument("--repeats", type=int, default=None, help="default 5 (--quick 2)")
    p.add_argument("--port", type=int, default=None, help="the background server's port (default: a free one)")
    args = p.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="pricecast-bench-startup-") as tmp:
        results = run(repeats, args.port or _free_port(), Path(tmp))
    results = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick, **results}
    results["repeats"] = repeats
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = "startup_quick" if args.quick else "startup"
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
