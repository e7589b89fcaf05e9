"""From a BacktestResult to every table a reader needs: metrics, leaderboard, significance, intervals, trading.

One call (`evaluate`) so the CLI, the Prefect flow and the benchmarks compute the verdict the same way. The
diagnosis of covariate and tuning variants is recomputed here from the forecasts (its saved CSV is a copy for
people, never read back), so a re-rendered run (`pricecast report`) gets the table the flow did.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from backtest.diagnosis import diagnosis_table, empty_diagnosis
from backtest.metrics import leaderboard, metrics_table, per_horizon_table, per_series_table
from backtest.multiple_testing import multiple_testing_tables
from backtest.probabilistic import interval_tests
from backtest.results import BacktestResult
from backtest.significance import DM_COLUMNS, dm_pairwise, dm_table
from backtest.trading import equity_curves, trading_table
from common.fileio import write_table
from common.schema import INTERVAL_TEST_COLUMNS, MCS_COLUMNS, MODEL, NAIVE, SPA_COLUMNS

REFERENCE = NAIVE  # the model every significance test and champion choice compares against
TRADING_COST_BPS = 5.0  # per unit of turnover: a liquid large cap's spread plus commission, roughly


@dataclass
class Evaluation:
    """Scored tables of one backtest; every frame is long/tidy except dm_pairwise (a p-value matrix)."""

    metrics: pd.DataFrame
    per_series: pd.DataFrame
    per_horizon: pd.DataFrame
    leaderboard: pd.DataFrame
    dm: pd.DataFrame
    dm_pairwise: pd.DataFrame
    trading: pd.DataFrame
    equity: pd.DataFrame
    # Each variant vs its plain model and naive (backtest.diagnosis); empty when the run had no variants.
    diagnosis: pd.DataFrame = field(default_factory=empty_diagnosis)
    # Kupiec and Christoffersen tests of every model's 80% and 95% intervals (backtest.probabilistic).
    interval_tests: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(INTERVAL_TEST_COLUMNS)))
    # The 10% Model Confidence Set and Hansen's SPA test against naive (backtest.multiple_testing).
    mcs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(MCS_COLUMNS)))
    spa: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SPA_COLUMNS)))

    def save(self, out_dir: str | Path) -> Path:
        """metrics.parquet, leaderboard.csv and the rest (parquet + csv), each written atomically.

        diagnosis is written only when the run had variants, so a run without them writes the files it always did.
        """
        out_dir = Path(out_dir)
        for f in fields(self):
            frame = getattr(self, f.name)
            if f.name == "diagnosis" and frame.empty:
                for stale in ("diagnosis.parquet", "diagnosis.csv"):  # an earlier run's, in a reused --out
                    (out_dir / stale).unlink(missing_ok=True)
                continue
            if f.name == "dm_pairwise":
                frame = frame.reset_index()
            write_table(frame, out_dir, f.name, parquet=f.name != "leaderboard")
        return out_dir


def evaluate(result: BacktestResult, *, reference: str = REFERENCE, cost_bps: float | None = None) -> Evaluation:
    """Score every model; significance is tested against `reference` (the naive random walk) when it ran."""
    forecasts, fold_info = result.forecasts, result.fold_info
    if cost_bps is None:
        cost_bps = float(result.meta.get("trading_cost_bps", TRADING_COST_BPS))
    step = int(result.meta.get("plan", {}).get("step", 1) or 1)
    has_reference = reference in set(forecasts[MODEL])
    dm = dm_table(forecasts, reference, step=step) if has_reference else pd.DataFrame(columns=list(DM_COLUMNS))
    mcs, spa = multiple_testing_tables(forecasts, fold_info, step=step, benchmark=reference)
    if not has_reference:
        spa = spa.iloc[:0]
    board = leaderboard(forecasts, fold_info, dm if has_reference else None, failures=result.failures, mcs=mcs)
    return Evaluation(
        metrics=metrics_table(forecasts, fold_info),
        per_series=per_series_table(forecasts, fold_info),
        per_horizon=per_horizon_table(forecasts, fold_info),
        leaderboard=board,
        dm=dm,
        dm_pairwise=dm_pairwise(forecasts, h=1, step=step) if not forecasts.empty else pd.DataFrame(),
        trading=trading_table(forecasts, fold_info, cost_bps=cost_bps),
        equity=equity_curves(forecasts, fold_info, cost_bps=cost_bps),
        diagnosis=diagnosis_table(
            forecasts,
            board,
            dm if has_reference else None,
            failures=result.failures,
            reference=reference,
            step=step,
        ),
        interval_tests=interval_tests(forecasts),
        mcs=mcs,
        spa=spa,
    )
