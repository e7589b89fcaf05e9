"""Peer script: pricecast's pure engine `run_backtest` on W1 (no Prefect, units in turn), forecasts to parquet.

    python benchmarks/peers/ours_engine.py --models naive,ses --refit-every 5 --out /tmp/x.parquet
Writes the forecast table (canonical columns + intervals) to --out and a JSON sidecar (--out + .json) with the
engine's own elapsed seconds, failures and the MASE of the engine's leaderboard for a cross-check.
"""

from __future__ import annotations

import argparse
import json
import logging

from _common import Clock, load_w1, write_json

clock = Clock()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tickers", default="AAPL,GOOG,IBM,MSFT")
    p.add_argument("--models", required=True)
    p.add_argument("--params", default="{}", help='JSON {"model": {constructor params}}')
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--refit-every", type=int, default=None, help="default: each model's own default policy")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan

    imported = clock()
    panel = load_w1(tuple(args.tickers.split(",")))
    loaded = clock()
    params = json.loads(args.params)
    names = args.models.split(",")
    plan = FoldPlan(horizon=args.horizon, step=args.step, windows=args.windows)
    started = clock()
    result = run_backtest(panel, models={n: params.get(n, {}) for n in names}, plan=plan, refit_every=args.refit_every)
    engine_s = round(clock() - started, 3)
    result.forecasts.to_parquet(args.out)
    board = evaluate(result).leaderboard.set_index("model")["mase"]
    fit = result.timings.groupby("model")[["fit_seconds", "predict_seconds"]].sum().round(3)
    write_json(
        __import__("pathlib").Path(args.out + ".json"),
        {
            "imports_s": imported,
            "load_s": round(loaded - imported, 3),
            "engine_s": engine_s,
            "refit_every": result.meta["refit_every"],  # per model when the default policy was used
            "failures": int(len(result.failures)),
            "failure_examples": result.failures.head(3).to_dict("records"),
            "leaderboard_mase": board.to_dict(),
            "fit_predict_s": fit.to_dict("index"),
            "total_s": clock(),
        },
    )


if __name__ == "__main__":
    main()
