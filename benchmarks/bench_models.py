"""Fit + predict timings of the statistical, ML and recurrent models; AutoARIMA order selection beside statsforecast.

Run: `.venv/bin/python benchmarks/bench_models.py [--models naive,ets,arima] [--n 2000] [--repeats 3]`
-> a table on stdout and benchmarks/results/models.{json,md}.

Data: the first `--n` sessions of MSFT adjusted close from bokeh_sampledata (a seeded geometric random walk on
XNYS sessions if the sample data is missing). Each case is timed as fit + predict(5) on a fresh instance, median of
`--repeats` runs after one untimed warm-up (imports, first-call caches), plus the mean cost of one
update(1 row) + predict(5) over 20 origins (what a backtest pays between refits).

Other model families plug in by appending to CASES (or calling `add_cases`) before `main()`:
    from benchmarks.bench_models import Case, add_cases
    add_cases(Case("lstm", "lstm", {"epochs": 5}))
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from common.schema import DS, ID, Y  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
HORIZON = 5
N_UPDATES = 20


@dataclass(frozen=True)
class Case:
    """One benchmark row: a label, a registry name and constructor parameters."""

    label: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)


CASES: list[Case] = [
    Case("naive", "naive"),
    Case("seasonal_naive", "seasonal_naive"),
    Case("drift", "drift"),
    Case("moving_average", "moving_average"),
    Case("ses", "ses"),
    Case("holt", "holt"),
    Case("holt_damped", "holt", {"damped": True}),
    Case("holt_winters", "holt_winters"),
    Case("holt_winters_mul", "holt_winters", {"seasonal": "mul", "trend": "add"}),
    Case("ets", "ets"),
    Case("arima", "arima"),
    Case("sarima", "sarima"),
    Case("arimax", "arimax"),
    Case("sarima_css", "sarima", {"estimator": "css"}),
    Case("arimax_css", "arimax", {"estimator": "css"}),
    Case("ts_regression", "ts_regression"),
    Case("random_forest", "random_forest"),
    Case("gradient_boosting", "gradient_boosting"),
    Case("svr", "svr"),
    # The recurrent networks with their default configuration. A global network on ONE series is the degenerate
    # panel: its cost across 100 series beside one network per series is in results/global.md (bench_global.py).
    Case("lstm", "lstm"),
    Case("global_lstm", "global_lstm"),
    Case("global_gru", "global_gru"),
    Case("ensemble", "ensemble"),
]


def add_cases(*cases: Case) -> None:
    """Register more cases (other model families) to run after the statistical ones."""
    CASES.extend(cases)


def msft_sessions(n: int) -> tuple[pd.DataFrame, str]:
    """The first `n` sessions of MSFT adjusted close with logret_1 / vol_20 columns, and a note on the source."""
    try:
        import bokeh_sampledata

        path = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"
        raw = pd.read_csv(path, parse_dates=["Date"])
        msft = raw[raw["Ticker"] == "MSFT"].sort_values("Date").head(n)
        frame = pd.DataFrame({ID: "MSFT", DS: msft["Date"].to_numpy(), Y: msft["Adj Close"].to_numpy(dtype=float)})
        source = f"bokeh_sampledata MSFT adjusted close, {frame[DS].iloc[0].date()}..{frame[DS].iloc[-1].date()}"
    except (ImportError, FileNotFoundError):
        from features.calendar import sessions

        rng = np.random.default_rng(0)
        ds = sessions("XNYS", "2000-01-03", "2030-01-01")[:n]
        frame = pd.DataFrame({ID: "MSFT", DS: ds, Y: 30 * np.exp(np.cumsum(rng.normal(0.0003, 0.018, n)))})
        source = "synthetic geometric random walk (bokeh_sampledata missing)"
    logret = np.log(frame[Y]).diff()
    frame["logret_1"] = logret.fillna(0.0)
    frame["vol_20"] = logret.rolling(20, min_periods=2).std().fillna(0.0)
    return frame, source


def _seconds(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def time_case(case: Case, data: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """Median fit+predict seconds over `repeats` fresh instances, and the mean update(1)+predict seconds."""
    from models import make_model
    from models.base import fit_model

    train = data.iloc[: len(data) - N_UPDATES]

    def fit_predict():
        model = fit_model(make_model(case.model, **case.params), train, HORIZON)  # as the engine fits it
        model.predict(HORIZON)
        return model

    try:
        model = fit_predict()  # warm-up: imports and first-call caches are not the model's cost
        runs = [_seconds(fit_predict) for _ in range(repeats)]
        started = time.perf_counter()
        for i in range(len(train), len(data)):
            model.update(data.iloc[i : i + 1])
            model.predict(HORIZON)
        per_update = (time.perf_counter() - started) / N_UPDATES
    except Exception as exc:  # a benchmark reports failures as rows rather than stopping
        return {"case": case.label, "model": case.model, "error": f"{type(exc).__name__}: {exc}"}
    chosen = getattr(model, "spec_", None)
    note = chosen.short_name if chosen is not None else ""
    if hasattr(model, "seasonal_order_"):  # the ARIMA family
        note = f"{model.order_}{model.seasonal_order_ if any(model.seasonal_order_) else ''}"
        note += " drift" if model.drift_ else (" const" if model.constant_ else "")
    elif hasattr(model, "order_"):  # ts_regression: ARMA(p, q) errors on d differences
        note = f"regression, ARIMA{model.order_} errors"
    return {
        "case": case.label,
        "model": case.model,
        "params": case.params,
        "fit_predict_s": round(statistics.median(runs), 4),
        "fit_predict_runs_s": [round(r, 4) for r in runs],
        "update_predict_ms": round(1000 * per_update, 3),
        "chosen": note,
    }


def simulated_arima(n: int, *, seed: int = 0) -> pd.DataFrame:
    """A seeded ARIMA(2,1,1) series on XNYS sessions: a harder order-selection case than a price random walk."""
    from features.calendar import sessions

    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 100)
    w = np.zeros(n + 100)
    for t in range(2, n + 100):
        w[t] = 0.5 * w[t - 1] - 0.3 * w[t - 2] + e[t] + 0.4 * e[t - 1]
    ds = sessions("XNYS", "2000-01-03", "2030-01-01")[:n]
    return pd.DataFrame({ID: "SIM", DS: ds, Y: 100 + np.cumsum(w[100:])})


def order_selection(data: pd.DataFrame, label: str) -> list[dict[str, Any]]:
    """AutoARIMA order selection on one series: ours (search only, and search + final MLE) vs statsforecast."""
    from models.arima import AutoARIMA, SearchSpace, choose_d, difference, stepwise_search

    y = data[Y].to_numpy(dtype=float)
    rows = []
    AutoARIMA().fit(data.iloc[:300])  # warm-up imports

    def search():
        d = choose_d(y, 2)
        return d, stepwise_search(difference(y, d, 0, 1), None, SearchSpace(3, 3, allow_constant=d <= 1))

    started = time.perf_counter()
    d, result = search()
    search_s = time.perf_counter() - started
    o = result.best.order
    rows.append(
        {
            "series": label,
            "impl": "pricecast AutoARIMA: KPSS + stepwise CSS search only",
            "seconds": round(search_s, 4),
            "order": f"({o[0]},{d},{o[1]}){' drift' if o[4] and d == 1 else ''}",
            "candidates": len(result.tried),
        }
    )
    model = AutoARIMA()
    full_s = _seconds(lambda: model.fit(data))
    rows.append(
        {
            "series": label,
            "impl": "pricecast AutoARIMA.fit: search + exact MLE of the chosen order",
            "seconds": round(full_s, 4),
            "order": f"{model.order_}{' drift' if model.drift_ else ''}",
            "candidates": len(model.search_),
        }
    )
    try:
        from statsforecast.models import AutoARIMA as SFAutoARIMA
    except ImportError:
        rows.append({"series": label, "impl": "statsforecast AutoARIMA", "seconds": None, "order": "not installed"})
        return rows
    cold_s = _seconds(lambda: SFAutoARIMA().fit(y[:200]))  # first call compiles numba kernels
    sf = SFAutoARIMA()
    sf_s = _seconds(lambda: sf.fit(y))
    p, q, P, Q, m, sd, sD = sf.model_["arma"]
    drift = "drift" in sf.model_.get("coef", {})
    rows.append(
        {
            "series": label,
            "impl": "statsforecast AutoARIMA.fit (after a warm-up fit)",
            "seconds": round(sf_s, 4),
            "order": f"({p},{sd},{q}){' drift' if drift else ''}",
            "note": f"warm-up fit on 200 points (numba compile) took {cold_s:.2f} s",
        }
    )
    return rows


def _markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# Model timings (statistical, ML and recurrent)",
        "",
        f"{meta['series']}, {meta['n']} sessions; {meta['machine']}; {meta['when']}.",
        f"fit+predict({HORIZON}): median of {meta['repeats']} fresh fits after one warm-up; "
        f"update+predict: mean over {N_UPDATES} one-row updates.",
        "",
        "| case | fit+predict s | update+predict ms | chosen |",
        "|---|---:|---:|---|",
    ]
    for row in report["models"]:
        if "error" in row:
            lines.append(f"| {row['case']} | error | | {row['error']} |")
        else:
            lines.append(
                f"| {row['case']} | {row['fit_predict_s']:.3f} | {row['update_predict_ms']:.2f} | {row['chosen']} |"
            )
    lines += ["", "## AutoARIMA order selection (same series, same process, one run)", ""]
    lines += ["| series | implementation | seconds | order |", "|---|---|---:|---|"]
    for row in report["order_selection"]:
        secs = "n/a" if row["seconds"] is None else f"{row['seconds']:.3f}"
        lines.append(f"| {row['series']} | {row['impl']} | {secs} | {row['order']} |")
    notes = [r["note"] for r in report["order_selection"] if r.get("note")]
    lines += ["", *[f"Note: {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def run(models: list[str] | None, n: int, repeats: int, peers: bool) -> dict[str, Any]:
    data, source = msft_sessions(n)
    cases = [c for c in CASES if models is None or c.label in models or c.model in models]
    report = {
        "meta": {
            "series": source,
            "n": len(data),
            "repeats": repeats,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        },
        "models": [time_case(case, data, repeats) for case in cases],
        "order_selection": (
            order_selection(data, "MSFT") + order_selection(simulated_arima(n), "simulated ARIMA(2,1,1)")
            if peers
            else []
        ),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated case labels or registry names (default: all)")
    parser.add_argument("--n", type=int, default=2000, help="sessions of the series (default 2000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="skip the AutoARIMA vs statsforecast comparison")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for models.json / models.md")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    report = run(models, args.n, args.repeats, not args.no_peers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.json").write_text(json.dumps(report, indent=2, default=str))
    text = _markdown(report)
    (args.out / "models.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
