"""Event-forecast backtest benchmark on W1: wall time of the whole models list, and what the models achieve.

W1 = the bundled sample's AAPL, GOOG, IBM, MSFT adjusted closes from 2005-03-01 (~2,000 sessions each).
Event: the close rises >= 5% within 10 sessions (threshold 0.05, horizon 10): 28% of all labelled sessions
and 8-31% per ticker over the scored span, a minority class but not a vanishing one (threshold 0.05 with
horizon 5 would leave IBM and MSFT at 4-6%, a handful of events per ticker).
Folds: 50 rolling origins (folds), step 5, 5 test origins per fold -> 250 scored origins per ticker, the last
250 labelled sessions, each scored once. Models: base_rate, logistic, rnn_event, lstm_event, gru_event with
their default refit policy (1, 1, 10, 10, 10 folds; the Keras ones warm-started).

    python benchmarks/bench_event.py [--quick] [--repeats N]

Each repeat runs the whole event backtest as ONE subprocess (interpreter start, imports, TensorFlow
initialisation, features, every unit, scoring, report) with fresh temporary homes; the table quotes the
median wall time, the phase split and per-model unit time of the median run, and the leaderboard.
--quick: AAPL and IBM, 10 folds. Results: benchmarks/results/event[_quick].json and .md.
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
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TICKERS = ("AAPL", "GOOG", "IBM", "MSFT")
QUICK_TICKERS = ("AAPL", "IBM")
START = date(2005, 3, 1)
THRESHOLD, HORIZON = 0.05, 10
WINDOWS, QUICK_WINDOWS, STEP = 50, 10, 5
MODELS = ("base_rate", "logistic", "rnn_event", "lstm_event", "gru_event")


# ---- child: one whole run, timed by phase ------------------------------------------------------------------
def child(cfg: argparse.Namespace) -> None:
    started = time.perf_counter()
    import pandas as pd

    from backtest.event_task import evaluate_events, event_fold_plan, run_event_backtest
    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from outputs.write import event_report_input
    from reports.event_report import render_event_html

    phases: dict[str, float] = {"imports": time.perf_counter() - started}
    tickers = QUICK_TICKERS if cfg.quick else TICKERS
    t = time.perf_counter()
    panel, _ = load_panel(SourceSpec(source="sample", tickers=tickers, start=START))
    phases["load"] = time.perf_counter() - t
    unit_seconds: dict[str, float] = {}
    last = [time.perf_counter()]

    def progress(done: int, total: int, uid: str, model: str) -> None:
        now = time.perf_counter()
        unit_seconds[model] = unit_seconds.get(model, 0.0) + now - last[0]
        last[0] = now

    t = time.perf_counter()
    plan = event_fold_plan(origins_per_fold=STEP, step=STEP, windows=QUICK_WINDOWS if cfg.quick else WINDOWS)
    result = run_event_backtest(
        panel, threshold=THRESHOLD, lookahead=HORIZON, plan=plan, models=list(MODELS), progress=progress
    )
    phases["backtest"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluation = evaluate_events(result)
    phases["score"] = time.perf_counter() - t
    t = time.perf_counter()
    out = Path(cfg.out)
    result.save(out)
    evaluation.save(out)
    render_event_html(
        event_report_input(result, evaluation),
        out / "report.html",
    )
    phases["write+report"] = time.perf_counter() - t
    preds = result.predictions
    scored = preds[preds["model"] == "base_rate"]
    board = evaluation.leaderboard
    cols = ["model", "brier", "brier_skill", "roc_auc", "pr_auc", "log_loss", "f1", "mean_rank", "p_less"]
    payload = {
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "unit_s": {k: round(v, 2) for k, v in unit_seconds.items()},
        "fit_predict_s": result.timings.groupby("model")[["fit_seconds", "predict_seconds"]].sum().round(2).to_dict(),
        "refits": result.timings.groupby("model")["refit"].sum().astype(int).to_dict(),
        "n_origins": int(len(scored)),
        "event_rate_scored": round(float(scored["y"].mean()), 4),
        "event_rate_by_ticker": scored.groupby("unique_id")["y"].mean().round(3).to_dict(),
        "event_rate_all_labelled": result.meta["event_rate"],
        "failures": int(len(result.failures)),
        "leaderboard": json.loads(board[cols + ["beats_base_rate"]].round(4).to_json(orient="records")),
    }
    Path(cfg.out + ".json").write_text(json.dumps(payload, indent=2, default=str))
    pd.options.display.width = 200


# ---- driver ------------------------------------------------------------------------------------------------
def run_once(cfg: argparse.Namespace, work: Path, r: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"event-{r}-", dir=work))
    env = {
        **os.environ,
        "PRICECAST_HOME": str(tmp / "home"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--out", str(tmp / "run")]
    cmd += ["--quick"] if cfg.quick else []
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = round(time.perf_counter() - started, 2)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"run {r} failed (rc={proc.returncode})")
    side = json.loads((tmp / "run.json").read_text())
    print(f"  run {r + 1}: {wall:.1f} s (load {load:.1f})", flush=True)
    return {"wall_s": wall, "load1": round(load, 2), **side}


def md_table(rows: list[dict]) -> str:
    if not rows:
        return "_none_"
    cols = list(rows[0])

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="AAPL + IBM, 10 folds")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    cfg = parser.parse_args()
    if cfg.child:
        child(cfg)
        return
    name = "event_quick" if cfg.quick else "event"
    tickers = QUICK_TICKERS if cfg.quick else TICKERS
    windows = QUICK_WINDOWS if cfg.quick else WINDOWS
    print(f"event benchmark {name}: {', '.join(tickers)} x {windows} folds x {STEP} origins, models {MODELS}")
    with tempfile.TemporaryDirectory(prefix="bench-event-") as work:
        runs = [run_once(cfg, Path(work), r) for r in range(cfg.repeats)]
    median = statistics.median(r["wall_s"] for r in runs)
    typical = min(runs, key=lambda r: abs(r["wall_s"] - median))
    per_model = [
        {
            "model": m,
            "unit_s": typical["unit_s"].get(m),
            "fit_s": typical["fit_predict_s"]["fit_seconds"].get(m),
            "predict_s": typical["fit_predict_s"]["predict_seconds"].get(m),
            "refits": typical["refits"].get(m),
        }
        for m in MODELS
    ]
    payload = {
        "workload": {
            "tickers": list(tickers),
            "start": START.isoformat(),
            "threshold": THRESHOLD,
            "horizon": HORIZON,
            "windows": windows,
            "step": STEP,
            "origins_per_fold": STEP,
            "models": list(MODELS),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s_median": median,
        "walls": [r["wall_s"] for r in runs],
        "runs": runs,
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    text = [
        f"# event benchmark: {name}",
        "",
        f"`benchmarks/bench_event.py{' --quick' if cfg.quick else ''} --repeats {cfg.repeats}` — "
        f"{payload['created_at']}",
        "",
        f"Event: close rises >= {THRESHOLD:.0%} within {HORIZON} sessions. {', '.join(tickers)} from {START}, "
        f"{windows} folds x {STEP} origins (step {STEP}) = {typical['n_origins'] // len(tickers)} scored origins "
        f"per ticker; event rate over the scored origins {typical['event_rate_scored']:.1%} "
        f"({', '.join(f'{k} {v:.1%}' for k, v in typical['event_rate_by_ticker'].items())}).",
        "",
        "## Wall time (whole process: imports, TensorFlow start, features, every unit, scoring, report)",
        "",
        md_table(
            [
                {
                    "wall_s_median": median,
                    "walls": str(payload["walls"]),
                    **{f"{k}_s": v for k, v in typical["phases_s"].items()},
                    "load1": typical["load1"],
                }
            ]
        ),
        "",
        "## Per model (all tickers; unit_s = wall of its units incl. thresholds and batching)",
        "",
        md_table(per_model),
        "",
        "## Leaderboard (mean over tickers; p_less = one-sided DM p vs base_rate on Brier loss)",
        "",
        md_table(typical["leaderboard"]),
        "",
        f"- failures: {typical['failures']}",
        "- figures measured on a shared 2-core machine while other jobs were running: ratios matter more than seconds",
    ]
    (out_dir / f"{name}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
