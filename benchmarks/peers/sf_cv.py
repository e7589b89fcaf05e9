"""Peer script: statsforecast's cross_validation on W1 with the same folds, forecasts to parquet.

    python benchmarks/peers/sf_cv.py --out /tmp/sf.parquet
Sessions are mapped to integer positions per series (freq=1), exactly as tests/backtest/test_peers.py does, so
the trading calendar plays no role and the folds are statsforecast's own (last window ends at the last row).
Positions are mapped back to dates before writing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _common import Clock, load_w1, write_json

clock = Clock()

NAMES = {"Naive": "naive", "SESOpt": "ses", "Holt": "holt", "AutoETS": "ets", "AutoARIMA": "arima"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tickers", default="AAPL,GOOG,IBM,MSFT")
    p.add_argument("--models", default="naive,ses,holt,ets,arima")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import statsforecast.models  # noqa: F401 - imported (and timed) before the data loads

    imported = clock()
    cross_validate(load_w1(tuple(args.tickers.split(","))), args, clock=clock, imported=imported)


def cross_validate(panel, args: argparse.Namespace, *, clock: Clock, imported: float) -> None:
    """statsforecast cross_validation of `panel` (unique_id, ds, y) with args' models and folds; forecasts as
    pricecast's long table to args.out, timings beside it (args.out + ".json"). Shared by sf_scale.py."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, Holt, Naive, SimpleExponentialSmoothingOptimized

    make = {
        "naive": Naive,
        "ses": SimpleExponentialSmoothingOptimized,
        "holt": Holt,
        "ets": AutoETS,
        "arima": AutoARIMA,
    }
    models = [make[n]() for n in args.models.split(",")]
    positions = panel.assign(ds=panel.groupby("unique_id").cumcount())
    loaded = clock()
    sf = StatsForecast(models=models, freq=1, n_jobs=args.n_jobs)
    cv = sf.cross_validation(df=positions, h=args.horizon, step_size=args.step, n_windows=args.windows, refit=True)
    cv_s = round(clock() - loaded, 3)
    cv = cv.reset_index() if "unique_id" not in cv.columns else cv
    dates = {uid: g["ds"].to_numpy() for uid, g in panel.groupby("unique_id")}
    cv["h"] = (cv["ds"] - cv["cutoff"]).astype("int64")
    cv["cutoff"] = [dates[u][c] for u, c in zip(cv["unique_id"], cv["cutoff"], strict=True)]
    cv["ds"] = [dates[u][d] for u, d in zip(cv["unique_id"], cv["ds"], strict=True)]
    cols = [c for c in cv.columns if c in NAMES]
    long = cv.melt(id_vars=["unique_id", "cutoff", "ds", "h"], value_vars=cols, var_name="model", value_name="yhat")
    long["model"] = long["model"].map(NAMES)
    pd.DataFrame(long).to_parquet(args.out)
    write_json(
        Path(args.out + ".json"),
        {"imports_s": imported, "load_s": round(loaded - imported, 3), "cv_s": cv_s, "total_s": clock()},
    )


if __name__ == "__main__":
    main()
