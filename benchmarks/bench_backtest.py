"""Backtest benchmarks on workload W1: pricecast against its peers, measured side by side in one run.

W1 = the bundled sample's AAPL, GOOG, IBM, MSFT adjusted closes from 2005-03-01 (~2,000 sessions each),
50 rolling origins, step 5, horizon 5 (statsforecast's fold convention).

    python benchmarks/bench_backtest.py --part stats|prophet|neural|refit|all [--quick] [--repeats N]

Parts (each side is a whole subprocess; wall seconds include interpreter start, imports and pools):
  stats    `pricecast backtest` (temporary Prefect server; default refit policy) and the pure engine
           `run_backtest` vs statsforecast's `cross_validation(refit=True)` on the same folds
           (naive, ses, holt, ets, arima). Goals: wall ours/theirs <= 0.5, mean MASE <= +1 %.
  prophet  pricecast prophet (default settings, and warm refits at Stan's default tolerance) vs
           prophet.diagnostics.cross_validation on the same cutoffs. Goals: wall <= 0.3x, MASE within 1 %.
           Also prophet vs naive MASE and how far our yhat is from Prophet's own.
  neural   lstm/gru/rnn with the default refit policy (warm-started, batched origins) vs refitting the same
           network from scratch at every origin (refit_every=1, warm_start=False). Goals: <= 0.1x, MASE <= +2 %.
  refit    mean MASE and wall seconds for refit_every = 1, 5, 10, 0 (statistical family; lstm with
           --refit-neural) and the recommended DEFAULT_REFIT_EVERY.
  overhead (diagnostic, not in "all") the CLI vs the engine with naive only: orchestration cost.

Neural runs on a subset (--neural-tickers, --neural-windows; default AAPL,IBM x 20 origins): refitting
three networks from scratch at 200 origins would take well over 15 minutes on 2 cores.

MASE is pricecast's definition for every side (benchmarks/peers/_common.py: each row scaled by its fold's
training-window one-step naive MAE; mean over folds and h per series, mean over series), computed here from
each side's forecast table and the panel's truth. Sides run interleaved (A B A B ...) so machine noise hits
both; with --repeats N the table quotes the median. Bytecode goes to a private cache
(PYTHONPYCACHEPREFIX) warmed before timing, as an installed package would have its .pyc files.
Results: benchmarks/results/backtest_<part>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
sys.path.insert(0, str(PEERS))

from _common import bytecode_env, load_w1, same_folds, score, warm_bytecode  # noqa: E402

from common.schema import CUTOFF, DS, ID, YHAT, Y  # noqa: E402

PY = sys.executable
PRICECAST = str(Path(PY).parent / "pricecast")
STATS_MODELS = ("naive", "ses", "holt", "ets", "arima")
NEURAL_MODELS = ("lstm", "gru", "rnn")
ISSUE_SF = {"wall_s": 95.0, "mean_mase": 2.5955}  # statsforecast on W1 as reported in the issue


# ---- running sides ----------------------------------------------------------------------------------------
def bench_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment per run: fresh PRICECAST_HOME/PREFECT_HOME, no analytics, warm bytecode cache."""
    env = bytecode_env()
    env.update(
        PRICECAST_HOME=str(tmp / "home"),
        PREFECT_HOME=str(tmp / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra or {})
    return env


def run_side(name: str, cmd: list[str], work: Path, extra_env: dict[str, str] | None = None) -> dict:
    """Run one side as a subprocess in fresh temp homes; wall seconds around the whole process."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=work))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with (tmp / "stdout.log").open("w") as out, (tmp / "stderr.log").open("w") as err:
        proc = subprocess.run(cmd, env=bench_env(tmp, extra_env), stdout=out, stderr=err, cwd=HERE.parent)
    wall = round(time.perf_counter() - started, 2)
    tail = (tmp / "stderr.log").read_text()[-1500:]
    print(f"  {name}: {wall:.1f} s (rc={proc.returncode}, load {load_before:.1f})", flush=True)
    if proc.returncode not in (0, 1):  # the CLI exits 1 when some folds failed: still scored
        print(tail, file=sys.stderr)
    return {"name": name, "wall_s": wall, "rc": proc.returncode, "dir": str(tmp), "load1": load_before, "tail": tail}


def interleave(sides: dict[str, callable], repeats: int, work: Path) -> dict[str, list[dict]]:
    """Run every side `repeats` times in A B C A B C order; returns the runs per side."""
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    for r in range(repeats):
        print(f" repeat {r + 1}/{repeats}", flush=True)
        for name, make_cmd in sides.items():
            out = work / f"{name}-{r}.parquet"
            cmd, env = make_cmd(out)
            res = run_side(name, cmd, work, env)
            res["forecasts"] = str(out)
            res["sidecar"] = sidecar(res)
            runs[name].append(res)
    return runs


def median_wall(runs: list[dict]) -> float:
    return round(statistics.median(r["wall_s"] for r in runs), 2)


def engine_cmd(models: Sequence[str], *, tickers: str, windows: int, refit: int | None, params: dict | None = None):
    def make(out: Path):
        cmd = [PY, str(PEERS / "ours_engine.py"), "--models", ",".join(models), "--tickers", tickers]
        cmd += ["--windows", str(windows), "--out", str(out), "--params", json.dumps(params or {})]
        if refit is not None:
            cmd += ["--refit-every", str(refit)]
        return cmd, None

    return make


def cli_cmd(models: Sequence[str], *, tickers: str, windows: int, runner: str):
    def make(out: Path):
        run_dir = out.with_suffix("")
        cmd = [PRICECAST, "backtest", "--source", "sample", "--tickers", tickers, "--start", "2005-03-01"]
        cmd += ["--models", ",".join(models), "--horizon", "5", "--windows", str(windows), "--step", "5"]
        cmd += ["--out", str(run_dir)]
        return cmd, {"PRICECAST_TASK_RUNNER": runner}

    return make


def read_forecasts(run: dict) -> pd.DataFrame:
    path = Path(run["forecasts"])
    if not path.exists():  # the CLI writes a run directory
        path = path.with_suffix("") / "forecasts.parquet"
    return pd.read_parquet(path)


def sidecar(run: dict) -> dict:
    path = Path(run["forecasts"] + ".json")
    return json.loads(path.read_text()) if path.exists() else {}


def naive_forecasts(panel: pd.DataFrame, folds_from: pd.DataFrame) -> pd.DataFrame:
    """The random walk on the folds of another table (yhat = y at the cutoff): the reference every part needs."""
    sig = folds_from.drop_duplicates(["unique_id", "cutoff", "h"])[["unique_id", "cutoff", "ds", "h"]]
    last = panel.rename(columns={"ds": "cutoff", "y": "yhat"})
    out = sig.merge(last, on=["unique_id", "cutoff"], how="left")
    out["model"] = "naive"
    return out


# ---- reporting ------------------------------------------------------------------------------------------
def md_table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def save(part: str, cfg: argparse.Namespace, payload: dict, tables: dict[str, list[dict]], notes: list[str]) -> None:
    out_dir = cfg.out
    out_dir.mkdir(parents=True, exist_ok=True)
    part = part + cfg.suffix
    payload = {"part": part, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **payload}
    (out_dir / f"backtest_{part}.json").write_text(json.dumps(payload, indent=2, default=str))
    text = [f"# backtest benchmark: {part}", "", f"`{' '.join(sys.argv)}` — {payload['created_at']}", ""]
    for title, rows in tables.items():
        text += [f"## {title}", "", md_table(rows), ""]
    text += [f"- {n}" for n in notes]
    (out_dir / f"backtest_{part}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text[4:]))


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# ---- parts ----------------------------------------------------------------------------------------------
def part_stats(cfg: argparse.Namespace, work: Path) -> None:
    tickers, windows, models = cfg.tickers, cfg.windows, STATS_MODELS if not cfg.quick else ("naive", "ses", "arima")
    sides = {f"cli_{r}": cli_cmd(models, tickers=tickers, windows=windows, runner=r) for r in cfg.cli_runners}
    sides["engine"] = engine_cmd(models, tickers=tickers, windows=windows, refit=None)
    sides["statsforecast"] = lambda out: (
        [PY, str(PEERS / "sf_cv.py"), "--models", ",".join(models), "--tickers", tickers]
        + ["--windows", str(windows), "--out", str(out)],
        None,
    )
    runs = interleave(sides, cfg.repeats, work)
    panel = load_w1(tuple(tickers.split(",")))
    theirs = read_forecasts(runs["statsforecast"][-1])
    sf_scores = score(theirs, panel)["mase"]
    wall_sf = median_wall(runs["statsforecast"])
    side_rows, model_rows, checks = [], {m: {"model": m} for m in models}, {}
    for name, side_runs in runs.items():
        fc = read_forecasts(side_runs[-1])
        s = score(fc, panel)["mase"]
        for m in models:
            model_rows[m][f"mase_{name}"] = float(s.get(m, float("nan")))
        mean = float(s.reindex(list(models)).mean())
        rel = mean / float(sf_scores.reindex(list(models)).mean()) - 1.0
        wall = median_wall(side_runs)
        row = {"side": name, "wall_s_median": wall, "walls": [r["wall_s"] for r in side_runs]}
        row |= {
            "ratio_vs_sf": round(wall / wall_sf, 3),
            "mean_mase": round(mean, 4),
            "mase_vs_sf_pct": round(100 * rel, 2),
        }
        side_rows.append(row)
        if name != "statsforecast":
            checks[name] = same_folds(fc, theirs)
            board = Path(side_runs[-1]["forecasts"]).with_suffix("") / "leaderboard.csv"
            if board.exists():  # the CLI's own leaderboard must agree with our scoring
                lb = pd.read_csv(board).set_index("model")["mase"]
                checks[name]["leaderboard_max_abs_diff"] = float((lb.reindex(s.index) - s).abs().max())
            checks[name]["sidecar"] = sidecar(side_runs[-1])
    for m in models:
        model_rows[m]["ours_vs_sf_pct(cli)"] = round(
            100 * (model_rows[m][f"mase_{next(iter(sides))}"] / model_rows[m]["mase_statsforecast"] - 1), 2
        )
    primary = side_rows[0]
    notes = [
        f"goal wall ours/theirs <= 0.5 ({primary['side']}): {primary['ratio_vs_sf']} -> "
        f"{verdict(primary['ratio_vs_sf'] <= 0.5)}",
        f"goal mean MASE <= +1 % ({primary['side']}): {primary['mase_vs_sf_pct']} % -> "
        f"{verdict(primary['mase_vs_sf_pct'] <= 1.0)}",
        f"issue's statsforecast figures: {ISSUE_SF['wall_s']} s, mean MASE {ISSUE_SF['mean_mase']}; here "
        f"{wall_sf} s, {round(float(sf_scores.reindex(list(models)).mean()), 4)}",
        "folds identical to statsforecast's: "
        + ", ".join(f"{k}={v['identical']} ({v['n_cutoffs'][0]} cutoffs)" for k, v in checks.items()),
        "mean_mase = mean over the models of (mean over series of the per-series MASE)",
    ]
    save(
        "stats",
        cfg,
        {
            "config": vars_of(cfg),
            "sides": side_rows,
            "per_model": list(model_rows.values()),
            "checks": checks,
            "runs": runs,
            "issue": ISSUE_SF,
        },
        {"Wall time and accuracy": side_rows, "MASE per model": list(model_rows.values())},
        notes,
    )


def part_prophet(cfg: argparse.Namespace, work: Path) -> None:
    tickers, windows = cfg.prophet_tickers, cfg.prophet_windows
    sides = {
        "ours_default": engine_cmd(["prophet"], tickers=tickers, windows=windows, refit=None),
        # the same, but warm refits converge at Stan's default tolerance (the model's warm_tol_rel_grad=None)
        "ours_stan_tol": engine_cmd(
            ["prophet"], tickers=tickers, windows=windows, refit=None, params={"prophet": {"warm_tol_rel_grad": None}}
        ),
        "prophet_cv": lambda out: (
            [PY, str(PEERS / "prophet_cv.py"), "--tickers", tickers, "--windows", str(windows), "--out", str(out)],
            None,
        ),
    }
    runs = interleave(sides, cfg.repeats, work)
    panel = load_w1(tuple(tickers.split(",")))
    theirs = read_forecasts(runs["prophet_cv"][-1])
    naive_mase = float(score(naive_forecasts(panel, theirs), panel)["mase"]["naive"])
    sf_mase = float(score(theirs, panel)["mase"]["prophet"])
    wall_peer = median_wall(runs["prophet_cv"])
    rows, checks = [], {}
    for name, side_runs in runs.items():
        fc = read_forecasts(side_runs[-1])
        mase = float(score(fc, panel)["mase"]["prophet"])
        wall = median_wall(side_runs)
        # how far our yhat is from Prophet's own, as a share of Prophet's own forecast error
        key = [ID, CUTOFF, DS]
        both = fc[[*key, YHAT]].merge(theirs[[*key, YHAT]], on=key, suffixes=("", "_peer"))
        both = both.merge(panel[[ID, DS, Y]], on=[ID, DS], validate="many_to_one")
        peer_mae = (both[Y] - both[f"{YHAT}_peer"]).abs().mean()
        yhat_gap = 100 * (both[YHAT] - both[f"{YHAT}_peer"]).abs().mean() / peer_mae
        rows.append(
            {
                "side": name,
                "wall_s_median": wall,
                "walls": [r["wall_s"] for r in side_runs],
                "ratio_vs_peer": round(wall / wall_peer, 3),
                "mase": round(mase, 4),
                "mase_vs_peer_pct": round(100 * (mase / sf_mase - 1), 2),
                "mase_vs_naive_x": round(mase / naive_mase, 2),
                "yhat_gap_pct_of_peer_mae": round(float(yhat_gap), 2),
            }
        )
        checks[name] = same_folds(fc, theirs) | {"sidecar": sidecar(side_runs[-1])}
    d, tight = rows[0], rows[1]
    notes = [
        f"naive MASE on the same folds: {naive_mase:.4f}",
        f"goal wall <= 0.3x (default settings): {d['ratio_vs_peer']} -> {verdict(d['ratio_vs_peer'] <= 0.3)}; "
        f"warm refits at Stan's default tolerance: {tight['ratio_vs_peer']}",
        f"goal MASE within 1 % (default settings): {d['mase_vs_peer_pct']} % -> "
        f"{verdict(abs(d['mase_vs_peer_pct']) <= 1)}; at Stan's default tolerance: {tight['mase_vs_peer_pct']} % -> "
        f"{verdict(abs(tight['mase_vs_peer_pct']) <= 1)}",
        "yhat_gap_pct_of_peer_mae: mean |our yhat - Prophet CV's yhat| as a % of Prophet CV's own MAE",
        "both of ours refit at every fold (prophet's default policy), warm-started from the previous fold",
        "issue: prophet MASE 12.5, 4.8x naive",
    ]
    save(
        "prophet",
        cfg,
        {"config": vars_of(cfg), "sides": rows, "naive_mase": naive_mase, "checks": checks, "runs": runs},
        {"Prophet": rows},
        notes,
    )


def part_neural(cfg: argparse.Namespace, work: Path) -> None:
    tickers, windows = cfg.neural_tickers, cfg.neural_windows
    models = NEURAL_MODELS
    base = {"epochs": 2, "warm_epochs": 1} if cfg.quick else {}
    scratch = {m: {**base, "warm_start": False} for m in models}
    sides = {
        "ours_default": engine_cmd(
            models, tickers=tickers, windows=windows, refit=None, params={m: base for m in models}
        ),
        "scratch_refit1": engine_cmd(models, tickers=tickers, windows=windows, refit=1, params=scratch),
    }
    runs = interleave(sides, cfg.repeats, work)
    panel = load_w1(tuple(tickers.split(",")))
    fc = {k: read_forecasts(v[-1]) for k, v in runs.items()}
    s = {k: score(v, panel)["mase"] for k, v in fc.items()}
    naive_mase = float(score(naive_forecasts(panel, fc["scratch_refit1"]), panel)["mase"]["naive"])
    rows = [
        {
            "model": m,
            "mase_default": round(float(s["ours_default"][m]), 4),
            "mase_scratch": round(float(s["scratch_refit1"][m]), 4),
            "diff_pct": round(100 * (s["ours_default"][m] / s["scratch_refit1"][m] - 1), 2),
        }
        for m in models
    ]
    w_d, w_s = median_wall(runs["ours_default"]), median_wall(runs["scratch_refit1"])
    mean_d = float(s["ours_default"].reindex(list(models)).mean())
    mean_s = float(s["scratch_refit1"].reindex(list(models)).mean())
    rows.append(
        {
            "model": "mean",
            "mase_default": round(mean_d, 4),
            "mase_scratch": round(mean_s, 4),
            "diff_pct": round(100 * (mean_d / mean_s - 1), 2),
        }
    )
    walls = [
        {
            "side": k,
            "wall_s_median": median_wall(v),
            "walls": [r["wall_s"] for r in v],
            "fit_predict_s": sidecar(v[-1]).get("fit_predict_s"),
        }
        for k, v in runs.items()
    ]
    notes = [
        f"subset: tickers {tickers}, {windows} origins (W1 has 4 tickers x 50); naive MASE {naive_mase:.4f}",
        f"goal time <= 0.1x: {w_d / w_s:.3f} -> {verdict(w_d / w_s <= 0.1)}",
        f"goal MASE <= +2 % (mean over cells): {rows[-1]['diff_pct']} % -> {verdict(rows[-1]['diff_pct'] <= 2)}",
        "folds identical: " + str(same_folds(fc["ours_default"], fc["scratch_refit1"])["identical"]),
    ]
    save(
        "neural",
        cfg,
        {
            "config": vars_of(cfg),
            "per_model": rows,
            "walls": walls,
            "ratio": w_d / w_s,
            "naive_mase": naive_mase,
            "runs": runs,
        },
        {"Accuracy": rows, "Wall time": walls},
        notes,
    )


def part_refit(cfg: argparse.Namespace, work: Path) -> None:
    tickers, windows = cfg.tickers, cfg.windows
    families = {"statistical": STATS_MODELS if not cfg.quick else ("naive", "ses", "arima")}
    if cfg.refit_neural:
        families["lstm"] = ("lstm",)
    policies = (1, 5, 10, 0)
    sides = {
        f"{fam}_k{k}": engine_cmd(
            models,
            tickers=tickers if fam == "statistical" else cfg.neural_tickers,
            windows=windows if fam == "statistical" else cfg.neural_windows,
            refit=k,
        )
        for fam, models in families.items()
        for k in policies
    }
    runs = interleave(sides, cfg.repeats, work)
    rows, recommendation = [], {}
    for fam, models in families.items():
        panel = load_w1(tuple((tickers if fam == "statistical" else cfg.neural_tickers).split(",")))
        base = None
        fam_rows = []
        for k in policies:
            side_runs = runs[f"{fam}_k{k}"]
            s = score(read_forecasts(side_runs[-1]), panel)["mase"].reindex(list(models))
            mean = float(s.mean())
            base = mean if k == 1 else base
            row = {
                "family": fam,
                "refit_every": k,
                "wall_s_median": median_wall(side_runs),
                "engine_s": sidecar(side_runs[-1]).get("engine_s"),
                "mean_mase": round(mean, 4),
                "vs_k1_pct": round(100 * (mean / base - 1), 3),
            }
            row |= {f"mase_{m}": round(float(s[m]), 4) for m in models}
            fam_rows.append(row)
        ok = [r for r in fam_rows if r["vs_k1_pct"] <= 0.5]
        best = min(ok, key=lambda r: r["wall_s_median"])
        recommendation[fam] = {
            "refit_every": best["refit_every"],
            "wall_s": best["wall_s_median"],
            "vs_k1_pct": best["vs_k1_pct"],
        }
        rows += fam_rows
    notes = [
        f"{fam}: fastest policy within +0.5 % of refit_every=1 mean MASE -> refit_every={r['refit_every']} "
        f"({r['wall_s']} s, {r['vs_k1_pct']:+.3f} %)"
        for fam, r in recommendation.items()
    ]
    save(
        "refit",
        cfg,
        {"config": vars_of(cfg), "rows": rows, "recommendation": recommendation, "runs": runs},
        {"Refit policy trade-off": rows},
        notes,
    )


def part_overhead(cfg: argparse.Namespace, work: Path) -> None:
    """Fixed cost of the CLI (Prefect server, tasks, caching, reports) vs the engine, with the cheapest model."""
    tickers, windows = cfg.tickers, cfg.windows
    sides = {f"cli_{r}": cli_cmd(["naive"], tickers=tickers, windows=windows, runner=r) for r in cfg.cli_runners}
    sides["engine"] = engine_cmd(["naive"], tickers=tickers, windows=windows, refit=None)  # the local runner, serial
    runs = interleave(sides, cfg.repeats, work)
    rows = [
        {
            "side": k,
            "wall_s_median": median_wall(v),
            "walls": [r["wall_s"] for r in v],
            "engine_s": v[-1]["sidecar"].get("engine_s"),
            "imports_s": v[-1]["sidecar"].get("imports_s"),
        }
        for k, v in runs.items()
    ]
    notes = ["naive only: the model costs nothing, so the wall time is the orchestration and per-fold overhead"]
    save("overhead", cfg, {"config": vars_of(cfg), "sides": rows, "runs": runs}, {"Overhead (naive only)": rows}, notes)


def vars_of(cfg: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}


PARTS = {"stats": part_stats, "refit": part_refit, "prophet": part_prophet, "neural": part_neural}
EXTRA = {"overhead": part_overhead}  # not in "all": a diagnostic


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=[*PARTS, *EXTRA, "all"], default="all")
    p.add_argument("--quick", action="store_true", help="tiny smoke version (2 tickers, few origins)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--repeats", type=int, default=1, help="runs per side, interleaved; tables quote medians")
    p.add_argument("--cli-runners", default="threads", help="PRICECAST_TASK_RUNNER values to time, comma list")
    p.add_argument("--neural-tickers", default="AAPL,IBM")
    p.add_argument("--neural-windows", type=int, default=20)
    p.add_argument("--prophet-tickers", default="AAPL,GOOG,IBM,MSFT")
    p.add_argument("--prophet-windows", type=int, default=50)
    p.add_argument("--refit-neural", action="store_true", help="add lstm (neural subset) to the refit table")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    cfg = p.parse_args(argv)
    cfg.cli_runners = cfg.cli_runners.split(",")
    cfg.suffix = ""
    cfg.tickers, cfg.windows = "AAPL,GOOG,IBM,MSFT", 50
    if cfg.quick:
        cfg.tickers, cfg.windows = "AAPL,IBM", 4
        cfg.neural_tickers, cfg.neural_windows = "AAPL", 2
        cfg.prophet_tickers, cfg.prophet_windows = "AAPL", 3
        cfg.suffix = "_quick"
    work = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    print(f"work dir {work}; warming the bytecode cache ...", flush=True)
    warm_bytecode()
    try:
        for name in PARTS if cfg.part == "all" else [cfg.part]:
            print(f"== {name}", flush=True)
            (PARTS | EXTRA)[name](cfg, work)
    finally:
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
