"""Profile one backtest unit of the pure engine (serial, in-process) and print the top cumulative-time lines.

    python benchmarks/peers/profile_engine.py --model naive --refit-every 1 --top 25
Warms up first (imports, exchange calendar) so the profile shows steady-state per-fold costs only.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from _common import load_w1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="naive")
    p.add_argument("--ticker", default="AAPL")
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--refit-every", type=int, default=1)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="cumtime")
    args = p.parse_args()

    from backtest.engine import run_backtest
    from backtest.folds import FoldPlan

    panel = load_w1((args.ticker,))
    run = dict(models=[args.model], refit_every=args.refit_every)
    run_backtest(panel, plan=FoldPlan(horizon=5, step=5, windows=2), **run)  # warm-up
    plan = FoldPlan(horizon=5, step=5, windows=args.windows)
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    result = run_backtest(panel, plan=plan, **run)
    prof.disable()
    wall = time.perf_counter() - started
    t = result.timings
    print(
        f"{args.model} on {args.ticker}, {args.windows} folds, refit_every={args.refit_every}: {wall:.2f} s under "
        f"cProfile; fit {t['fit_seconds'].sum():.2f} s, predict {t['predict_seconds'].sum():.2f} s, "
        f"{wall / args.windows * 1000:.1f} ms per fold"
    )
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
