"""The anchor of bench_global.py: neuralforecast's LSTM (one global network) on the cutoffs pricecast used.

Runs in its own interpreter (neuralforecast needs torch; pricecast does not):
    /path/to/nf-env/bin/python benchmarks/peers/nf_global.py panel.parquet cutoffs.parquet out.parquet --horizon 5

Trading sessions are irregular dates, so each series is indexed by its row number (freq=1), as a session
calendar would be; `cross_validation(refit=False)` fits once on every series up to its first cutoff and forecasts
every origin, the statsforecast convention pricecast's folds follow (the last window ends at the last session).
The forecasts are mapped back to dates and checked against the given cutoffs. Prints one JSON line of metadata.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("panel")
    parser.add_argument("cutoffs")
    parser.add_argument("out")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    panel = pd.read_parquet(args.panel).sort_values(["unique_id", "ds"], kind="stable")
    wanted = pd.read_parquet(args.cutoffs)
    panel["row"] = panel.groupby("unique_id").cumcount()
    per_series = wanted.groupby("unique_id")["cutoff"].agg(["min", "count"])
    windows = int(per_series["count"].iloc[0])
    step = 5
    frame = panel.rename(columns={"ds": "date"}).rename(columns={"row": "ds"})[["unique_id", "ds", "y"]]
    model = LSTM(
        h=args.horizon,
        input_size=30,
        encoder_n_layers=1,
        encoder_hidden_size=32,
        decoder_hidden_size=32,
        max_steps=50 if args.quick else 500,
        scaler_type="standard",
        random_seed=0,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    started = time.perf_counter()
    nf = NeuralForecast(models=[model], freq=1)
    cv = nf.cross_validation(frame, n_windows=windows, step_size=step, refit=False)
    seconds = time.perf_counter() - started
    dates = panel.set_index(["unique_id", "row"])["ds"]
    cv = cv.reset_index() if "unique_id" not in cv.columns else cv
    out = pd.DataFrame(
        {
            "unique_id": cv["unique_id"].astype(str),
            "model": "neuralforecast LSTM",
            "cutoff": dates.loc[list(zip(cv["unique_id"], cv["cutoff"], strict=True))].to_numpy(),
            "ds": dates.loc[list(zip(cv["unique_id"], cv["ds"], strict=True))].to_numpy(),
            "h": (cv["ds"] - cv["cutoff"]).astype("int64"),
            "yhat": cv["LSTM"].astype(float),
        }
    )
    got = out[["unique_id", "cutoff"]].drop_duplicates().sort_values(["unique_id", "cutoff"]).reset_index(drop=True)
    want = wanted.sort_values(["unique_id", "cutoff"]).reset_index(drop=True)
    want["cutoff"] = pd.to_datetime(want["cutoff"]).astype("datetime64[ns]")
    got["cutoff"] = pd.to_datetime(got["cutoff"]).astype("datetime64[ns]")
    if not got.equals(want[["unique_id", "cutoff"]]):
        raise SystemExit("neuralforecast's cutoffs differ from pricecast's; not comparable")
    out.to_parquet(args.out)
    import neuralforecast
    import torch

    meta = {"fit_predict_seconds": round(seconds, 1), "neuralforecast": neuralforecast.__version__}
    meta |= {"torch": torch.__version__, "nan_forecasts": int(np.isnan(out["yhat"]).sum())}
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
