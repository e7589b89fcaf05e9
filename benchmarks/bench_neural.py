"""Timings of the Prophet and Keras recurrent models on 2,000 sessions of MSFT adjusted close (bokeh sample data).

Run: `.venv/bin/python benchmarks/bench_neural.py` -> a table on stdout and benchmarks/results/neural.{json,md}.
Measures: Prophet fit + predict (uncertainty_samples 0 and 200, cold and warm-started refit); LSTM/GRU/SimpleRNN
fit with the default configuration; forecast_origins for 50 origins in one batched call vs 50 update+predict calls.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from common.schema import DS, ID, YHAT, Y  # noqa: E402
from models.base import Forecaster  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
HORIZON = 5


def msft_sessions(n: int = 2000) -> pd.DataFrame:
    """The first `n` sessions of MSFT adjusted close from bokeh_sampledata, as a long unique_id/ds/y frame."""
    import bokeh_sampledata

    path = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"
    raw = pd.read_csv(path, parse_dates=["Date"])
    msft = raw[raw["Ticker"] == "MSFT"].sort_values("Date").head(n)
    return pd.DataFrame({ID: "MSFT", DS: msft["Date"].to_numpy(), Y: msft["Adj Close"].to_numpy(dtype=float)})


def _timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def bench_neural(n_sessions: int = 2000, n_origins: int = 50) -> dict[str, Any]:
    """Run every measurement once and return {'meta': ..., 'rows': [{'case', 'seconds', 'note'}]}."""
    from models.prophet_model import ProphetForecaster
    from models.rnn import RecurrentForecaster, _keras

    data = msft_sessions(n_sessions)
    train = data.iloc[: n_sessions - n_origins]
    rows: list[dict[str, Any]] = []

    def add(case: str, seconds: float, note: str = "") -> None:
        rows.append({"case": case, "seconds": round(seconds, 3), "note": note})

    # Prophet: the first fit pays the prophet/cmdstanpy import and the holiday frame; time it apart.
    _, s = _timed(lambda: ProphetForecaster(uncertainty_samples=0).fit(train.iloc[:200]))
    add("prophet first use (import + holidays + small fit)", s)
    for samples in (0, 200):
        model = ProphetForecaster(uncertainty_samples=samples)
        _, fit_s = _timed(lambda model=model: model.fit(train))
        _, pred_s = _timed(lambda model=model: model.predict(HORIZON))
        add(f"prophet fit (uncertainty_samples={samples})", fit_s, f"{len(train)} sessions, MAP")
        add(f"prophet predict h={HORIZON} (uncertainty_samples={samples})", pred_s)
    model = ProphetForecaster(uncertainty_samples=0)
    model.fit(train.iloc[:-20])
    _, s = _timed(lambda: model.fit(train))
    add("prophet warm-started refit (+20 sessions)", s, f"init from previous fit: {model.warm_started_}")

    _, s = _timed(_keras)
    add("import tensorflow/keras", s)
    fitted: dict[str, Any] = {}
    for cell in ("lstm", "gru", "rnn"):
        net = RecurrentForecaster(cell=cell, horizon=HORIZON)
        _, s = _timed(lambda net=net: net.fit(train))
        fitted[cell] = net
        add(
            f"{cell} fit (default config)",
            s,
            f"{net.epochs_run_} epochs run (early stopping), {s / max(net.epochs_run_, 1):.2f} s/epoch incl. tracing",
        )
    net = fitted["lstm"]
    _, s = _timed(lambda: net.fit(data.iloc[: n_sessions - n_origins + 20]))
    add("lstm warm-started refit (+20 sessions)", s, f"{net.epochs_run_} warm epochs")

    # Batched origins vs one update+predict per origin, from identical copies of a model fitted on `train`.
    base = RecurrentForecaster(cell="lstm", horizon=HORIZON).fit(train)
    blob = base.save(RESULTS / ".bench_lstm.model")
    cutoffs = list(data[DS].iloc[len(train) - 1 : len(train) - 1 + n_origins])
    batched_model = RecurrentForecaster.load(blob)
    looped_model = RecurrentForecaster.load(blob)
    for warm_up in (batched_model, looped_model):  # build both Keras models outside the timing
        warm_up.predict(HORIZON)
    batched, s_batch = _timed(lambda: batched_model.forecast_origins(data, cutoffs, HORIZON))
    looped, s_loop = _timed(lambda: Forecaster.forecast_origins(looped_model, data, cutoffs, HORIZON))
    blob.unlink(missing_ok=True)
    diff = float(np.max(np.abs(batched[YHAT].to_numpy() - looped[YHAT].to_numpy())))
    add(f"lstm forecast_origins, {n_origins} origins, ONE batched call", s_batch)
    add(f"lstm {n_origins} x (update + predict)", s_loop, f"max |yhat diff| vs batched = {diff:.2e}")

    meta = {
        "data": f"bokeh_sampledata MSFT Adj Close, {n_sessions} sessions "
        f"{data[DS].iloc[0].date()}..{data[DS].iloc[-1].date()}, train {len(train)}",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "when": pd.Timestamp.now().isoformat(timespec="seconds"),
    }
    return {"meta": meta, "rows": rows}


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# Neural / Prophet model timings", ""]
    lines += [f"- {k}: {v}" for k, v in result["meta"].items()]
    lines += ["", "| case | seconds | note |", "|---|---:|---|"]
    lines += [f"| {r['case']} | {r['seconds']:.3f} | {r['note']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = bench_neural()
    (RESULTS / "neural.json").write_text(json.dumps(result, indent=2) + "\n")
    md = to_markdown(result)
    (RESULTS / "neural.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
