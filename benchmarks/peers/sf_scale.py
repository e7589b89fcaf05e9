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

from _common import Clock
from sf_cv import cross_validate

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
    import statsforecast.models  # noqa: F401 - imported (and timed) before the data loads

    imported = clock()
    raw = pd.read_csv(args.path, usecols=["Date", "Ticker", "Adj Close"], parse_dates=["Date"], dtype={"Ticker": str})
    panel = raw.rename(columns={"Ticker": "unique_id", "Date": "ds", "Adj Close": "y"})
    panel = panel.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    cross_validate(panel, args, clock=clock, imported=imported)


if __name__ == "__main__":
    main()
