"""Peer script: the one-shot statsforecast job a user would write instead of `pricecast forecast`.

    python benchmarks/peers/sf_oneshot.py [--ticker AAPL] [--horizon 5]

Import, read AAPL's closes from the bundled sample (bokeh_sampledata, from 2005-03-01 like the CLI's default),
fit Naive, forecast `--horizon` steps with 80/95% intervals, print the frame. Self-contained on purpose (no
pricecast import): bench_startup.py times this whole process as the floor a small CLI job is compared with.
"""

from __future__ import annotations

import argparse
from importlib import resources


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ticker", default="AAPL")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--start", default="2005-03-01")
    args = p.parse_args()

    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    path = resources.files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    raw = pd.read_csv(str(path), dtype={"Ticker": str})
    raw.columns = [c.lower() for c in raw.columns]
    rows = raw.loc[raw["ticker"].eq(args.ticker)]
    frame = pd.DataFrame({"unique_id": args.ticker, "ds": pd.to_datetime(rows["date"]), "y": rows["adj close"]})
    frame = frame.loc[frame["ds"].ge(pd.Timestamp(args.start))].sort_values("ds")
    # Sessions as positions (freq=1): trading days are not a pandas frequency, and the peer needs no calendar.
    frame = frame.assign(ds=range(len(frame)))
    sf = StatsForecast(models=[Naive()], freq=1)
    forecast = sf.forecast(df=frame, h=args.horizon, level=[80, 95])
    print(forecast.to_string())


if __name__ == "__main__":
    main()
