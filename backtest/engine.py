"""Price backtest: the price task for the block loop (backtest.blocks), its tidy tables, and the local runner.

The refit policy, the batched predict per block, the replay of a failed block, warm starts and timings are the
block loop's (backtest.blocks). The price task plugs in: a refit fits the model on the fold's training window
(`models.base.fit_model`, for `gap + horizon` steps), a block's origins are forecast in ONE
`Forecaster.forecast_origins` call, each fold keeps the last `horizon` steps of its origin's forecast. With a
sliding window and refit_every != 1 the window only slides at refits; in between, the model is conditioned on the
new sessions as they arrive.

Leakage guard: a fold's training frame is the rows with ds in [train_start, train_end] only, and the engine
raises LeakageError (never recorded as a model failure) if any training row lies after the cutoff.

Dates: a model dates its forecasts from the exchange calendar, the truth comes from the data. Rows are
aligned by step `h`; the output `ds` is the data's test session and disagreements are counted and logged.

Timings only cover folds that produced forecasts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from backtest.blocks import BlockRun, FoldDone, LeakageError, failure_row, model_specs
from backtest.conformal import DEFAULT_WINDOW, IntervalSource, window_for
from backtest.folds import Fold, FoldPlan, panel_calibration_folds, panel_folds
from backtest.results import BacktestResult, UnitResult, concat, normalize
from common.errors import ConfigError, DataError, ModelFitError
from common.schema import (
    BACKTEST_COLUMNS,
    CUTOFF,
    DS,
    FAILURE_COLUMNS,
    FOLD,
    FOLD_INFO_COLUMNS,
    ID,
    INTERVAL_COLUMNS,
    LAST_Y,
    MODEL,
    PARAMS,
    SCALE_MAE,
    SCALE_MSE,
    TIMING_COLUMNS,
    TRAIN_END,
    TRAIN_START,
    TRIALS,
    TUNING_COLUMNS,
    VALIDATION_MAE,
    YHAT,
    H,
    Y,
    interval_columns,
)
from models import REGISTRY, make_model
from models.base import OriginForecasts, fit_model
from models.variants import parse_variant

log = logging.getLogger(__name__)

ModelFactory = Callable[..., Any]  # (name, **params) -> unfitted Forecaster; make_model by default
Progress = Callable[[int, int, str, str], None]  # (units done, units total, unique_id, model)


@dataclass(frozen=True)
class FoldForecast:
    """One fold's scored forecast as arrays (its `horizon` test sessions) and its date disagreements.

    Arrays, not a frame: a unit's forecast table is built once from all of its folds (`_forecast_table`).
    """

    fold: Fold
    ds: np.ndarray  # (horizon,) the data's test sessions
    y: np.ndarray  # (horizon,) the truth
    yhat: np.ndarray  # (horizon,)
    bands: dict[str, np.ndarray]  # interval column -> (horizon,) values; absent columns are NaN in the table
    mismatches: int
    tuned: dict[str, Any] | None = None  # a `+tuned` model's choice at this fold's refit (models.tuning.Tuned)


@dataclass(frozen=True, eq=False)
class PriceTask:
    """The price task of the block loop over one series (`frame`, prepared with prepare_series)."""

    frame: pd.DataFrame
    model: str
    params: Mapping[str, Any]
    factory: ModelFactory = make_model
    calendar: str | None = None  # the series' trading calendar (None: the ticker's spelling decides)

    def build(self) -> Any:
        return self.factory(self.model, **self.params)

    def fit(self, model: Any, fold: Fold) -> Any:
        """Fit on the fold's training rows for `gap + horizon` steps (models that need the horizon in fit)."""
        fit_model(model, training_frame(self.frame, fold), fold_steps(fold), calendar=self.calendar)
        return model

    def unscorable(self, fold: Fold) -> Exception | None:
        return None  # check_folds vetted every fold before the loop

    def predict(self, fitted: Any, folds: Sequence[Fold]) -> OriginForecasts:
        """predict_origins for every cutoff of `folds`, conditioned on rows from the block's training start."""
        return fitted.predict_origins(_history(self.frame, folds), [f.cutoff for f in folds], fold_steps(folds[0]))

    def score(self, fitted: Any, fold: Fold, batch: OriginForecasts) -> FoldForecast:
        scored = score_fold(self.frame, fold, batch)
        best = getattr(fitted, "best_params_", None)  # a `+tuned` model (models.tuning.Tuned): what it chose
        if best is None:
            return scored
        choice = {PARAMS: best, VALIDATION_MAE: float(fitted.validation_mae_), TRIALS: int(fitted.trials_)}
        return dataclasses.replace(scored, tuned=choice)


def price_result(frame: pd.DataFrame, folds: Sequence[Fold], run: BlockRun[FoldForecast], *, model: str) -> UnitResult:
    """The tidy tables of one (series, model) unit from its block run."""
    uid = str(frame[ID].iloc[0])
    mismatches = sum(d.output.mismatches for d in run.done)
    if mismatches:
        log.info("%s on %s: %d model forecast dates differ from the data's test sessions", model, uid, mismatches)
    if run.failed:
        log.warning("%s on %s: %d of %d folds failed", model, uid, len(run.failed), len(folds))
    failures = [failure_row(uid, model, fold, exc) for fold, exc in run.failed]
    return UnitResult(
        forecasts=_forecast_table(run.done, uid, model),
        timings=_timing_table(run.done, uid, model),
        failures=normalize(pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)), FAILURE_COLUMNS),
        fold_info=_fold_info(frame, folds),
        date_mismatches=int(mismatches),
        tuning=_tuning_table(run.done, uid, model),
    )


def calibration_table(run: BlockRun[FoldForecast], *, uid: str, model: str) -> pd.DataFrame:
    """The forecast rows of a unit's calibration origins (backtest.folds.calibration_folds); a failed one is
    logged and simply gives the conformal intervals fewer scores (it is not a failure of the backtest)."""
    if run.failed:
        log.info("%s on %s: %d calibration origins failed; conformal bands use the rest", model, uid, len(run.failed))
    return _forecast_table(run.done, uid, model)


def run_backtest(
    panel: pd.DataFrame,
    *,
    models: Mapping[str, Mapping[str, Any]] | Sequence[str],
    plan: FoldPlan,
    refit_every: int | None = None,
    progress: Progress | None = None,
    factory: ModelFactory = make_model,
    intervals: IntervalSource = "native",
    calibration_windows: int = DEFAULT_WINDOW,
) -> BacktestResult:
    """Backtest every model on every series of a long panel, locally: plan_price_units + run_unit for each unit
    (a global model's units together: backtest.panel.run_panel_unit).

    The same units the Prefect flow fans out, in the same deterministic order. `models` maps registry names to
    constructor parameters (or lists names for defaults). `progress(done, total, unique_id, model)` is called
    after each unit. `intervals` and `calibration_windows`: which models get split-conformal bands and how many
    calibration origins they learn from (backtest.conformal, backtest.units.plan_price_units).
    """
    from backtest.panel import PanelUnit, global_meta, panel_units, run_panel_unit  # panel and units import us
    from backtest.units import (
        combine_units,
        combined_from,
        fitted_units,
        interval_meta,
        plan_price_units,
        run_unit,
    )

    specs = model_specs(models)
    _check_models(specs, factory)
    panel = prepare_panel(panel)
    folds = panel_folds(panel, plan)
    frames = {str(uid): g.reset_index(drop=True) for uid, g in panel.groupby(ID, sort=True)}
    units = plan_price_units(
        list(frames),
        models=specs,
        folds=folds,
        horizon=plan.horizon,
        refit_every=refit_every,
        reuse_members=factory is make_model,
        intervals=intervals,
        calibration=panel_calibration_folds(panel, folds, plan, windows=calibration_windows),
        conformal_window=window_for(calibration_windows),
    )
    fitted = fitted_units(units)
    started = time.perf_counter()
    done: dict[tuple[str, str], UnitResult] = {}
    for group in panel_units(fitted):  # a global model's units run as one (backtest.panel)
        if isinstance(group, PanelUnit):
            members = group.members
            ran = run_panel_unit(group, {uid: frames[uid] for uid in group.uids}, factory=factory)
        else:
            members, ran = (group,), [run_unit(group, frames[group.uid], factory=factory)]
        for unit, outcome in zip(members, ran, strict=True):
            done[(unit.uid, unit.model)] = outcome
            if progress:
                progress(len(done), len(fitted), unit.uid, unit.model)
    results = combine_units(units, fitted, [done[(unit.uid, unit.model)] for unit in fitted])
    meta = {
        "plan": plan.to_dict(),
        "plan_fingerprint": plan.fingerprint(),
        "refit_every": {unit.model: unit.refit_every for unit in units},
        "models": {name: dict(p) for name, p in specs.items()},
        **combined_from(units),
        **interval_meta(units, intervals=intervals, calibration_windows=calibration_windows),
        **global_meta(units),
        "n_series": len(frames),
        "n_units": len(units),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    result = concat(results, meta=meta)
    result.meta["n_failures"] = len(result.failures)
    log.info("backtest done: %s", result.summary())
    return result


def fold_info_table(series: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
    """Per fold: last training value and the in-sample one-step naive MAE/MSE of that fold's training window."""
    return _fold_info(prepare_series(series), folds)


def _fold_info(frame: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
    """fold_info_table of a frame prepare_series already prepared."""
    uid = str(frame[ID].iloc[0])
    ds = pd.DatetimeIndex(frame[DS])
    y = frame[Y].to_numpy(dtype=float)
    starts = ds.searchsorted(pd.DatetimeIndex([f.train_start for f in folds]), side="left")
    ends = ds.searchsorted(pd.DatetimeIndex([f.train_end for f in folds]), side="right")
    last, scale_mae, scale_mse = [], [], []
    for a, b in zip(starts, ends, strict=True):
        diffs = np.diff(y[a:b])
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing scale is inf: metrics make it NaN, counted
            scale_mae.append(np.mean(np.abs(diffs)) if diffs.size else np.nan)
            scale_mse.append(np.mean(diffs**2) if diffs.size else np.nan)
        last.append(y[b - 1] if b > a else np.nan)
    table = pd.DataFrame(
        {
            ID: pd.Series([uid] * len(folds), dtype=object),
            FOLD: [f.fold for f in folds],
            CUTOFF: [f.cutoff for f in folds],
            TRAIN_START: [f.train_start for f in folds],
            TRAIN_END: [f.train_end for f in folds],
            LAST_Y: last,
            SCALE_MAE: scale_mae,
            SCALE_MSE: scale_mse,
        },
        columns=list(FOLD_INFO_COLUMNS),
    )
    return normalize(table, FOLD_INFO_COLUMNS)


def training_frame(series: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    """Rows of `series` with ds in [train_start, train_end]; raises LeakageError if anything passes the cutoff."""
    ds = pd.DatetimeIndex(series[DS])
    train = series.loc[(ds >= fold.train_start) & (ds <= fold.train_end)]
    last = pd.Timestamp(train[DS].max()) if len(train) else None
    if fold.train_end != fold.cutoff or (last is not None and last > fold.cutoff) or fold.test_ds[0] <= fold.cutoff:
        raise LeakageError(
            f"fold {fold.fold}: training rows up to {last}, cutoff {fold.cutoff.date()}, first test session "
            f"{fold.test_ds[0].date()}; training must end at the cutoff, before every test session"
        )
    return train


# ---- one fold's forecast -------------------------------------------------------------------------------------
def fold_steps(fold: Fold) -> int:
    """What each origin forecasts: the horizon a model is fitted for (the gap is forecast, not scored)."""
    return fold.gap + len(fold.test_ds)


def _history(frame: pd.DataFrame, block: Sequence[Fold]) -> pd.DataFrame:
    """Rows from the block's training start up to its LAST cutoff: everything its origins may condition on."""
    ds = pd.DatetimeIndex(frame[DS])
    return frame.loc[(ds >= block[0].train_start) & (ds <= block[-1].cutoff)]


def score_fold(frame: pd.DataFrame, fold: Fold, batch: OriginForecasts) -> FoldForecast:
    """Keep the last `horizon` steps of the fold's origin, aligned by h to the data's test sessions."""
    uid = str(frame[ID].iloc[0])
    row = np.flatnonzero(batch.cutoffs == fold.cutoff)
    if row.size != 1:
        raise ModelFitError("?", uid, f"fold {fold.fold}: {row.size} forecasts from the origin {fold.cutoff.date()}")
    k, steps = int(row[0]), fold_steps(fold)
    if batch.mean.shape[1] != steps:
        raise ModelFitError("?", uid, f"fold {fold.fold}: expected h = 1..{steps} from the model")
    yhat = np.asarray(batch.mean[k, fold.gap :], dtype=float)
    if not np.all(np.isfinite(yhat)):  # a model overriding predict_origins skips forecast_block's check
        bad = int(np.sum(~np.isfinite(yhat)))
        raise ModelFitError("?", uid, f"fold {fold.fold}: {bad} of {len(yhat)} forecasts are not finite")
    test_ds = pd.DatetimeIndex(fold.test_ds).as_unit("ns").values
    pos = pd.DatetimeIndex(frame[DS]).searchsorted(test_ds)  # check_folds vetted: every test session is a row
    bands: dict[str, np.ndarray] = {}
    for level, (lo, hi) in (batch.intervals or {}).items():
        lo_col, hi_col = interval_columns(level)
        bands[lo_col], bands[hi_col] = lo[k, fold.gap :], hi[k, fold.gap :]
    mismatches = int(np.sum(batch.ds[k, fold.gap :].astype("datetime64[ns]") != test_ds))
    return FoldForecast(fold, test_ds, frame[Y].to_numpy(dtype=float)[pos], yhat, bands, mismatches)


# ---- tables -------------------------------------------------------------------------------------------------
def _forecast_table(done: list[FoldDone[FoldForecast]], uid: str, model: str) -> pd.DataFrame:
    """The unit's tidy forecast rows, built once from every fold's arrays (sorted by fold, then h)."""
    if not done:
        return normalize(pd.DataFrame(columns=list(BACKTEST_COLUMNS)), BACKTEST_COLUMNS)
    parts = sorted((d.output for d in done), key=lambda f: f.fold.fold)
    sizes = [len(f.yhat) for f in parts]
    n = sum(sizes)
    table = pd.DataFrame(
        {
            ID: pd.Series([uid] * n, dtype=object),
            MODEL: pd.Series([model] * n, dtype=object),
            FOLD: np.repeat([f.fold.fold for f in parts], sizes),
            CUTOFF: np.repeat(pd.DatetimeIndex([f.fold.cutoff for f in parts]).as_unit("ns").values, sizes),
            DS: np.concatenate([f.ds for f in parts]),
            H: np.concatenate([np.arange(1, size + 1) for size in sizes]),
            Y: np.concatenate([f.y for f in parts]),
            YHAT: np.concatenate([f.yhat for f in parts]),
        }
    )
    for col in INTERVAL_COLUMNS:
        table[col] = np.concatenate([f.bands.get(col, np.full(len(f.yhat), np.nan)) for f in parts])
    return normalize(table, BACKTEST_COLUMNS)


def _tuning_table(done: list[FoldDone[FoldForecast]], uid: str, model: str) -> pd.DataFrame:
    """What a `+tuned` unit chose per fold (TUNING_COLUMNS; params as sorted JSON); empty for other models."""
    rows = [
        (uid, model, d.fold.fold, json.dumps(t[PARAMS], sort_keys=True), t[VALIDATION_MAE], t[TRIALS])
        for d in done
        if (t := d.output.tuned) is not None
    ]
    return normalize(pd.DataFrame(rows, columns=list(TUNING_COLUMNS)), TUNING_COLUMNS)


def _timing_table(done: list[FoldDone[FoldForecast]], uid: str, model: str) -> pd.DataFrame:
    rows = [(uid, model, d.fold.fold, d.fit_seconds, d.predict_seconds, d.refit) for d in done]
    return normalize(pd.DataFrame(rows, columns=list(TIMING_COLUMNS)), TIMING_COLUMNS)


# ---- validation ----------------------------------------------------------------------------------------------
def _check_models(specs: dict[str, dict[str, Any]], factory: ModelFactory) -> None:
    """Fail before any work on unknown model names (make_model's error lists the registry and close matches)."""
    if factory is not make_model:
        return
    for name in specs:
        base = parse_variant(name).base  # a variant (lstm+cov) is checked by its registry model
        if base not in REGISTRY:
            make_model(base)  # raises ConfigError with suggestions


def prepare_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """A long unique_id, ds, y frame with string ids and datetime ds, sorted; missing columns or duplicate
    (unique_id, ds) rows raise DataError naming them."""
    missing = [c for c in (ID, DS, Y) if c not in panel.columns]
    if missing:
        raise DataError(f"panel lacks column(s) {missing}; expected a long frame unique_id, ds, y")
    panel = panel.copy()
    panel[ID] = panel[ID].astype(str)
    panel[DS] = pd.to_datetime(panel[DS])
    dupes = panel.duplicated([ID, DS])
    if dupes.any():
        first = panel.loc[dupes].iloc[0]
        raise DataError(
            f"{int(dupes.sum())} duplicate (unique_id, ds) rows, first {first[ID]} {first[DS].date()}; deduplicate"
        )
    return panel.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def prepare_series(series: pd.DataFrame) -> pd.DataFrame:
    """prepare_panel for a frame that must hold exactly one series (DataError otherwise)."""
    frame = prepare_panel(series)
    ids = frame[ID].unique()
    if len(ids) != 1:
        raise DataError(f"a backtest unit takes one series, got {len(ids)} ({list(ids)[:5]}); split the panel first")
    return frame


def check_folds(frame: pd.DataFrame, folds: Sequence[Fold], *, horizon: int, unique_id: str) -> None:
    """ConfigError/DataError before any fit when `folds` do not fit the horizon or this series' sessions."""
    if not folds:
        raise ConfigError(f"{unique_id}: no folds to run; build them with make_folds(ds, plan)")
    ds = pd.DatetimeIndex(frame[DS])
    for fold in folds:
        if len(fold.test_ds) != horizon:
            raise ConfigError(
                f"{unique_id}: fold {fold.fold} has {len(fold.test_ds)} test sessions but horizon={horizon}; "
                "build folds and run with the same plan"
            )
        absent = pd.DatetimeIndex(fold.test_ds).difference(ds)
        if len(absent):
            raise DataError(
                f"{unique_id}: fold {fold.fold} tests on sessions missing from the series, first {absent[0].date()}; "
                "folds must be cut from this series' own sessions"
            )
