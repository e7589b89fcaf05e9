"""The report's one input object and what each metric means (table and column names: common.schema)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import pandas as pd

from common.errors import DataError
from common.schema import (
    BEATS_NAIVE_DM,
    BUY_HOLD_RETURN,
    COVERAGE_80,
    COVERAGE_95,
    CUM_RETURN,
    DIRECTIONAL_ACCURACY,
    EXCESS_RETURN,
    HIT_RATE,
    ID,
    IN_MCS,
    MAE,
    MAPE,
    MASE,
    MAX_DRAWDOWN,
    MCS_P_VALUE,
    MEAN_RANK,
    MODEL,
    N_FAILURES,
    N_SCALE_UNDEFINED,
    N_SERIES,
    NAIVE,
    OOS_R2,
    PINBALL,
    RMSE,
    RMSSE,
    SCALED_CRPS,
    SHARPE,
    SMAPE,
    TURNOVER,
    WINKLER_80,
    WINKLER_95,
)

Better = Literal["lower", "higher", "nominal", "none"]
# The trading table's columns the report shows, in this order.
TRADING_METRICS = (HIT_RATE, CUM_RETURN, BUY_HOLD_RETURN, EXCESS_RETURN, SHARPE, MAX_DRAWDOWN, TURNOVER)
# Trading columns that are returns (fractions), shown as percentages.
RETURN_METRICS = (CUM_RETURN, BUY_HOLD_RETURN, EXCESS_RETURN, MAX_DRAWDOWN)


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: a short label, which direction is better and a one-line caption."""

    label: str
    better: Better
    caption: str
    nominal: float | None = None  # coverage: the target rate, as a fraction


METRICS: dict[str, MetricInfo] = {
    MAE: MetricInfo("MAE", "lower", "Mean absolute error, in price units."),
    RMSE: MetricInfo("RMSE", "lower", "Root mean squared error, in price units; punishes large misses more than MAE."),
    MAPE: MetricInfo("MAPE", "lower", "Mean absolute percentage error."),
    SMAPE: MetricInfo("sMAPE", "lower", "Symmetric MAPE: absolute error over the mean of |actual| and |forecast|."),
    MASE: MetricInfo(
        "MASE",
        "lower",
        "MAE scaled by the in-sample naive MAE; MASE < 1 means better than the in-sample naive forecast.",
    ),
    RMSSE: MetricInfo("RMSSE", "lower", "RMSE scaled by the in-sample naive RMSE; < 1 beats the in-sample naive."),
    DIRECTIONAL_ACCURACY: MetricInfo(
        "Dir. acc.", "higher", "Share of steps where the forecast gets the direction of the move right; 0.5 is a coin."
    ),
    COVERAGE_80: MetricInfo(
        "Cov. 80", "nominal", "Share of actuals inside the 80% interval; well calibrated is close to 0.80.", 0.80
    ),
    COVERAGE_95: MetricInfo(
        "Cov. 95", "nominal", "Share of actuals inside the 95% interval; well calibrated is close to 0.95.", 0.95
    ),
    WINKLER_80: MetricInfo("Winkler 80", "lower", "80% interval width plus a penalty for misses; lower is better."),
    WINKLER_95: MetricInfo("Winkler 95", "lower", "95% interval width plus a penalty for misses; lower is better."),
    SCALED_CRPS: MetricInfo(
        "scaled CRPS",
        "lower",
        "CRPS of the quantile forecast over the in-sample naive MAE (= MASE for a point forecast); lower is better.",
    ),
    PINBALL: MetricInfo(
        "pinball", "lower", "Mean pinball loss at the interval quantiles, on the MASE scale; lower is better."
    ),
    OOS_R2: MetricInfo(
        "OOS R²",
        "higher",
        "Out-of-sample R² of the 1-step log return against a zero-return forecast (Campbell–Thompson); > 0 beats it.",
    ),
    IN_MCS: MetricInfo(
        "in MCS",
        "none",
        "In the Model Confidence Set: not significantly worse than the best model (Hansen, Lunde & Nason).",
    ),
    MCS_P_VALUE: MetricInfo("MCS p", "none", "The model's MCS p-value; it stays in the set while p exceeds the size."),
    MEAN_RANK: MetricInfo("Mean rank", "lower", "Rank among models averaged over series and metrics; 1 is best."),
    BEATS_NAIVE_DM: MetricInfo(
        "Beats naive (DM 5%)", "none", "Significantly lower loss than the naive random walk (Diebold–Mariano, 5%)."
    ),
    N_SERIES: MetricInfo("Series", "none", "Series the model forecast."),
    N_FAILURES: MetricInfo("Failures", "none", "(series, fold) units where the model failed."),
    N_SCALE_UNDEFINED: MetricInfo(
        "No MASE scale",
        "none",
        "(series, fold) pairs whose in-sample naive error is zero or not finite: their MASE/RMSSE are left out (NaN).",
    ),
    HIT_RATE: MetricInfo("Hit rate", "higher", "Share of trades whose direction was right."),
    CUM_RETURN: MetricInfo("Cum. return", "higher", "Cumulative return of the rule over the test sessions."),
    BUY_HOLD_RETURN: MetricInfo(
        "Buy & hold", "none", "Cumulative return of buying and holding over the same sessions."
    ),
    EXCESS_RETURN: MetricInfo(
        "Excess return", "higher", "Cumulative return of the rule minus buy-and-hold's over the same sessions."
    ),
    SHARPE: MetricInfo("Sharpe", "higher", "Annualised Sharpe ratio of the rule's daily returns (no costs)."),
    MAX_DRAWDOWN: MetricInfo("Max DD", "lower", "Largest peak-to-trough fall of the equity curve."),
    TURNOVER: MetricInfo("Turnover", "lower", "Average share of the position traded per session."),
}
LEADERBOARD_METRICS = (
    MAE,
    RMSE,
    MAPE,
    SMAPE,
    MASE,
    RMSSE,
    DIRECTIONAL_ACCURACY,
    COVERAGE_80,
    COVERAGE_95,
    WINKLER_80,
    WINKLER_95,
)


@dataclass(frozen=True, eq=False, kw_only=True)
class ReportInput:
    """Every table a backtest produces, bundled so renderers take one object; optional tables may be None.

    `meta` keys read by the run header (all optional): source, tickers, sessions ({ticker: (first, last)}),
    plan ({horizon, step, windows, window_type, gap}), refit_every, versions ({package: version}),
    git_commit, elapsed_seconds, flow_run_id, created_at. Other keys are listed as they are.
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    leaderboard: pd.DataFrame
    dm: pd.DataFrame | None = None
    dm_pairwise: pd.DataFrame | None = None
    per_series: pd.DataFrame | None = None
    timings: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    fold_info: pd.DataFrame | None = None
    trading: pd.DataFrame | None = None
    equity: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None
    refit_tradeoff: pd.DataFrame | None = None
    diagnosis: pd.DataFrame | None = None  # variants vs plain and naive (DIAGNOSIS_COLUMNS); None or empty: no variants
    tuning: pd.DataFrame | None = None  # what each `+tuned` variant chose per fold (TUNING_COLUMNS)
    mcs: pd.DataFrame | None = None  # the 10% Model Confidence Set (MCS_COLUMNS); None: an older run, not tested
    spa: pd.DataFrame | None = None  # Hansen's SPA test against naive (SPA_COLUMNS)
    interval_tests: pd.DataFrame | None = None  # Kupiec / Christoffersen per model and level (INTERVAL_TEST_COLUMNS)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that are present, by field name (for `export_csv`)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pd.DataFrame):
                out[f.name] = value
        return out


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, table: str) -> None:
    """Raise DataError naming the table and its missing columns, so a contract drift fails loudly, not blankly."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{table} table is missing columns {missing}; it has {list(frame.columns)}. "
            f"Pass the table the backtest wrote, or rename the columns to the report's contract."
        )


def model_order(leaderboard: pd.DataFrame) -> list[str]:
    """Models by MASE, the headline metric (ties by mean rank), so tables, legends and colours agree across the
    report and with the leaderboard's own order."""
    if leaderboard is None or leaderboard.empty or MODEL not in leaderboard.columns:
        return []
    keys = [c for c in (MASE, MEAN_RANK) if c in leaderboard.columns]
    ordered = leaderboard.sort_values(keys, na_position="last") if keys else leaderboard
    return [str(m) for m in ordered[MODEL].drop_duplicates()]


def series_ids(data: ReportInput) -> list[str]:
    """Series in the order they first appear in the forecasts (falls back to the metrics table)."""
    for frame in (data.forecasts, data.metrics, data.per_series):
        if frame is not None and not frame.empty and ID in frame.columns:
            return [str(u) for u in frame[ID].drop_duplicates()]
    return []


def highlighted_models(leaderboard: pd.DataFrame) -> set[str] | None:
    """The models the error charts show at first: the Model Confidence Set and naive; None (show all) without MCS.

    A missing `in_mcs` (an older run, or MCS not tested) means nothing is known, so nothing is hidden.
    """
    if leaderboard is None or leaderboard.empty or IN_MCS not in leaderboard.columns:
        return None
    members = leaderboard[leaderboard[IN_MCS].fillna(False).astype(bool)]
    if members.empty:
        return None
    models = {str(m) for m in members[MODEL]}
    if NAIVE in set(leaderboard[MODEL].astype(str)):
        models.add(NAIVE)
    return models
