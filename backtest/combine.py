"""The ensemble's backtest unit built from its members' units of the same run, instead of fitting them again.

A run backtesting naive, ets, arima and `ensemble` (members naive, ets, arima) fits every member twice on every
refit fold: once as a model of the run, once inside the ensemble. When the ensemble's members are models of the
run with the same constructor parameters and the same refit policy (`reusable_members`), the ensemble's forecasts
are a median (or mean) of forecasts the run already has: `combine_member_results` builds its UnitResult from them,
with no fitting at all. Pure: tables in, tables out; the orchestrator decides when to use it.

Why the result equals the fitted ensemble's: inside `models.ensemble.Ensemble` each member is fitted on the same
training frame, conditioned (update) on the same rows and asked for the same steps as when it runs as a unit of
its own (both use the base `Forecaster.forecast_origins` loop, update + predict per origin), and the ensemble
combines with `np.median` / `np.mean` over the members' stacked forecasts in member order, as here.

Where it differs, on purpose: a member's failed fold fails the ensemble's fold here as in the fitted ensemble
("member 'ets' failed: ..."), but afterwards the fitted ensemble refits ALL members on the next fold (its block
restarts), while here every member keeps its own block schedule: the combined forecasts are exactly the ones the
run's members report, fold by fold. Without member failures the two agree (tests/backtest/test_combine.py).

Timings: the combined unit records fit_seconds = predict_seconds = 0 and refit = False on every fold: the honest
figure for this run, which spent no time fitting or predicting the ensemble (combining takes microseconds); its
members' own rows hold the cost of the forecasts it combines. A reader tells a combined ensemble from a fitted
one by exactly that: a fitted ensemble has refit = True on its first fold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtest.folds import Fold
from backtest.results import UnitResult, normalize
from common.errors import ConfigError, DataError, ModelFitError
from common.schema import (
    BACKTEST_COLUMNS,
    CUTOFF,
    DS,
    ERROR_TYPE,
    FAILURE_COLUMNS,
    FIT_SECONDS,
    FOLD,
    ID,
    INTERVAL_COLUMNS,
    MESSAGE,
    MODEL,
    PREDICT_SECONDS,
    REFIT,
    TIMING_COLUMNS,
    YHAT,
    H,
    Y,
)

ENSEMBLE = "ensemble"  # the registry name of models.ensemble.Ensemble
COMBINES = ("median", "mean")


def reusable_members(
    ensemble_params: Mapping[str, Any],
    run_models: Mapping[str, Mapping[str, Any]],
    refit: Mapping[str, int],
) -> tuple[str, ...] | None:
    """The ensemble's member names when its backtest can be combined from the run's own member units, else None.

    Reusable when EVERY member is a model of the run (`run_models`: name -> constructor params) built with the
    same constructor parameters as the ensemble would build it (registry defaults + the ensemble's
    member_params[name], compared as the constructed models' get_params()) and run under the same resolved refit
    policy as the ensemble (`refit`: model -> resolved refit_every, "ensemble" included). None (fit the ensemble
    as before) when anything differs or cannot be told: params the ensemble or a member refuses (its own fit
    reports them), a member that warm-starts its refits (inside the ensemble it is rebuilt at every refit, alone
    it is refitted in place: different forecasts) or that takes exogenous columns (the ensemble passes none).
    """
    from models import make_model
    from models.ensemble import Ensemble

    try:
        ensemble = make_model(ENSEMBLE, **ensemble_params)
    except (ConfigError, TypeError):
        return None
    if not isinstance(ensemble, Ensemble):  # a registry entry "ensemble" of another kind: nothing to combine
        return None
    members = tuple(str(m) for m in ensemble.members)
    member_params: Mapping[str, Mapping[str, Any]] = ensemble.member_params or {}
    policy = refit.get(ENSEMBLE)
    if policy is None:
        return None
    for name in members:
        if name not in run_models or refit.get(name) != policy:
            return None
        if not _same_model(name, member_params.get(name, {}), run_models[name]):
            return None
    return members


def _same_model(name: str, inside: Mapping[str, Any], alone: Mapping[str, Any]) -> bool:
    """Whether `name` built with `inside` (as the ensemble builds it) forecasts like `name` built with `alone`."""
    from models import make_model

    try:
        a, b = make_model(name, **inside), make_model(name, **alone)
    except (ConfigError, TypeError, ValueError, ImportError):  # the fitted ensemble reports these itself
        return False
    if getattr(a, "warm_start", False) or tuple(getattr(a, "exog_columns", ()) or ()):
        return False
    try:
        return type(a) is type(b) and bool(a.get_params() == b.get_params())
    except (TypeError, ValueError):  # parameters without a plain equality (arrays): not provably the same
        return False


def combine_member_results(
    *,
    uid: str,
    model: str,
    members: Sequence[str],
    combine: str,
    results: Mapping[str, UnitResult],
    folds: Sequence[Fold],
) -> UnitResult:
    """The ensemble's UnitResult for series `uid` from its members' UnitResults on the same `folds`.

    yhat per (fold, h) is the median or mean over `members` (in that order) of their yhat, as Ensemble._predict
    combines them; y, ds and cutoff come from the members' rows; no intervals (the ensemble declares none). A fold
    where any member has no forecast is a failure of the ensemble naming the first such member and its error.
    Tables have the engine's columns and dtypes (backtest.results.normalize).
    """
    if combine not in COMBINES:
        raise ConfigError(f"{model}: combine must be 'median' or 'mean', got {combine!r}")
    if not members:
        raise ConfigError(f"{model} on {uid}: no members to combine; pass the ensemble's member names")
    missing = sorted({m for m in members if m not in results})
    if missing:
        raise ConfigError(
            f"{model} on {uid}: no unit results for members {missing} (have {sorted(results)}); combine only "
            "members the run backtested (reusable_members)"
        )
    fold_info = _shared_fold_info(uid, model, members, results)
    by_member = {m: _forecasts_by_fold(results[m].forecasts) for m in dict.fromkeys(members)}
    rows: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    for fold in sorted(folds, key=lambda f: f.fold):
        absent = next((m for m in members if fold.fold not in by_member[m]), None)
        if absent is not None:
            failures.append(_member_failure(uid, model, absent, fold.fold, results[absent].failures))
            continue
        rows.append(_combined_fold(uid, model, fold.fold, [by_member[m][fold.fold] for m in members], combine))
    done = [int(r[FOLD].iloc[0]) for r in rows]
    timings = pd.DataFrame(
        {ID: uid, MODEL: model, FOLD: done, FIT_SECONDS: 0.0, PREDICT_SECONDS: 0.0, REFIT: False},
        columns=list(TIMING_COLUMNS),
    )
    if rows:
        forecasts = pd.concat(rows, ignore_index=True)
        forecasts = normalize(forecasts, BACKTEST_COLUMNS).sort_values([FOLD, H], kind="stable").reset_index(drop=True)
    else:
        forecasts = normalize(pd.DataFrame(columns=list(BACKTEST_COLUMNS)), BACKTEST_COLUMNS)
    return UnitResult(
        forecasts=forecasts,
        timings=normalize(timings, TIMING_COLUMNS),
        failures=normalize(pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)), FAILURE_COLUMNS),
        fold_info=fold_info,
        # Members date their forecasts from the same calendar, so they disagree with the data on the same folds;
        # the member with the fewest counts the ensemble's folds (exactly, unless members failed on different folds).
        date_mismatches=min(int(results[m].date_mismatches) for m in members),
    )


def _forecasts_by_fold(forecasts: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """A member's forecast rows per fold, sorted by h."""
    return {int(k): g.sort_values(H, kind="stable") for k, g in forecasts.groupby(FOLD, sort=True)}


def _combined_fold(uid: str, model: str, fold: int, parts: list[pd.DataFrame], combine: str) -> pd.DataFrame:
    """One fold's ensemble rows: the members' yhat stacked (one row per member) and reduced as Ensemble does."""
    first = parts[0]
    steps = first[H].to_numpy()
    for part in parts[1:]:
        if not np.array_equal(part[H].to_numpy(), steps) or not np.array_equal(part[DS].to_numpy(), first[DS]):
            raise DataError(
                f"{model} on {uid}: fold {fold}: members forecast different sessions; combine only unit results "
                "of one run (same folds, same horizon)"
            )
    stacked = np.vstack([part[YHAT].to_numpy(dtype=float) for part in parts])
    yhat = np.median(stacked, axis=0) if combine == "median" else np.mean(stacked, axis=0)
    out = pd.DataFrame(
        {
            ID: uid,
            MODEL: model,
            FOLD: fold,
            CUTOFF: first[CUTOFF].to_numpy(),
            DS: first[DS].to_numpy(),
            H: steps,
            Y: first[Y].to_numpy(dtype=float),
            YHAT: yhat,
        }
    )
    for col in INTERVAL_COLUMNS:
        out[col] = np.nan
    return out


def _member_failure(uid: str, model: str, member: str, fold: int, failures: pd.DataFrame) -> dict[str, Any]:
    """The ensemble's failure row for a fold `member` has no forecast for, worded as Ensemble._run words it."""
    recorded = failures.loc[failures[FOLD] == fold]
    if len(recorded):
        row = recorded.iloc[0]
        error_type, message = str(row[ERROR_TYPE]), str(row[MESSAGE])
        prefix = f"{member} on {uid}: "
        reason = message[len(prefix) :] if message.startswith(prefix) else message
    else:
        error_type, reason = ModelFitError.__name__, "no forecast and no recorded failure for this fold"
    wrapped = ModelFitError(model, uid, f"member {member!r} failed: {reason}")
    return {ID: uid, MODEL: model, FOLD: fold, ERROR_TYPE: error_type, MESSAGE: str(wrapped)}


def _shared_fold_info(uid: str, model: str, members: Sequence[str], results: Mapping[str, UnitResult]) -> pd.DataFrame:
    """The members' fold_info (per series x fold, the same for every model of a run); DataError if they differ."""
    first = results[members[0]].fold_info.reset_index(drop=True)
    for m in members[1:]:
        if not results[m].fold_info.reset_index(drop=True).equals(first):
            raise DataError(
                f"{model} on {uid}: members {members[0]!r} and {m!r} were backtested on different folds; combine "
                "only unit results of one run"
            )
    return first.copy()
