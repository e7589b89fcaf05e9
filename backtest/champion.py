"""The champion of the production loop: per ticker, the lowest-MASE model that beats naive significantly.

A model qualifies on a series when the leaderboard's `beats_naive_dm` rule holds on that series alone: the
one-sided Diebold-Mariano test against naive on squared error (significance.beats_reference: p_less < ALPHA at
EVERY horizon step, an intersection-union test whose p-value is the largest step's) over that series' folds,
and its MASE is below naive's (a squared-error win with a worse mean absolute error would be a champion that
looks worse than naive on the live MASE it is monitored by). The champion is the qualifying model with the
lowest MASE, and naive when none qualifies: on daily prices that is the usual outcome, and the honest one.

Units that recorded any failure are not candidates: their metrics cover fewer folds than naive's, and a model
that fails in the backtest would fail in production too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from backtest.evaluate import REFERENCE, Evaluation
from backtest.results import BacktestResult
from backtest.significance import ALPHA, Loss, dm_series_table
from common.schema import CHAMPION_COLUMNS, ID, LOSS, MASE, MODEL, NAIVE_MASE, P_LESS, P_VALUE, PARAMS, REASON
from models.variants import SEP

log = logging.getLogger(__name__)


def choose_champions(
    per_series: pd.DataFrame,
    dm_series: pd.DataFrame,
    *,
    failures: pd.DataFrame | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    reference: str = REFERENCE,
    loss: Loss = "squared",
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per series of `per_series`: its champion, both MASEs, the DM p-value and the reason in words.

    Args:
        per_series: Evaluation.per_series (unique_id, model, mase, ...).
        dm_series: significance.dm_series_table against `reference` (unique_id + DM_COLUMNS).
        failures: the backtest's failures (unique_id, model, ...); those (series, model) units are skipped.
        params: each model's constructor parameters in the backtest, stored as JSON so the forecast runs the
            same model that was evaluated.

    Returns:
        CHAMPION_COLUMNS; p_value is NaN when the champion is naive (nothing was tested against itself).
    """
    failed = set() if failures is None or failures.empty else set(zip(failures[ID], failures[MODEL], strict=True))
    p_iut = _iut_p_values(dm_series, loss=loss)
    rows = []
    for uid, group in per_series.groupby(ID, sort=True):
        mase = group.set_index(MODEL)[MASE].astype(float)
        naive = float(mase.get(reference, np.nan))
        if (uid, reference) in failed or not np.isfinite(naive):
            rows.append(_row(uid, reference, np.nan, np.nan, np.nan, f"{reference} did not run cleanly; kept it"))
            continue
        candidates = pd.DataFrame({MASE: mase.drop(reference)})
        candidates = candidates.loc[[(uid, m) not in failed for m in candidates.index]]
        candidates[P_VALUE] = [p_iut.get((uid, m), np.nan) for m in candidates.index]
        candidates = candidates.dropna(subset=[MASE]).sort_values([MASE], kind="stable")
        winners = candidates.loc[(candidates[P_VALUE] < alpha) & (candidates[MASE] < naive)]
        if len(winners):
            model, best = winners.index[0], winners.iloc[0]
            reason = f"beats {reference} (DM p={best[P_VALUE]:.2g}; MASE {best[MASE]:.4g} vs {naive:.4g})"
            rows.append(_row(uid, model, best[MASE], naive, best[P_VALUE], reason))
        else:
            rows.append(_row(uid, reference, naive, naive, np.nan, _nothing_beats(candidates, reference, alpha)))
    out = pd.DataFrame(rows, columns=list(CHAMPION_COLUMNS[:-1]))
    out[PARAMS] = [json.dumps(dict((params or {}).get(m, {})), sort_keys=True, default=str) for m in out[MODEL]]
    return out[list(CHAMPION_COLUMNS)]


def champions_from_backtest(
    result: BacktestResult, evaluation: Evaluation, *, reference: str = REFERENCE, alpha: float = ALPHA
) -> pd.DataFrame:
    """`choose_champions` on a backtest: per-series DM tests against `reference` at the run's fold step.

    Empty (CHAMPION_COLUMNS) when `reference` was not in the run: without it nothing can be tested.
    """
    forecasts = result.forecasts
    if forecasts.empty or reference not in set(forecasts[MODEL]):
        log.warning("no champions: %r is not among this backtest's models, so nothing can be tested", reference)
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c in (MASE, NAIVE_MASE, P_VALUE) else object) for c in CHAMPION_COLUMNS}
        )
    step = int(result.meta.get("plan", {}).get("step", 1) or 1)
    # Only plain models can be champions: the live forecast (flows.forecast) runs registry models on a ticker's
    # own history, with no covariates and no tuning, so a `+cov`/`+tuned` variant could not be served.
    forecasts = forecasts.loc[~forecasts[MODEL].str.contains(SEP, regex=False)]
    per_series = evaluation.per_series.loc[~evaluation.per_series[MODEL].str.contains(SEP, regex=False)]
    dm_series = dm_series_table(forecasts, reference, losses=("squared",), step=step, alpha=alpha)
    return choose_champions(
        per_series,
        dm_series,
        failures=result.failures,
        params=result.meta.get("models") or {},
        reference=reference,
        alpha=alpha,
    )


def _iut_p_values(dm_series: pd.DataFrame, *, loss: Loss) -> dict[tuple[str, str], float]:
    """{(series, model): largest one-sided p over the horizon steps}; a NaN step (untestable) counts as p = 1."""
    if dm_series.empty:
        return {}
    rows = dm_series.loc[dm_series[LOSS] == loss]
    worst = rows.assign(_p=rows[P_LESS].astype(float).fillna(1.0)).groupby([ID, MODEL])["_p"].max()
    return {(str(uid), str(model)): float(p) for (uid, model), p in worst.items()}


def _nothing_beats(candidates: pd.DataFrame, reference: str, alpha: float) -> str:
    tested = candidates.dropna(subset=[P_VALUE])
    if tested.empty:
        return f"nothing beats {reference} significantly (no other model ran cleanly)"
    closest = tested.sort_values([P_VALUE, MASE], kind="stable").iloc[0]
    note = " but not on MASE" if closest[P_VALUE] < alpha else ""
    return f"nothing beats {reference} significantly (closest: {closest.name}, DM p={closest[P_VALUE]:.2g}{note})"


def _row(uid: Any, model: str, mase: float, naive: float, p: float, reason: str) -> dict[str, Any]:
    return {ID: str(uid), MODEL: str(model), MASE: mase, NAIVE_MASE: naive, P_VALUE: p, REASON: reason}
