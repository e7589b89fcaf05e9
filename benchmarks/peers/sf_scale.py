"""Peer script: statsforecast's cross_validation on a universe CSV (benchmarks/peers/universe.py), to parquet.

    python benchmarks/peers/sf_scale.py --path /tmp/universe-100.csv --out /tmp/sf.parquet

sf_cv.py does the same on W1 but reads the bundled sample; this one reads a long CSV as a statsforecast user
would (pandas.read_csv, Ticker/Date/Adj Close renamed to unique_id/ds/y), with sf_cv's model mapping
(its NAMES) so the two comparisons match. Sessions become integer positions per series (freq=1), mapped back
to dates before writing; the folds are statsforecast's own (the last window ends at each series' last row).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _common import Clock, write_json
from sf_cv import NAMES

clock = Clock()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", required=True, help="universe CSV (Date, Ticker, ..., Adj Close, ...)")
    p.add_argument("--models", default="naive,ses,holt,ets,arima")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--windows", type=int, default=20)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, Holt, Naive, SimpleExponentialSmoothingOptimized

    imported = clock()
    raw = pd.read_csv(args.path, usecols=["Date", "Ticker", "Adj Close"], parse_dates=["Date"], dtype={"Ticker": str})
    panel = raw.rename(columns={"Ticker": "unique_id", "Date": "ds", "Adj Close": "y"})
    panel = panel.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
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
