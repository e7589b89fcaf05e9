"""Did covariates or tuning help? Each variant of a model against its plain model and against naive, on shared rows.

A run with `--covariates` and/or `--tune` holds, for a base model such as `lstm`, up to four variants on identical
folds (models.variants.KINDS: `lstm`, `lstm+cov`, `lstm+tuned`, `lstm+cov+tuned`). Per variant the table gives:

- MASE: the leaderboard's, so the numbers match the leaderboard; `mase_change` = MASE / plain MASE - 1.
- p_vs_plain: the one-sided Diebold-Mariano (HLN) p-value of "the variant's loss is lower than the plain model's",
  from `significance.dm_table` with the plain model as the reference, on the (unique_id, fold, h) rows both
  forecast (a variant's failed folds drop out of the pairs, they are not filled).
- p_vs_naive: the same test against naive, read from the run's dm table, so it equals the verdict's p for the model.
- beats_naive_dm: the leaderboard's flag (the verdict's definition); p_vs_naive < alpha where the leaderboard has none.

Both p-values use the verdict's row of the dm table (reports.verdict.dm_versus_naive): the squared loss (else the
first loss present) on the pooled horizon when the table has one (h missing or 0), else the smallest h.
A model with no variant in the run gets no rows; a run without variants gets an empty table.
"""

from __future__ import annotations

import math

import pandas as pd

from backtest.significance import ALPHA, Loss, dm_table
from common.errors import ConfigError
from common.schema import (
    BASE_MODEL,
    BEATS_NAIVE_DM,
    DIAGNOSIS_COLUMNS,
    KIND,
    LOSS,
    MASE,
    MASE_CHANGE,
    MODEL,
    N_FAILURES,
    N_OBS,
    NAIVE,
    P_LESS,
    P_VS_NAIVE,
    P_VS_PLAIN,
    REFERENCE,
    H,
)
from models.variants import KINDS, Variant, parse_variant

PREFERRED_LOSS: Loss = "squared"  # the verdict's (reports.verdict.PREFERRED_LOSS)


def diagnosis_table(
    forecasts: pd.DataFrame,
    leaderboard: pd.DataFrame,
    dm: pd.DataFrame | None,
    *,
    failures: pd.DataFrame | None = None,
    reference: str = NAIVE,
    step: int = 1,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """DIAGNOSIS_COLUMNS, one row per variant present of every base model that has a non-plain variant.

    Args:
        dm: the run's dm table against `reference` (backtest.evaluate); None when the reference did not run.
        failures: the run's failures, so a variant that failed on every fold still gets its (empty) row.
        step: the fold plan's step between origins (the DM tests' overlap correction).
    """
    variants = _variants(forecasts, failures)
    if not variants:
        return empty_diagnosis()
    board = _board(leaderboard)
    failed = pd.Series(dtype=int) if failures is None else failures[MODEL].astype(str).value_counts()
    forecast_models = set(forecasts[MODEL].astype(str))
    rows = []
    for base in _base_order(variants, board):
        present = sorted(variants[base], key=lambda v: KINDS.index(v.kind))
        plain = base if base in forecast_models else None
        plain_mase = _float(board.get(MASE, {}).get(base)) if plain else math.nan
        for variant in present:
            name = variant.name
            mase = _float(board.get(MASE, {}).get(name))
            p_plain, n_plain = math.nan, 0
            if not variant.is_plain and plain and name in forecast_models:
                p_plain, n_plain = _p_versus(forecasts, name, plain, step=step, alpha=alpha)
            p_naive = _selected(dm, name, reference)[0] if name != reference else math.nan
            flag = board.get(BEATS_NAIVE_DM, {}).get(name)
            beats = bool(flag) if flag is not None and not pd.isna(flag) else bool(p_naive < alpha)
            rows.append(
                {
                    BASE_MODEL: base,
                    KIND: variant.kind,
                    MODEL: name,
                    MASE: mase,
                    MASE_CHANGE: mase / plain_mase - 1 if plain_mase > 0 and not variant.is_plain else math.nan,
                    P_VS_PLAIN: p_plain,
                    N_OBS: n_plain,
                    P_VS_NAIVE: p_naive,
                    BEATS_NAIVE_DM: beats if name != reference and not math.isnan(mase) else False,
                    N_FAILURES: int(failed.get(name, 0)),
                }
            )
    return pd.DataFrame(rows, columns=list(DIAGNOSIS_COLUMNS)).astype(_DTYPES)


_DTYPES = {BASE_MODEL: object, KIND: object, MODEL: object, N_OBS: int, BEATS_NAIVE_DM: bool, N_FAILURES: int}


def empty_diagnosis() -> pd.DataFrame:
    """The diagnosis of a run without variants: no rows, the table's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, float)) for c in DIAGNOSIS_COLUMNS})


def _variants(forecasts: pd.DataFrame, failures: pd.DataFrame | None) -> dict[str, list[Variant]]:
    """Base model -> its variants in the run, for the bases with at least one non-plain variant."""
    names = list(pd.unique(forecasts[MODEL].astype(str)))
    if failures is not None and len(failures):
        names += [m for m in pd.unique(failures[MODEL].astype(str)) if m not in names]
    by_base: dict[str, list[Variant]] = {}
    for name in names:
        try:
            variant = parse_variant(name)
        except ConfigError:  # a model named with a '+' that is no variant suffix: not ours to diagnose
            continue
        if variant.name == name:  # only the one spelling pairs with the plain model's rows
            by_base.setdefault(variant.base, []).append(variant)
    return {base: vs for base, vs in by_base.items() if any(not v.is_plain for v in vs)}


def _board(leaderboard: pd.DataFrame) -> dict[str, dict[str, object]]:
    """column -> {model: value} of the leaderboard (empty when it has no rows)."""
    if leaderboard is None or leaderboard.empty or MODEL not in leaderboard.columns:
        return {}
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).drop_duplicates(MODEL).set_index(MODEL)
    return {c: lb[c].to_dict() for c in (MASE, BEATS_NAIVE_DM) if c in lb.columns}


def _base_order(variants: dict[str, list[Variant]], board: dict[str, dict[str, object]]) -> list[str]:
    """Bases in the leaderboard order of their best variant (the leaderboard is best first), then the rest."""
    ranked = list(board.get(MASE, {}))
    position: dict[str, int] = {}
    for i, name in enumerate(ranked):
        try:
            position.setdefault(parse_variant(name).base, i)
        except ConfigError:
            continue
    return sorted(variants, key=lambda b: (position.get(b, len(ranked)), b))


def _p_versus(forecasts: pd.DataFrame, model: str, plain: str, *, step: int, alpha: float) -> tuple[float, int]:
    """One-sided DM p of `model` better than `plain` and the folds tested, on the rows both forecast."""
    pair = forecasts[forecasts[MODEL].astype(str).isin([model, plain])]
    table = dm_table(pair, plain, losses=(PREFERRED_LOSS,), step=step, alpha=alpha)
    return _selected(table, model, plain)


def _selected(dm: pd.DataFrame | None, model: str, reference: str) -> tuple[float, int]:
    """(p_less, n) of the dm row the verdict reads for `model` vs `reference`; NaN when there is none."""
    if dm is None or dm.empty or not {MODEL, REFERENCE, P_LESS}.issubset(dm.columns):
        return math.nan, 0
    rows = dm[dm[REFERENCE].astype(str) == reference]
    if LOSS in rows.columns and len(rows):
        losses = rows[LOSS].astype(str)
        rows = rows[losses == (PREFERRED_LOSS if (losses == PREFERRED_LOSS).any() else losses.iloc[0])]
    rows = rows[rows[MODEL].astype(str) == model]
    if rows.empty:
        return math.nan, 0
    row = rows.iloc[0]
    if H in rows.columns:
        h = pd.to_numeric(rows[H], errors="coerce")
        pooled = rows[h.isna() | (h == 0)]
        row = pooled.iloc[0] if len(pooled) else rows.loc[h.idxmin()]
    n = row.get(N_OBS)
    return _float(row[P_LESS]), int(n) if n is not None and not pd.isna(n) else 0


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
