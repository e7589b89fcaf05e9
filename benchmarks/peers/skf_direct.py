"""The anchor of bench_regressors.py: skforecast's ForecasterDirect on the folds pricecast used.

Runs in its own interpreter (skforecast 0.26 requires pandas < 3; pricecast runs pandas 3):
    /path/to/skf-env/bin/python benchmarks/peers/skf_direct.py panel.parquet cutoffs.parquet out.parquet

Parity with pricecast's lag regressors (models/regressors.py), as far as skforecast allows: the series is the LOG
price with `differentiation=1`, so the regressors see log returns; 10 lags plus the mean and std of the returns
over 5 and 20 sessions (RollingFeatures); one estimator per step (direct), the same scikit-learn estimators with
the same hyperparameters and seeds; `backtesting_forecaster` with TimeSeriesFold(steps=5, refit=10) from the
first cutoff, which cuts the same contiguous 5-session test windows pricecast's folds do (step = horizon = 5)
and refits every 10th fold like pricecast's default policy. Forecasts are exp(prediction). The one difference
left: skforecast predicts each step's return and integrates them; pricecast predicts the return from the origin.
Prints one JSON line of metadata (seconds per model: fit + predict of the whole backtest, per ticker summed).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

HORIZON = 5


def estimators(seed: int = 0) -> dict:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return {
        "random_forest": RandomForestRegressor(
            n_estimators=100, min_samples_leaf=10, max_features=0.33, max_samples=0.5, n_jobs=1, random_state=seed
        ),
        "gradient_boosting": HistGradientBoostingRegressor(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=7,
            min_samples_leaf=30,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ),
        # Features AND returns standardised inside the estimator, as pricecast's svr does (its epsilon is in
        # standard deviations of the returns; on raw daily returns, ~0.02, a 0.5 tube would swallow every point).
        "svr": TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), SVR(kernel="rbf", C=1.0, epsilon=0.5, gamma=0.02)),
            transformer=StandardScaler(),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("panel")
    parser.add_argument("cutoffs")
    parser.add_argument("out")
    args = parser.parse_args()

    import skforecast
    from skforecast.direct import ForecasterDirect
    from skforecast.model_selection import TimeSeriesFold, backtesting_forecaster
    from skforecast.preprocessing import RollingFeatures

    panel = pd.read_parquet(args.panel).sort_values(["unique_id", "ds"], kind="stable")
    wanted = pd.read_parquet(args.cutoffs)
    wanted["cutoff"] = pd.to_datetime(wanted["cutoff"])
    parts, seconds = [], {}
    for uid, rows in panel.groupby("unique_id", sort=True):
        ds = pd.DatetimeIndex(rows["ds"])
        y = pd.Series(np.log(rows["y"].to_numpy(dtype=float)), name="y")  # RangeIndex: sessions, not dates
        cuts = pd.DatetimeIndex(sorted(wanted.loc[wanted["unique_id"] == uid, "cutoff"]))
        first = int(ds.get_indexer([cuts[0]])[0])
        for name, estimator in estimators().items():
            forecaster = ForecasterDirect(
                estimator=estimator,
                steps=HORIZON,
                lags=10,
                window_features=RollingFeatures(stats=["mean", "std", "mean", "std"], window_sizes=[5, 5, 20, 20]),
                differentiation=1,
            )
            cv = TimeSeriesFold(
                steps=HORIZON, initial_train_size=first + 1, refit=10, fixed_train_size=False, differentiation=1
            )
            started = time.perf_counter()
            _, pred = backtesting_forecaster(
                forecaster=forecaster, y=y, cv=cv, metric="mean_absolute_error", show_progress=False
            )
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            pos = pred.index.to_numpy()
            k = (pos - (first + 1)) // HORIZON  # fold number
            cutoff_pos = first + k * HORIZON
            parts.append(
                pd.DataFrame(
                    {
                        "unique_id": str(uid),
                        "model": f"skforecast {name}",
                        "cutoff": ds[cutoff_pos],
                        "ds": ds[pos],
                        "h": pos - cutoff_pos,
                        "yhat": np.exp(pred["pred"].to_numpy(dtype=float)),
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    out = out[out["cutoff"].isin(wanted["cutoff"])]  # a trailing partial window, if any, is not a fold
    out.to_parquet(args.out)
    meta = {"seconds": {k: round(v, 2) for k, v in seconds.items()}, "skforecast": skforecast.__version__}
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
