"""Synthetic universes for the scale benchmark: seeded geometric random walks on real XNYS sessions, as a long CSV.

    python benchmarks/peers/universe.py --series 100 --seed 0 --out /tmp/universe-100.csv

The file is shaped like a user's export (Date, Ticker, Open, High, Low, Close, Adj Close, Volume; one row per
ticker and session), which the csv source reads as it is. Each series i draws everything from its own generator
seeded by (seed, i), so universes nest: S0001..S0100 are the same series in the 100- and the 2,000-series file,
and a bigger universe only adds series (sizes differ only in count, never in the series they share).

Realistic on purpose, because cost depends on it: daily volatility 1-3 % per series (uniform), a small drift,
prices > 0 (a geometric walk from a log-normal start around 50), and lengths mostly one year with a long tail:
LENGTH_MIX gives the share of series per length band in sessions. Every series ends on the same last session
(a universe downloaded on one day), so all series share their fold cutoffs. Adj Close equals Close (no
corporate actions: a benchmark should not depend on an adjustment model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

END = "2025-12-31"  # fixed, never "today": the same seed must give the same file next year
CALENDAR = "XNYS"
# (share of series, shortest, longest) in sessions; the shortest band still fits 20 origins x step 5 + horizon 5
# after ~150 training sessions, so every model's minimum training size is met at the first origin.
LENGTH_MIX: tuple[tuple[float, int, int], ...] = ((0.80, 252, 300), (0.15, 301, 756), (0.05, 757, 2520))
VOL_RANGE = (0.01, 0.03)  # daily log-return standard deviation, per series
COLUMNS = ("Date", "Ticker", "Open", "High", "Low", "Close", "Adj Close", "Volume")


def sessions(n: int, *, end: str = END) -> pd.DatetimeIndex:
    """The last `n` XNYS sessions up to `end` (real holidays and early closes, as a real download has)."""
    import exchange_calendars as xc

    cal = xc.get_calendar(CALENDAR, start="1990-01-01", end=end)
    days = cal.sessions
    if n > len(days):
        raise ValueError(f"{n} sessions asked but {CALENDAR} has {len(days)} up to {end}; lower LENGTH_MIX's maximum")
    return pd.DatetimeIndex(days[-n:]).tz_localize(None)


def series_length(rng: np.random.Generator) -> int:
    """One length drawn from LENGTH_MIX: pick a band by its share, then a uniform length inside it."""
    shares = np.array([s for s, _, _ in LENGTH_MIX])
    band = LENGTH_MIX[int(rng.choice(len(LENGTH_MIX), p=shares / shares.sum()))]
    return int(rng.integers(band[1], band[2] + 1))


def one_series(i: int, *, seed: int, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Series i (ticker S{i:04d}, 1-based) as bars; all its randomness comes from default_rng([seed, i])."""
    rng = np.random.default_rng([seed, i])
    n = series_length(rng)
    vol = rng.uniform(*VOL_RANGE)
    drift = rng.normal(0.0002, 0.0004)  # ~ +5 %/year on average, differing per series
    start = float(np.exp(rng.normal(np.log(50.0), 0.8)))
    log_ret = rng.normal(drift - vol**2 / 2, vol, size=n)
    close = start * np.exp(np.cumsum(log_ret))
    # The open gaps from the previous close by a fraction of the day's volatility; high/low straddle both.
    prev = np.concatenate([[start], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, vol / 3, size=n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, size=n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, size=n)))
    volume = np.round(np.exp(rng.normal(np.log(1e6), 0.5, size=n)) * (1.0 + 20 * np.abs(log_ret)))
    return pd.DataFrame(
        {
            "Date": days[-n:].strftime("%Y-%m-%d"),
            "Ticker": f"S{i:04d}",
            "Open": open_,
            "High": high,
            "Low": low,
            "Close": close,
            "Adj Close": close,
            "Volume": volume.astype("int64"),
        },
        columns=list(COLUMNS),
    )


def synthetic_universe(n_series: int, *, seed: int = 0, end: str = END) -> pd.DataFrame:
    """`n_series` seeded random-walk series on XNYS sessions ending at `end`, as one long frame (COLUMNS)."""
    if n_series < 1:
        raise ValueError(f"n_series must be >= 1, got {n_series}")
    days = sessions(max(hi for _, _, hi in LENGTH_MIX), end=end)
    return pd.concat([one_series(i, seed=seed, days=days) for i in range(1, n_series + 1)], ignore_index=True)


def write_universe(path: Path, n_series: int, *, seed: int = 0, end: str = END) -> Path:
    """Write the universe as a CSV (prices to 4 decimals, as exports round them); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_universe(n_series, seed=seed, end=end).to_csv(path, index=False, float_format="%.4f")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--end", default=END)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    write_universe(args.out, args.series, seed=args.seed, end=args.end)


if __name__ == "__main__":
    main()
