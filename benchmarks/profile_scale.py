"""Where a wide universe's backtest time goes: py-spy over the pure engine on N short synthetic series.

    python benchmarks/profile_scale.py [--series 20] [--root DIR] [--label after]

Runs `backtest.engine.run_backtest` (statistical family, 20 origins, step 5, horizon 5) on the universe generator's
series (benchmarks/peers/universe.py) under `py-spy record`, then splits the samples by what the engine was doing:
fitting, forecasting the origins, scoring them into the forecast table, the unit's other tables, imports.
`--root` profiles another checkout of pricecast (e.g. `git worktree add /tmp/before <commit>`), so a before/after
pair runs the same script on the same data. Appends the table to benchmarks/results/profile_scale.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Frames that name a phase, in priority order: the first one found in a sample's stack (outermost first) wins.
PHASES = (
    ("fit", ("PriceTask.fit",)),
    ("forecast origins", ("PriceTask.predict",)),
    ("score into the table", ("PriceTask.score", "_predict.<locals>.<listcomp>")),
    ("unit tables", ("price_result",)),
    ("fold checks", ("check_folds", "prepare_series", "prepare_panel")),
    ("imports", ("_find_and_load",)),
)

WORKLOAD = """
import sys, time, json
from pathlib import Path
sys.path.insert(0, {root!r}); sys.path.insert(0, {peers!r})
import pandas as pd
from universe import write_universe
from backtest.engine import run_backtest
from backtest.folds import FoldPlan
path = write_universe(Path({csv!r}), {n}, seed=0)
raw = pd.read_csv(path, parse_dates=["Date"])
panel = raw.rename(columns={{"Ticker": "unique_id", "Date": "ds", "Adj Close": "y"}})[["unique_id", "ds", "y"]]
started = time.perf_counter()
plan = FoldPlan(horizon=5, windows=20, step=5)
result = run_backtest(panel, models=["naive", "ses", "holt", "ets", "arima"], plan=plan)
print(json.dumps({{"wall_s": round(time.perf_counter() - started, 2), "failures": len(result.failures)}}))
"""


def phase_of(stack: list[str]) -> str:
    for name, markers in PHASES:
        if any(any(frame.startswith(m) for m in markers) for frame in stack):
            return name
    return "other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=20)
    p.add_argument("--root", type=Path, default=ROOT, help="the pricecast checkout to profile")
    p.add_argument("--label", default="after")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="profile-scale-"))
    script = work / "workload.py"
    csv = str(work / "universe.csv")
    script.write_text(WORKLOAD.format(root=str(args.root), peers=str(HERE / "peers"), csv=csv, n=args.series))
    raw = work / "profile.txt"
    py_spy = Path(sys.executable).parent / "py-spy"
    done = subprocess.run(
        [str(py_spy), "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    outcome = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [re.sub(r" \(.*", "", f) for f in stack.split(";")]
        if any(f.startswith("run_backtest") for f in frames):
            counts[phase_of(frames)] += int(n)
    total = sum(counts.values())
    rows = [f"| {name} | {100 * counts[name] / total:.0f}% |" for name, _ in (*PHASES, ("other", ()))]
    text = [
        f"## {args.label}: {args.series} series, run_backtest {outcome['wall_s']} s "
        f"({datetime.now(UTC):%Y-%m-%d}, {args.root})",
        "",
        "| phase | share of run_backtest samples |",
        "|---|---:|",
        *rows,
        "",
    ]
    print("\n".join(text))
    out = HERE / "results" / "profile_scale.md"
    header = "" if out.exists() else f"# Where the engine's time goes (`{Path(__file__).name}`)\n\n"
    with out.open("a") as fh:
        fh.write(header + "\n".join(text) + "\n")


if __name__ == "__main__":
    main()
