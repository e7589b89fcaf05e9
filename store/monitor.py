"""Live monitoring: is a (ticker, model)'s recent live record much worse than its newest backtest promised?

For every (unique_id, model) with scored live forecasts, the rows of its latest `window` scored as_of dates are
compared with the same pair in the newest stored backtest run that contains it. Live MASE is the mean scaled
error and live 95% coverage the share of covered rows; the backtest figures are its per-horizon-step means
weighted by the live rows' horizon steps (the latest as_of dates have only their short steps scored, and MASE
grows with the step), over the steps both cover. A breach needs `min_scored` such rows and either
live MASE > `mase_ratio` x backtest MASE or live coverage < backtest coverage - `coverage_drop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from common.errors import ConfigError
from common.schema import (
    AS_OF,
    BACKTEST_COVERAGE_95,
    BACKTEST_MASE,
    BACKTEST_RUN_ID,
    BREACH,
    COVERAGE_95,
    COVERED_95,
    ID,
    LIVE_COVERAGE_95,
    LIVE_MASE,
    MASE,
    METRIC,
    MODEL,
    MONITOR_COLUMNS,
    N_SCORED,
    REASON,
    RESOLVED_MODEL,
    RUN_ID,
    SCALED_ERROR,
    VALUE,
    H,
)
from store.results_store import ResultStore


@dataclass(frozen=True)
class MonitorPolicy:
    """When the live record counts as a breach of what the backtest promised."""

    window: int = 20  # latest scored as_of dates per (ticker, model); each contributes up to `horizon` rows
    min_scored: int = 20  # fewer comparable scored rows than this is never a breach
    mase_ratio: float = 1.5  # live MASE above this multiple of the backtest MASE
    coverage_drop: float = 0.15  # live 95% coverage below the backtest's minus this

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_scored < 1:
            raise ConfigError(f"window and min_scored must be >= 1, got {self.window} and {self.min_scored}")
        if not self.mase_ratio > 0 or not 0 <= self.coverage_drop < 1:
            raise ConfigError(
                f"mase_ratio must be > 0 and coverage_drop in [0, 1), got {self.mase_ratio} and {self.coverage_drop}"
            )


DEFAULT_POLICY = MonitorPolicy()


def live_monitor(store: ResultStore, policy: MonitorPolicy = DEFAULT_POLICY) -> pd.DataFrame:
    """The comparison (MONITOR_COLUMNS) of every (ticker, model) with scored live forecasts in `store`."""
    if not store.path.exists():
        return compare_live(pd.DataFrame(), pd.DataFrame(), policy)
    live = store.live_score_window(last_as_of=policy.window)
    backtest = store.newest_backtest_metrics((MASE, COVERAGE_95))
    return compare_live(live, backtest, policy)


def compare_live(live: pd.DataFrame, backtest: pd.DataFrame, policy: MonitorPolicy) -> pd.DataFrame:
    """Compare windowed live scores (ResultStore.live_score_window) with newest backtest metrics by horizon step
    (ResultStore.newest_backtest_metrics); one row per live (unique_id, model), sorted by both."""
    if live.empty:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "float64")) for c in MONITOR_COLUMNS})
    rows = []
    by_pair = {key: group for key, group in backtest.groupby([ID, MODEL], sort=False)} if len(backtest) else {}
    for (uid, model), pair in live.groupby([ID, MODEL], sort=True):
        rows.append(_compare_pair(str(uid), str(model), pair, by_pair.get((uid, _backtested_as(model, pair))), policy))
    return pd.DataFrame(rows, columns=list(MONITOR_COLUMNS)).astype(_DTYPES)


def _backtested_as(model: str, pair: pd.DataFrame) -> str:
    """The model whose backtest a live pair is held to: a `champion` record is held to the model it ran last."""
    if RESOLVED_MODEL in pair.columns:
        resolved = pair.sort_values(AS_OF)[RESOLVED_MODEL].dropna()
        if len(resolved):
            return str(resolved.iloc[-1])
    return model


def monitor_records(frame: pd.DataFrame, *, digits: int = 4) -> list[dict[str, Any]]:
    """The comparison as JSON-safe records (floats rounded, NaN -> None) for a table artifact or an event payload."""
    return [{k: _json(v, digits) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def breach_markdown(frame: pd.DataFrame, policy: MonitorPolicy, *, next_step: str) -> str:
    """A notification naming every breached (ticker, model), its figures against the backtest and `next_step`."""
    breached = frame[frame[BREACH]]
    lines = [
        f"# Live forecast breach: {len(breached)} (ticker, model) pair{'s' if len(breached) != 1 else ''}",
        "",
        f"Over each pair's latest {policy.window} scored forecast dates (at least {policy.min_scored} scored rows), "
        f"live MASE above {policy.mase_ratio:g} x the backtest's, or live 95% coverage more than "
        f"{policy.coverage_drop:g} below it.",
        "",
        "| ticker | model | scored rows | live MASE | backtest MASE | live 95% cov. | backtest 95% cov. | why "
        "| backtest run |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in breached.to_dict(orient="records"):
        cells = [_md(r[ID]), _md(r[MODEL]), str(r[N_SCORED])]
        cells += [_num(r[c]) for c in (LIVE_MASE, BACKTEST_MASE, LIVE_COVERAGE_95, BACKTEST_COVERAGE_95)]
        cells += [_md(r[REASON]), _md(str(r[BACKTEST_RUN_ID])[:8])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", f"**What happens next:** {_md(next_step)}", ""])


# ---- internals ----------------------------------------------------------------------------------------------
_DTYPES = {
    ID: "object",
    MODEL: "object",
    N_SCORED: "int64",
    BREACH: "bool",
    REASON: "object",
    BACKTEST_RUN_ID: "object",
}


def _compare_pair(
    uid: str, model: str, live: pd.DataFrame, backtest: pd.DataFrame | None, policy: MonitorPolicy
) -> list[Any]:
    if backtest is None or backtest.empty:
        figures = [_mean(live[SCALED_ERROR]), math.nan, _mean(live[COVERED_95]), math.nan]
        return [uid, model, len(live), *figures, False, "no stored backtest run contains this pair", None]
    comparable = live[live[H].isin(set(backtest[H]))]
    live_mase, bt_mase = _matched(comparable, backtest, SCALED_ERROR, MASE)
    live_cov, bt_cov = _matched(comparable, backtest, COVERED_95, COVERAGE_95)
    reasons = []
    if live_mase > policy.mase_ratio * bt_mase:  # NaN on either side compares False: no breach
        reasons.append(f"live MASE {live_mase:.3g} > {policy.mase_ratio:g} x backtest {bt_mase:.3g}")
    if live_cov < bt_cov - policy.coverage_drop:
        reasons.append(f"live 95% coverage {live_cov:.3g} < backtest {bt_cov:.3g} - {policy.coverage_drop:g}")
    n = len(comparable)
    if n < policy.min_scored:
        breach, reason = False, f"only {n} scored rows at the backtest's horizon steps, {policy.min_scored} needed"
    else:
        breach, reason = bool(reasons), "; ".join(reasons) or "within policy"
    run = str(backtest[RUN_ID].iloc[0])
    return [uid, model, n, live_mase, bt_mase, live_cov, bt_cov, breach, reason, run]


def _matched(live: pd.DataFrame, backtest: pd.DataFrame, column: str, metric: str) -> tuple[float, float]:
    """Live mean of `column` and the backtest's `metric` weighted by those live rows' horizon steps."""
    by_step = backtest.loc[backtest[METRIC] == metric].set_index(H)[VALUE]
    rows = live[live[column].notna() & live[H].isin(by_step.index)]
    if rows.empty:
        return math.nan, math.nan
    return _mean(rows[column]), float(by_step.reindex(rows[H]).mean())


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values.astype("object").where(values.notna(), None), errors="coerce")
    return float(values.mean()) if values.notna().any() else math.nan


def _json(value: Any, digits: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.{digits}g}")
    if hasattr(value, "item"):  # numpy scalars
        return _json(value.item(), digits)
    return value


def _num(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3g}"


def _md(text: str) -> str:
    """Neutralise Markdown table pipes and raw HTML from stored names (as reports.markdown does)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
