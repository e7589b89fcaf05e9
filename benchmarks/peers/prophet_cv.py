"""Peer script: `prophet.diagnostics.cross_validation` per series on pricecast's folds, forecasts to parquet.

    python benchmarks/peers/prophet_cv.py --out /tmp/prophet.parquet
Same Prophet settings as pricecast's `prophet` model: the plain Prophet is built from
`ProphetForecaster().prophet_kwargs(exchange)` (market holidays, seasonalities, 200 uncertainty samples).
Cutoffs are pricecast's fold cutoffs. Prophet's `horizon` is a calendar span and it refuses a cutoff later than
the last date minus the horizon, so each series takes two calls: every cutoff but the last with the longest
span any of those folds needs (parallel="processes"), then the last cutoff with its own span (one fit, no
pool). Predictions outside a fold's 5 test sessions are dropped; `h` is the session number within the fold.
"""

from __future__ import annotations

import argparse
import logging
import warnings

from _common import Clock, load_w1, write_json

clock = Clock()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tickers", default="AAPL,GOOG,IBM,MSFT")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--step", type=int, default=5)
    p.add_argument("--parallel", default="processes")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")

    import pandas as pd
    from prophet import Prophet
    from prophet.diagnostics import cross_validation

    from backtest.folds import FoldPlan, panel_folds
    from features.calendar import exchange_for
    from models.prophet_model import ProphetForecaster, _quiet_stan_logs

    imported = clock()
    _quiet_stan_logs()
    panel = load_w1(tuple(args.tickers.split(",")))
    folds = panel_folds(panel, FoldPlan(horizon=args.horizon, step=args.step, windows=args.windows))
    settings = ProphetForecaster()
    out, timing = [], {}
    for uid, group in panel.groupby("unique_id", sort=True):
        started = clock()
        df = group[["ds", "y"]].reset_index(drop=True)
        model = Prophet(**settings.prophet_kwargs(exchange_for(str(uid))))
        model.fit(df)  # cross_validation requires a fitted model (it copies its settings per cutoff)
        fitted = clock()
        fl = folds[str(uid)]
        span = {f.cutoff: f.test_ds[-1] - f.cutoff for f in fl}
        earlier, last = [f.cutoff for f in fl[:-1]], fl[-1].cutoff
        parts = []
        if earlier:
            parts.append(
                cross_validation(model, horizon=max(span[c] for c in earlier), cutoffs=earlier, parallel=args.parallel)
            )
        parts.append(cross_validation(model, horizon=span[last], cutoffs=[last], disable_tqdm=True))
        cv = pd.concat(parts, ignore_index=True)
        timing[str(uid)] = {"full_fit_s": round(fitted - started, 3), "cv_s": round(clock() - fitted, 3)}
        test = pd.DataFrame(
            [(f.cutoff, d, k + 1) for f in fl for k, d in enumerate(f.test_ds)], columns=["cutoff", "ds", "h"]
        )
        cv = test.merge(cv[["cutoff", "ds", "yhat"]], on=["cutoff", "ds"], how="left", validate="one_to_one")
        cv.insert(0, "unique_id", str(uid))
        cv["model"] = "prophet"
        out.append(cv)
    pd.concat(out, ignore_index=True).to_parquet(args.out)
    write_json(
        __import__("pathlib").Path(args.out + ".json"),
        {"imports_s": imported, "per_series": timing, "total_s": clock()},
    )


if __name__ == "__main__":
    main()
