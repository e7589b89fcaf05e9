"""Multiple-testing honest comparisons of all models at once: Hansen's Model Confidence Set and SPA test.

Per-model Diebold-Mariano tests against naive (backtest.significance) ask one question per model; with twelve
models one of them passes at 5% by luck alone about half the time. These two tests ask the question once:

- the Model Confidence Set (Hansen, Lunde & Nason 2011, `arch.bootstrap.MCS`, method "R"): the models whose
  expected loss is not significantly worse than the best's; a model is in the set at size α iff its MCS p-value
  exceeds α. A wide set is an honest "the folds cannot tell these models apart".
- the test of Superior Predictive Ability (Hansen 2005, `arch.bootstrap.SPA`): H0 "no model beats the benchmark"
  (naive) over all the models tried; the consistent p-value is the one to read. arch 8 forms the statistic from the
  mean loss differentials as they are (studentisation only enters the consistent p-value's recentring rule).

Both run a stationary bootstrap over the loss matrix: one row per fold (time order), one column per model, each
value the fold's mean scaled absolute error (the MASE row metric) over the (series, h) targets EVERY model forecast,
so a model that failed on some targets is compared on the same targets as the rest and cannot gain from its gaps.
Series are averaged within a fold before testing, as `significance.dm_table` does, so cross-series correlation
is not mistaken for independent evidence.

Degenerate inputs never reach arch: fewer than 2 models or fewer than MIN_FOLDS folds give a "not tested" result
(NaN p-values, every model kept in the set). Models with identical loss columns are one model to the MCS (arch
divides by their zero differential variance and fails): one representative is tested and the twins share its
p-value. Alternatives identical to the benchmark, or worse by the same amount in every fold, cannot beat it and
are left out of the SPA's bootstrap (arch's strict `>` scores a zero-variance differential p = 0, "significant");
they still count in `n_models`, the models tried, and with none left every p-value is 1.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.metrics import row_metrics
from common.errors import ConfigError
from common.schema import (
    BENCHMARK,
    BEST_MODEL,
    BLOCK_SIZE,
    FOLD,
    ID,
    IN_MCS,
    MAE,
    MAPE,
    MASE,
    MCS_COLUMNS,
    MCS_P_VALUE,
    MCS_SIZE,
    MODEL,
    MSE,
    MSSE,
    N_MODELS,
    N_OBS,
    NAIVE,
    REPS,
    SMAPE,
    SPA_COLUMNS,
    SPA_P_CONSISTENT,
    SPA_P_LOWER,
    SPA_P_UPPER,
    WINKLER_80,
    WINKLER_95,
    H,
)

log = logging.getLogger(__name__)

# Row metrics that are losses (lower is better, one value per target), usable as the loss of the matrix.
LOSS_METRICS = (MASE, MAE, MSE, MSSE, MAPE, SMAPE, WINKLER_80, WINKLER_95)
DEFAULT_MCS_SIZE = 0.10  # Hansen, Lunde & Nason's own choice: the set is "the 10% model confidence set"
# 2,000 replications: an MCS and an SPA on 20 folds × 12 models take about 0.1 s together (measured; arch's first
# import costs ~2 s once per process), and the Monte Carlo standard error of a p-value near 0.05 is 0.005.
DEFAULT_REPS = 2000
DEFAULT_SEED = 20240518
# Below this many folds a block bootstrap has almost nothing to resample (with blocks of 3, one or two blocks).
MIN_FOLDS = 5
DROPPED_MODELS = "dropped_models"  # loss_matrix(...).attrs key: models left out for want of common targets


@dataclass(frozen=True)
class SpaResult:
    """Hansen's SPA test of "no model beats `benchmark`": p-values, models tried, the lowest-loss alternative.

    NaN p-values mean not tested (see `tested`); `n_models` counts the alternatives, not the benchmark.
    """

    benchmark: str
    n_models: int
    n_folds: int
    best_model: str | None
    p_lower: float
    p_consistent: float
    p_upper: float
    block_size: int
    reps: int

    @property
    def tested(self) -> bool:
        return bool(np.isfinite(self.p_consistent))


def block_length(n_folds: int, *, horizon: int = 1, step: int = 1) -> int:
    """Mean block length of the stationary bootstrap over `n_folds` fold losses of `horizon`-step forecasts.

    A fold's loss averages steps 1..horizon, and step-h losses of origins `step` sessions apart are
    MA(ceil(h/step) - 1) over the fold index, so the longest step makes neighbouring folds dependent up to
    ceil(horizon/step) - 1 lags: a block must span ceil(horizon/step) folds to keep that dependence together.
    With no overlap the differentials can still be serially correlated (regimes), and n^(1/3) is the
    rate-optimal order of a block length for the variance of a mean (Hall, Horowitz & Jing 1995); 20 folds give 3.
    Data-driven choices (Politis & White) are too noisy on ~20 points to be worth their variance, hence the rule
    max(ceil(horizon/step), round(n^(1/3))), capped at n // 2 so a resample still mixes at least two blocks.
    """
    if horizon < 1 or step < 1:
        raise ConfigError(f"horizon and step must be positive integers, got horizon={horizon!r}, step={step!r}")
    overlap = math.ceil(horizon / step)
    rate = round(max(n_folds, 0) ** (1 / 3))
    return int(max(1, min(max(overlap, rate), n_folds // 2)))


def loss_matrix(forecasts: pd.DataFrame, fold_info: pd.DataFrame, *, loss: str = MASE) -> pd.DataFrame:
    """Fold × model matrix of the fold's mean `loss` (a row metric, MASE by default) over the common targets.

    Only (series, fold, h) targets that every model forecast with a defined loss count (a target whose MASE scale
    is undefined counts for nobody). A model with no defined loss at all, or one whose targets share nothing with
    the others (dropped one at a time, fewest targets first, until the rest share some) is left out: it is named
    in a warning and in `attrs["dropped_models"]`, and the tests run without it. Index: fold, ascending (time
    order); columns: model names, sorted.
    """
    if loss not in LOSS_METRICS:
        raise ConfigError(
            f"loss must be one of {list(LOSS_METRICS)} (a row metric where lower is better), got {loss!r}"
        )
    models = sorted({str(m) for m in forecasts[MODEL].unique()})
    rows = row_metrics(forecasts, fold_info)[[ID, MODEL, FOLD, H, loss]].dropna(subset=[loss])
    rows = rows.assign(**{MODEL: rows[MODEL].astype(str)})
    wide = rows.pivot_table(index=[ID, FOLD, H], columns=MODEL, values=loss, aggfunc="mean")
    wide = wide.reindex(columns=models)
    counts = wide.notna().sum()
    dropped = [m for m in models if counts[m] == 0]
    kept = [m for m in models if counts[m] > 0]
    common = wide[kept].notna().all(axis=1)
    while len(kept) > 1 and not common.any():
        fewest = min(kept, key=lambda m: (int(counts[m]), m))
        kept.remove(fewest)
        dropped.append(fewest)
        common = wide[kept].notna().all(axis=1)
    if dropped:
        log.warning(
            "multiple testing leaves out %s: no forecast targets in common with the other models; "
            "see the failures table",
            ", ".join(sorted(dropped)),
        )
    matrix = wide.loc[common, kept].groupby(level=FOLD).mean().sort_index()
    matrix.columns.name = MODEL
    matrix.attrs[DROPPED_MODELS] = sorted(dropped)
    return matrix


def model_confidence_set(
    losses: pd.DataFrame,
    *,
    size: float = DEFAULT_MCS_SIZE,
    reps: int = DEFAULT_REPS,
    block_size: int | None = None,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Hansen-Lunde-Nason Model Confidence Set (method R, stationary bootstrap) of the fold × model loss matrix.

    Returns MCS_COLUMNS, one row per model in the matrix's column order: `in_mcs` iff its p-value > `size`.
    Folds with a missing loss are dropped; `block_size` None uses `block_length(n_folds)` (horizon and step 1).
    Fewer than 2 models or MIN_FOLDS folds: not tested, every model in the set with a NaN p-value.
    """
    _check_bootstrap(reps=reps, block_size=block_size)
    if not 0.0 < size < 1.0:
        raise ConfigError(f"size must be in (0, 1), got {size!r}; 0.10 gives the usual 10% model confidence set")
    clean = _clean(losses)
    models = [str(c) for c in clean.columns]
    p_values = pd.Series(np.nan, index=models, dtype=float)
    if len(models) >= 2 and len(clean) >= MIN_FOLDS:
        twins = _identical_groups(clean)
        if len(twins) == 1:  # every column the same losses: nothing to tell apart
            p_values[:] = 1.0
        else:
            tested = _mcs_p_values(clean[list(twins)], size=size, reps=reps, block=_block(block_size, clean), seed=seed)
            if tested is not None:
                for representative, members in twins.items():
                    p_values[members] = tested[representative]
    in_set = p_values.isna() | (p_values > size)  # arch's own rule: included iff p-value > size
    table = pd.DataFrame({MODEL: models, IN_MCS: in_set.to_numpy(bool), MCS_P_VALUE: p_values.to_numpy(float)})
    return table.assign(**{MCS_SIZE: float(size)})[list(MCS_COLUMNS)]


def spa_test(
    losses: pd.DataFrame,
    *,
    benchmark: str = NAIVE,
    reps: int = DEFAULT_REPS,
    block_size: int | None = None,
    seed: int = DEFAULT_SEED,
) -> SpaResult:
    """Hansen's SPA test of the fold × model loss matrix: does any model beat `benchmark` (naive)?

    All other columns are the alternatives tried. Folds with a missing loss are dropped; `block_size` None uses
    `block_length(n_folds)`. Not tested (NaN p-values) without the benchmark column, without alternatives or
    with fewer than MIN_FOLDS folds.
    """
    _check_bootstrap(reps=reps, block_size=block_size)
    clean = _clean(losses)
    alternatives = [str(c) for c in clean.columns if str(c) != benchmark]
    block = _block(block_size, clean)
    nan = float("nan")
    best = str(clean[alternatives].mean().idxmin()) if alternatives and len(clean) else None
    result = SpaResult(benchmark, len(alternatives), len(clean), best, nan, nan, nan, block, reps)
    if benchmark not in clean.columns:
        log.warning("SPA test not run: the benchmark %r is not among the models %s", benchmark, alternatives)
        return result
    if not alternatives or len(clean) < MIN_FOLDS:
        return result
    base = clean[benchmark].to_numpy(float)
    active = [m for m in alternatives if not _never_better(clean[m].to_numpy(float), base)]
    if not active:  # every alternative is the benchmark, or worse than it by the same amount in every fold
        return SpaResult(benchmark, len(alternatives), len(clean), best, 1.0, 1.0, 1.0, block, reps)
    from arch.bootstrap import SPA  # arch pulls in statsmodels: import it when a test runs, not with the package

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            spa = SPA(clean[benchmark], clean[active], block_size=block, reps=reps, bootstrap="stationary", seed=seed)
            spa.compute()
            p = spa.pvalues
    except (ValueError, IndexError, FloatingPointError) as exc:
        log.warning("SPA test not run: arch failed on this loss matrix (%s)", exc)
        return result
    return SpaResult(
        benchmark,
        len(alternatives),
        len(clean),
        best,
        float(p["lower"]),
        float(p["consistent"]),
        float(p["upper"]),
        block,
        reps,
    )


def spa_table(results: SpaResult | Iterable[SpaResult]) -> pd.DataFrame:
    """SPA results as a table for storage: SPA_COLUMNS, one row per result."""
    items = [results] if isinstance(results, SpaResult) else list(results)
    rows = [
        {
            BENCHMARK: r.benchmark,
            N_MODELS: r.n_models,
            N_OBS: r.n_folds,
            BEST_MODEL: r.best_model,
            SPA_P_LOWER: r.p_lower,
            SPA_P_CONSISTENT: r.p_consistent,
            SPA_P_UPPER: r.p_upper,
            BLOCK_SIZE: r.block_size,
            REPS: r.reps,
        }
        for r in items
    ]
    return pd.DataFrame(rows, columns=list(SPA_COLUMNS))


def multiple_testing_tables(
    forecasts: pd.DataFrame,
    fold_info: pd.DataFrame,
    *,
    step: int = 1,
    benchmark: str = NAIVE,
    size: float = DEFAULT_MCS_SIZE,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(MCS table, SPA table) of a backtest: the MASE loss matrix, the block length of its horizon and `step`."""
    losses = loss_matrix(forecasts, fold_info)
    horizon = int(forecasts[H].max()) if len(forecasts) else 1
    block = block_length(len(losses), horizon=horizon, step=step)
    mcs = model_confidence_set(losses, size=size, reps=reps, block_size=block, seed=seed)
    spa = spa_test(losses, benchmark=benchmark, reps=reps, block_size=block, seed=seed)
    return mcs, spa_table(spa)


# ---- helpers ------------------------------------------------------------------------------------------------
def _check_bootstrap(*, reps: int, block_size: int | None) -> None:
    if not isinstance(reps, int | np.integer) or reps < 1:
        raise ConfigError(f"reps must be a positive integer, got {reps!r}; {DEFAULT_REPS} is the default")
    if block_size is not None and (not isinstance(block_size, int | np.integer) or block_size < 1):
        raise ConfigError(f"block_size must be a positive integer or None (the block_length rule), got {block_size!r}")


def _clean(losses: pd.DataFrame) -> pd.DataFrame:
    """The matrix with string column names and only the folds where every model has a finite loss."""
    frame = losses.rename(columns=str).astype(float)
    return frame[np.isfinite(frame.to_numpy()).all(axis=1)]


def _block(block_size: int | None, clean: pd.DataFrame) -> int:
    return int(block_size) if block_size is not None else block_length(len(clean))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical loss vectors, up to float noise (two models giving the same forecasts)."""
    scale = max(1.0, float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    return bool(np.max(np.abs(a - b)) <= 1e-12 * scale)


def _never_better(model: np.ndarray, benchmark: np.ndarray) -> bool:
    """The model's loss exceeds or equals the benchmark's by one constant in every fold (identical models included).

    Such a differential has zero variance, and arch's strict `>` then scores it p = 0 ("beats the benchmark").
    """
    d = benchmark - model
    return _same(d, np.full_like(d, d[0])) and d[0] <= 0


def _identical_groups(clean: pd.DataFrame) -> dict[str, list[str]]:
    """Columns grouped by identical losses: {first of the group: every member}, in column order."""
    groups: dict[str, list[str]] = {}
    for column in clean.columns:
        values = clean[column].to_numpy(float)
        twin = next((rep for rep in groups if _same(values, clean[rep].to_numpy(float))), None)
        groups.setdefault(twin if twin is not None else column, []).append(column)
    return groups


def _mcs_p_values(clean: pd.DataFrame, *, size: float, reps: int, block: int, seed: int) -> pd.Series | None:
    """arch's MCS p-values per column, or None (logged) where arch cannot run on this matrix."""
    from arch.bootstrap import MCS  # arch pulls in statsmodels: import it when a test runs, not with the package

    try:
        # Pairs with a constant non-zero differential have zero bootstrap variance; arch divides by it (inf is
        # then the right statistic: one model is worse in every fold). Ties of such infinities make arch fail.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            mcs = MCS(clean, size=size, reps=reps, block_size=block, method="R", bootstrap="stationary", seed=seed)
            mcs.compute()
            p_values = mcs.pvalues["Pvalue"]
    except (ValueError, IndexError, FloatingPointError) as exc:
        log.warning("model confidence set not formed: arch failed on this loss matrix (%s)", exc)
        return None
    return pd.Series(p_values.to_numpy(float), index=[str(m) for m in p_values.index])
