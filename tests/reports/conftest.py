"""Seeded synthetic backtest tables that follow the backtest package's output contract, for the report tests.

No __init__.py here on purpose: with one, pytest imports this folder as the package `reports` (tests/ is not a
package) and shadows the real `reports`. The helper is reached through the `make_input` fixture instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from common.schema import (
    BEATS_NAIVE_DM,
    BUY_AND_HOLD,
    CUTOFF,
    DS,
    FOLD,
    HI_80,
    HI_95,
    ID,
    LO_80,
    LO_95,
    MEAN_RANK,
    METRIC,
    MODEL,
    NAIVE,
    VALUE,
    YHAT,
    H,
    Y,
)
from reports.data import LEADERBOARD_METRICS, ReportInput

Z = {80: 1.2815515655446004, 95: 1.959963984540054}
RANK_METRICS = ("mae", "rmse", "smape", "mase", "rmsse")


def make_report_input(
    seed: int = 0,
    n_series: int = 2,
    models: Sequence[str] = (NAIVE, "ets", "prophet"),
    *,
    tickers: Sequence[str] | None = None,
    n_folds: int = 6,
    horizon: int = 5,
    without_intervals: Sequence[str] = ("ets",),
    failure_message: str = "optimisation did not converge after 100 iterations",
    significant: Sequence[str] = (),
) -> ReportInput:
    """All report tables for `n_series` random-walk prices and `models`; `prophet` drifts away (much worse than naive).

    Models in `significant` get tiny one-sided DM p-values (and beats_naive_dm=True), whatever their errors.
    """
    rng = np.random.default_rng(seed)
    tickers = list(tickers) if tickers is not None else [f"S{i:03d}" for i in range(n_series)]
    n_train = 60
    n_obs = n_train + n_folds * horizon
    dates = pd.bdate_range("2024-01-01", periods=n_obs)

    prices = {u: 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_obs))) for u in tickers}
    fc_rows, fold_rows = [], []
    for u in tickers:
        y = prices[u]
        for k in range(n_folds):
            c = n_train + k * horizon - 1
            train = y[: c + 1]
            diffs = np.diff(train)
            sigma = float(np.std(diffs))
            fold_rows.append(
                {
                    ID: u,
                    FOLD: k,
                    CUTOFF: dates[c],
                    "train_start": dates[0],
                    "train_end": dates[c],
                    "last_y": y[c],
                    "scale_mae": float(np.mean(np.abs(diffs))),
                    "scale_mse": float(np.mean(diffs**2)),
                }
            )
            for m in models:
                hs = np.arange(1, horizon + 1)
                if m == NAIVE:
                    yhat = np.full(horizon, y[c])
                elif m == "prophet":
                    yhat = y[c] * (1 + 0.02 * hs) + rng.normal(0, sigma, horizon)
                else:
                    yhat = y[c] + rng.normal(0, 0.3 * sigma, horizon)
                for i, h in enumerate(hs):
                    row = {ID: u, MODEL: m, FOLD: k, CUTOFF: dates[c], DS: dates[c + h], H: int(h)}
                    row |= {Y: y[c + h], YHAT: yhat[i]}
                    for level, (lo, hi) in ((80, (LO_80, HI_80)), (95, (LO_95, HI_95))):
                        half = Z[level] * sigma * math.sqrt(h)
                        none = m in without_intervals
                        row[lo] = np.nan if none else yhat[i] - half
                        row[hi] = np.nan if none else yhat[i] + half
                    fc_rows.append(row)
    forecasts = pd.DataFrame(fc_rows)
    fold_info = pd.DataFrame(fold_rows)

    metrics = _metrics(forecasts, fold_info)
    wide = metrics.pivot_table(index=[ID, MODEL], columns=METRIC, values=VALUE, aggfunc="mean").reset_index()
    wide.columns.name = None
    ranks = wide.groupby(ID)[list(RANK_METRICS)].rank(method="average").mean(axis=1)
    per_series = wide.assign(**{MEAN_RANK: ranks})[[ID, MODEL, *LEADERBOARD_METRICS, MEAN_RANK]]

    dm = _dm(forecasts, models, significant)
    beats = (
        dm[(dm[H] == 1) & (dm["loss"] == "squared")].set_index(MODEL)["p_less"].lt(0.05).reindex(list(models))
    ).fillna(False)
    leaderboard = per_series.drop(columns=ID).groupby(MODEL, sort=False).mean().reset_index()
    leaderboard[BEATS_NAIVE_DM] = leaderboard[MODEL].map(beats).astype(bool)
    leaderboard["n_series"] = len(tickers)

    failures = pd.DataFrame(
        [{ID: tickers[0], MODEL: models[-1], FOLD: 0, "error_type": "ModelFitError", "message": failure_message}]
    )
    leaderboard["n_failures"] = leaderboard[MODEL].map(failures[MODEL].value_counts()).fillna(0).astype(int)
    leaderboard = leaderboard.drop(columns=["winkler_80"])  # the leaderboard contract lists winkler_95 only

    timings = pd.DataFrame(
        [
            {
                ID: u,
                MODEL: m,
                FOLD: k,
                "fit_seconds": float(rng.uniform(0.001, 0.05) * (40 if m == "prophet" else 1)),
                "predict_seconds": float(rng.uniform(0.0005, 0.005)),
                "refit": k % 2 == 0,
            }
            for u in tickers
            for m in models
            for k in range(n_folds)
        ]
    )
    trading, equity = _trading(forecasts, prices, dates, models)
    quality = pd.DataFrame(
        [
            {ID: u, "check": check, "count": count, "detail": detail}
            for u in tickers
            for check, count, detail in (
                ("missing_sessions", 0, ""),
                ("duplicate_dates", 0, ""),
                ("non_positive_prices", 0, ""),
                (
                    "large_moves",
                    1 if u == tickers[0] else 0,
                    "1 move above 8 sigma, 2024-02-14" if u == tickers[0] else "",
                ),
            )
        ]
    )
    refit_tradeoff = pd.DataFrame(
        [
            {"refit_every": k, MODEL: m, "mase": float(1 + rng.normal(0, 0.05)), "seconds": float(20 / k)}
            for m in models
            for k in (1, 5, 20)
        ]
    )
    dm_pairwise = _pairwise(forecasts, models)
    meta = {
        "source": "synthetic",
        "tickers": tickers,
        "sessions": {u: (dates[0], dates[-1], n_obs) for u in tickers},
        "plan": {"horizon": horizon, "step": horizon, "windows": n_folds, "window_type": "expanding", "gap": 0},
        "refit_every": "every 2 folds, update in between",
        "versions": {"pandas": pd.__version__, "numpy": np.__version__},
        "git_commit": "abc1234",
        "elapsed_seconds": 12.5,
        "flow_run_id": f"test-{seed}",
        "created_at": pd.Timestamp("2025-01-02 03:04:05"),
    }
    return ReportInput(
        forecasts=forecasts,
        metrics=metrics,
        leaderboard=leaderboard,
        dm=dm,
        dm_pairwise=dm_pairwise,
        per_series=per_series,
        timings=timings,
        failures=failures,
        fold_info=fold_info,
        trading=trading,
        equity=equity,
        quality=quality,
        refit_tradeoff=refit_tradeoff,
        meta=meta,
    )


def _metrics(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    f = forecasts.merge(fold_info[[ID, FOLD, "last_y", "scale_mae", "scale_mse"]], on=[ID, FOLD])
    e = f[Y] - f[YHAT]
    ae = e.abs()
    values = {
        "mae": ae,
        "rmse": ae,
        "mape": 100 * ae / f[Y].abs(),
        "smape": 200 * ae / (f[Y].abs() + f[YHAT].abs()),
        "mase": ae / f["scale_mae"],
        "rmsse": ae / np.sqrt(f["scale_mse"]),
        "directional_accuracy": (np.sign(f[YHAT] - f["last_y"]) == np.sign(f[Y] - f["last_y"])).astype(float),
    }
    for level, lo, hi in ((80, LO_80, HI_80), (95, LO_95, HI_95)):
        inside = ((f[Y] >= f[lo]) & (f[Y] <= f[hi])).astype(float).where(f[lo].notna())
        alpha = 1 - level / 100
        penalty = (2 / alpha) * ((f[lo] - f[Y]).clip(lower=0) + (f[Y] - f[hi]).clip(lower=0))
        values[f"coverage_{level}"] = inside
        values[f"winkler_{level}"] = (f[hi] - f[lo]) + penalty
    keys = f[[ID, MODEL, FOLD, H]]
    return pd.concat(
        [keys.assign(**{METRIC: name, VALUE: v.to_numpy()}) for name, v in values.items()], ignore_index=True
    )


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _dm(forecasts: pd.DataFrame, models: Sequence[str], significant: Sequence[str]) -> pd.DataFrame:
    e = forecasts.assign(err=forecasts[Y] - forecasts[YHAT]).pivot_table(
        index=[ID, FOLD, H], columns=MODEL, values="err"
    )
    rows = []
    for m in models:
        if m == NAIVE:
            continue
        for loss, fn in (("squared", np.square), ("absolute", np.abs)):
            for h, part in e.groupby(level=H):
                d = (fn(part[m]) - fn(part[NAIVE])).to_numpy()
                n = len(d)
                sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
                stat = float(np.mean(d) / (sd / math.sqrt(n))) if sd > 0 else 0.0
                p_less = 0.001 if m in significant else _phi(stat)
                p_value = 0.002 if m in significant else 2 * min(_phi(stat), 1 - _phi(stat))
                rows.append(
                    {
                        MODEL: m,
                        "reference": NAIVE,
                        H: int(h),
                        "loss": loss,
                        "stat": -3.2 if m in significant else stat,
                        "p_value": p_value,
                        "p_less": p_less,
                        "n": n,
                        "better": bool(p_less < 0.05),
                    }
                )
    return pd.DataFrame(rows)


def _pairwise(forecasts: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    first = forecasts[forecasts[H] == 1]
    e = first.assign(err=(first[Y] - first[YHAT]) ** 2).pivot_table(index=[ID, FOLD], columns=MODEL, values="err")
    out = pd.DataFrame(np.nan, index=list(models), columns=list(models))
    for a in models:
        for b in models:
            if a != b:
                d = (e[a] - e[b]).to_numpy()
                sd = float(np.std(d, ddof=1))
                stat = float(np.mean(d) / (sd / math.sqrt(len(d)))) if sd > 0 else 0.0
                out.loc[a, b] = 2 * min(_phi(stat), 1 - _phi(stat))
    return out


def _trading(
    forecasts: pd.DataFrame, prices: dict[str, np.ndarray], dates: pd.DatetimeIndex, models: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    trading_rows, equity_parts = [], []
    for u, y in prices.items():
        ret = pd.Series(np.r_[0.0, np.diff(y) / y[:-1]], index=dates)
        for m in models:
            f = forecasts[(forecasts[ID] == u) & (forecasts[MODEL] == m)].sort_values(DS)
            last = f[CUTOFF].map(pd.Series(y, index=dates))
            position = np.sign(f[YHAT].to_numpy() - last.to_numpy())
            r = position * ret.reindex(f[DS]).to_numpy()
            eq = np.cumprod(1 + r)
            hold = np.cumprod(1 + ret.reindex(f[DS]).to_numpy())
            sd = float(np.std(r))
            trading_rows.append(
                {
                    ID: u,
                    MODEL: m,
                    "rule": "sign",
                    "hit_rate": float(np.mean(np.sign(r) > 0)),
                    "cum_return": float(eq[-1] - 1),
                    "buy_hold_return": float(hold[-1] - 1),
                    "sharpe": float(np.mean(r) / sd * math.sqrt(252)) if sd > 0 else np.nan,
                    "max_drawdown": float(np.max(1 - eq / np.maximum.accumulate(eq))),
                    "turnover": float(np.mean(np.abs(np.diff(position, prepend=0)))),
                }
            )
            equity_parts.append(pd.DataFrame({ID: u, MODEL: m, "rule": "sign", DS: f[DS].to_numpy(), "equity": eq}))
        f = forecasts[(forecasts[ID] == u) & (forecasts[MODEL] == models[0])].sort_values(DS)
        hold = np.cumprod(1 + ret.reindex(f[DS]).to_numpy())
        equity_parts.append(
            pd.DataFrame({ID: u, MODEL: BUY_AND_HOLD, "rule": BUY_AND_HOLD, DS: f[DS].to_numpy(), "equity": hold})
        )
    return pd.DataFrame(trading_rows), pd.concat(equity_parts, ignore_index=True)


@pytest.fixture
def make_input():
    """The `make_report_input` factory, for tests that need non-default tables."""
    return make_report_input


@pytest.fixture(scope="session")
def report_input() -> ReportInput:
    """The default synthetic report input (seed 0, two series, naive/ets/prophet)."""
    return make_report_input(0)
