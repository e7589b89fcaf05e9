"""Covariates and tuning: the course's experiment offline, what tuning does to Prophet, and what tuning costs.

    python benchmarks/bench_covariates.py [--part course|prophet|cost|all] [--tune N] [--quick]

Every part runs `pricecast backtest` as a user would (a subprocess, a scratch PRICECAST_HOME, Prefect's temporary
server) and reads the run directory it writes (diagnosis.csv, leaderboard.csv, timings.parquet, tuning.csv):
  course   AAPL with MSFT, IBM and GOOG standing in for the course's indices (the bundled sample is offline),
           models naive, arimax, prophet, lstm, `--covariates MSFT,IBM,GOOG --tune N`: the diagnosis table and
           its sentences. The live-source command with the course's real list is in the README.
  prophet  the default sample run's four tickers, prophet against prophet+tuned (Prophet's MASE is ~5x naive's).
  cost     W1's statistical tunable models (moving_average, holt, ets, arima; 4 tickers x 50 origins) with and
           without `--tune N`: wall time, fit seconds per model and the MASE each way.
Results: benchmarks/results/covariates[_quick].json and .md (one file, every part run so far kept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from common.schema import FIT_SECONDS, MASE, MODEL  # noqa: E402
from reports.diagnosis import diagnosis_sentences  # noqa: E402

PRICECAST = [sys.executable, "-m", "pricecast.cli", "backtest"]


def backtest(args: list[str], home: Path) -> tuple[Path, float]:
    """Run one backtest in its own PRICECAST_HOME; (its run directory, wall seconds)."""
    out = home / "run"
    env = {
        **os.environ,
        "PRICECAST_HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        "PRICECAST_SERVER": "temporary",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    started = time.perf_counter()
    done = subprocess.run([*PRICECAST, *args, "--out", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some folds failed, still a result
        raise SystemExit(f"pricecast backtest {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return out, wall


def fit_cost(run: Path) -> dict[str, float]:
    timings = pd.read_parquet(run / "timings.parquet")
    return {str(m): round(float(s), 2) for m, s in timings.groupby(MODEL)[FIT_SECONDS].sum().items()}


def leaderboard_mase(run: Path) -> dict[str, float]:
    board = pd.read_csv(run / "leaderboard.csv")
    return {str(m): round(float(v), 4) for m, v in zip(board[MODEL], board[MASE], strict=True)}


def part_course(cfg: argparse.Namespace, scratch: Path) -> dict:
    windows = 6 if cfg.quick else 20
    args = ["--tickers", "AAPL", "--covariates", "MSFT,IBM,GOOG", "--models", "naive,arimax,prophet,lstm"]
    args += ["--tune", str(cfg.tune), "--windows", str(windows)]
    run, wall = backtest(args, scratch / "course")
    diagnosis = pd.read_csv(run / "diagnosis.csv")
    tuning = pd.read_csv(run / "tuning.csv")
    return {
        "command": "pricecast backtest " + " ".join(args),
        "wall_s": round(wall, 1),
        "diagnosis": diagnosis.to_dict("records"),
        "sentences": diagnosis_sentences(diagnosis),
        "fit_seconds": fit_cost(run),
        "mase": leaderboard_mase(run),
        "chosen": tuning.groupby(MODEL)["params"].agg(lambda p: sorted(set(p))).to_dict(),
    }


def part_prophet(cfg: argparse.Namespace, scratch: Path) -> dict:
    windows = 6 if cfg.quick else 20
    args = ["--models", "naive,prophet", "--tune", str(cfg.tune), "--windows", str(windows)]
    run, wall = backtest(args, scratch / "prophet")
    diagnosis = pd.read_csv(run / "diagnosis.csv")
    tuning = pd.read_csv(run / "tuning.csv")
    return {
        "command": "pricecast backtest " + " ".join(args),
        "wall_s": round(wall, 1),
        "mase": leaderboard_mase(run),
        "sentences": diagnosis_sentences(diagnosis),
        "fit_seconds": fit_cost(run),
        "chosen": tuning["params"].value_counts().head(8).to_dict(),
    }


def part_cost(cfg: argparse.Namespace, scratch: Path) -> dict:
    windows = 10 if cfg.quick else 50
    base = ["--tickers", "AAPL,GOOG,IBM,MSFT", "--models", "moving_average,holt,ets,arima", "--windows", str(windows)]
    plain_run, plain_wall = backtest(base, scratch / "plain")
    tuned_run, tuned_wall = backtest([*base, "--tune", str(cfg.tune)], scratch / "tuned")
    return {
        "command": "pricecast backtest " + " ".join(base) + f" [--tune {cfg.tune}]",
        "wall_s": {"plain": round(plain_wall, 1), "with_tune": round(tuned_wall, 1)},
        "fit_seconds": fit_cost(tuned_run),
        "mase": leaderboard_mase(tuned_run),
    }


def markdown(results: dict) -> str:
    lines = [f"# Covariates and tuning ({results['when']}; each part's command gives its --tune)", ""]
    if "course" in results:
        c = results["course"]
        lines += ["## The course's experiment, offline", "", f"`{c['command']}`: {c['wall_s']} s wall", ""]
        lines += ["| model | kind | MASE | vs plain | p vs plain | p vs naive |", "|---|---|---:|---:|---:|---:|"]
        for row in c["diagnosis"]:
            change = row.get("mase_change")
            lines.append(
                f"| {row['base_model']} | {row['kind']} | {row['mase']:.4f} | "
                f"{'' if pd.isna(change) else f'{100 * change:+.1f}%'} | {_p(row.get('p_vs_plain'))} | "
                f"{_p(row.get('p_vs_naive'))} |"
            )
        lines += ["", *[f"- {s}" for s in c["sentences"]], "", "Fit seconds per model (all folds): "]
        lines += [", ".join(f"{m} {s}" for m, s in c["fit_seconds"].items()), ""]
    if "prophet" in results:
        p = results["prophet"]
        lines += ["## What tuning does to Prophet (the sample's four tickers)", "", f"`{p['command']}`: "]
        lines += [f"{p['wall_s']} s wall; MASE {p['mase']}", "", *[f"- {s}" for s in p["sentences"]], ""]
        lines += [f"Fit seconds: {p['fit_seconds']}", ""]
    if "cost" in results:
        k = results["cost"]
        lines += ["## The cost of tuning on W1 (4 tickers x 50 origins)", "", f"`{k['command']}`", ""]
        lines += [f"Wall: {k['wall_s']['plain']} s plain, {k['wall_s']['with_tune']} s with tuning.", ""]
        lines += ["| model | fit seconds | MASE |", "|---|---:|---:|"]
        lines += [f"| {m} | {s} | {k['mase'].get(m, float('nan')):.4f} |" for m, s in k["fit_seconds"].items()]
        lines.append("")
    return "\n".join(lines)


def _p(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("course", "prophet", "cost", "all"), default="all")
    parser.add_argument("--tune", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    cfg = parser.parse_args()
    stem = HERE / "results" / ("covariates_quick" if cfg.quick else "covariates")
    results = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    results |= {"when": datetime.now(UTC).isoformat(timespec="seconds"), "tune": cfg.tune}
    parts = {"course": part_course, "prophet": part_prophet, "cost": part_cost}
    with tempfile.TemporaryDirectory(prefix="pricecast-bench-cov-") as tmp:
        for name, run in parts.items():
            if cfg.part in (name, "all"):
                print(f"running {name} ...", flush=True)
                results[name] = run(cfg, Path(tmp))
                stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
