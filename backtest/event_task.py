"""Event backtest: "will the close rise >= x% within h sessions?" classifiers on rolling-origin folds.

Design (the honest one, and why):
- Label: features.targets.event_target on the modelling price (y, the adjusted close by default: a raw close
  "falls" 50% at a 2:1 split): 1.0 if max(c[t+1..t+h]) >= c[t](1+x), else 0.0; NaN for the last h sessions.
- Features: features.build (returns, SMA 5/20/60/120, MACD, RSI, Bollinger, volatility, volume z-score,
  calendar), all causal. Price-level indicators are made scale-free before modelling (SMA/EMA/Bollinger bands
  as price ratios - 1, MACD lines over the price), so a model trained at $30 works at $300.
- Origins: every session is a potential origin t; the prediction at t uses features at t (known at the close
  of t) and a model whose parameters were fitted at the fold's cutoff.
- Folds: backtest.folds (FoldPlan, panel_folds), cut on each series' LABELLED sessions (the last h sessions,
  whose outcome is still unknown, are dropped first). `plan.horizon` is therefore the number of test ORIGINS
  per fold, not the event horizon: with `plan.horizon == plan.step` consecutive folds' origins tile the test
  span, every labelled session there is scored exactly once. Every model sees the same folds.
- Leakage guard: a training row t is usable only if its label is known at the cutoff c, i.e. t + h <= c. The
  last h training rows' labels read closes after the cutoff, so they are masked (NaN) before `fit` sees them,
  and fit receives the feature rows up to the cutoff only. Training rows come from [train_start, cutoff]; no
  shuffling or stratified splits across time. `LeakageError` (never recorded as a model failure) is raised if
  a fold would train on a label that reads past its cutoff.
- Decision threshold: chosen per fit on the TRAINING tail (the last `tail_fraction` of the fold's labelled
  training samples, in-sample predictions) by maximising F1 (backtest.event_metrics.choose_threshold). The
  Keras classifiers use the same tail (their validation_fraction, 0.2 by default) for early stopping.
- Refit policy `refit_every=k` as in backtest.engine: refit on the first fold of each block of k folds, then
  predict every origin of the block in ONE predict_proba call with parameters fixed (features up to each
  origin only). Default: each model class's `default_refit_every` (1 for base_rate and logistic, 10 for Keras).
- Failures: a model that fails on a fold is recorded (series, model, fold, error) and the run carries on; a
  failed fit makes the next fold refit.
- The base rate is always run (added when absent): it is the reference of every significance test.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.engine import LeakageError, prepare_panel
from backtest.engine import model_specs as parse_model_specs
from backtest.event_metrics import (
    ALPHA,
    BASE_RATE,
    EVENT_PREDICTION_COLUMNS,
    THRESHOLD,
    P,
    calibration_table,
    choose_threshold,
    curve_table,
    leaderboard,
    metrics_table,
    per_series_table,
    significance_table,
)
from backtest.folds import Fold, FoldPlan, panel_folds
from backtest.results import ERROR_TYPE, FAILURE_COLUMNS, MESSAGE
from common.errors import ConfigError, DataError, ModelFitError
from common.fileio import atomic_write_text, write_table
from common.schema import CUTOFF, DS, FOLD, ID, MODEL, TIMING_COLUMNS, VOLUME, H, Y
from features import indicators as ind
from features.build import FeatureConfig, build_features_for
from features.targets import event_target_panel, target_name
from models import EVENT_REGISTRY, event_model_class, make_event_model
from models.classifiers import training_rows

log = logging.getLogger(__name__)

LABEL = "label"  # the event outcome column of the event frame (renamed to y in the predictions)
DEFAULT_TAIL_FRACTION = 0.2
DEFAULT_REFIT_EVERY = 1
EventFactory = Callable[..., Any]  # (name, **params) -> unfitted EventClassifier; make_event_model by default
Progress = Callable[[int, int, str, str], None]


# ---- data: labels, scale-free causal features, folds ----------------------------------------------------
def default_feature_config(panel: pd.DataFrame, *, price_col: str = Y) -> FeatureConfig:
    """FeatureConfig() on `price_col`, without the volume z-score when the panel has no (finite) volume."""
    has_volume = VOLUME in panel.columns and panel[VOLUME].notna().any()
    config = FeatureConfig(price_col=price_col)
    return config if has_volume else replace(config, volume_window=None)


# Exact (or near-exact) linear combinations of other columns once scale-free: Bollinger mid = SMA 20, upper +
# lower = 2 mid, MACD histogram = MACD - signal, log return ~ return. They make the design singular (logistic
# regression then crawls: condition number ~1e16) and add nothing; %B and the volatility keep the band's news.
REDUNDANT_FEATURES = frozenset({ind.LOGRET_1, ind.BB_MID, ind.BB_UPPER, ind.BB_LOWER, ind.MACD_HIST})


def scale_free(features: pd.DataFrame, price: pd.Series, config: FeatureConfig) -> pd.DataFrame:
    """Indicator + calendar columns, price-level indicators divided by the price, redundant columns left out."""
    levels = {ind.SMA.format(window=w) for w in config.sma_windows} | {ind.EMA.format(span=s) for s in config.ema_spans}
    macd = {ind.MACD, ind.MACD_SIGNAL}
    keep = [c for c in config.feature_columns() if c not in REDUNDANT_FEATURES]
    out = features[keep].astype(float).copy()
    p = price.to_numpy(dtype=float)
    for col in out.columns:
        if col in levels:
            out[col] = out[col].to_numpy() / p - 1.0
        elif col in macd:
            out[col] = out[col].to_numpy() / p
    return out


def event_frame(
    panel: pd.DataFrame,
    *,
    threshold: float,
    horizon: int,
    config: FeatureConfig | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """unique_id, ds, y, label + scale-free feature columns, sorted by (unique_id, ds); and the feature names.

    The label of the last `horizon` sessions of each series is NaN (their outcome is not known yet).
    """
    panel = prepare_panel(panel)
    config = config or default_feature_config(panel)
    price = panel[config.price_col].astype(float)
    bad = ~(price > 0)
    if bad.any():
        first = panel.loc[bad].iloc[0]
        raise DataError(
            f"{first[ID]}: {int(bad.sum())} non-positive or missing {config.price_col} value(s), first "
            f"{pd.Timestamp(first[DS]).date()}; the event target and scale-free features need positive prices"
        )
    label = event_target_panel(panel, threshold=threshold, horizon=horizon, price_col=config.price_col)
    design = scale_free(build_features_for(panel, config), price, config)
    columns = list(design.columns)
    frame = pd.concat([panel[[ID, DS, Y]], pd.Series(label.to_numpy(), name=LABEL), design], axis=1)
    return frame, columns


def labelled_sessions(frame: pd.DataFrame, *, horizon: int) -> pd.DataFrame:
    """Each series without its last `horizon` sessions: the origins whose outcome is known."""
    from_end = frame.groupby(ID, sort=False).cumcount(ascending=False)
    return frame.loc[from_end >= horizon]


def event_folds(frame: pd.DataFrame, plan: FoldPlan, *, horizon: int) -> dict[str, list[Fold]]:
    """The fold plan on each series' labelled sessions (plan.horizon = test origins per fold)."""
    return panel_folds(labelled_sessions(frame, horizon=horizon), plan)


# ---- one (series, model) unit ----------------------------------------------------------------------------
@dataclass
class EventUnitResult:
    """What one (series, model) unit produces."""

    predictions: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame


def training_window(labels: np.ndarray, *, start: int, cutoff: int, horizon: int) -> tuple[slice, np.ndarray]:
    """Rows [start, cutoff] and their labels with every label unknown at the cutoff masked (t + h > cutoff)."""
    rows = slice(start, cutoff + 1)
    known = labels[rows].astype(float).copy()
    first_unknown = max(cutoff - horizon + 1, start) - start  # rows t > cutoff - h read closes after the cutoff
    known[first_unknown:] = np.nan
    latest = start + int(np.flatnonzero(np.isfinite(known)).max()) if np.isfinite(known).any() else None
    if latest is not None and latest + horizon > cutoff:
        raise LeakageError(f"training label at row {latest} reads row {latest + horizon} > cutoff row {cutoff}")
    return rows, known


def fit_event_model(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    model: str,
    params: Mapping[str, Any],
    start: int,
    cutoff: int,
    horizon: int,
    tail_fraction: float,
    factory: EventFactory = make_event_model,
    previous: Any = None,
) -> tuple[Any, float]:
    """The event task's one fit: rows [start, cutoff] with every label unknown at the cutoff masked, and the
    decision threshold on the training tail. The backtest's refits and the live step (backtest.event_live) call
    it; a warm-start-capable `previous` instance (Keras) is refitted in place, the rest start fresh."""
    rows, known = training_window(labels, start=start, cutoff=cutoff, horizon=horizon)
    previous = previous if previous is not None and getattr(previous, "warm_start", False) else None
    instance = (previous or factory(model, **params)).fit(X[rows], known)
    return instance, _tail_threshold(instance, X[rows], known, tail_fraction)


def event_unit(
    series: pd.DataFrame,
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    folds: Sequence[Fold],
    horizon: int,
    columns: Sequence[str],
    refit_every: int | None = None,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
) -> EventUnitResult:
    """Backtest one event model on one series (an event_frame slice) over `folds`: the unit flows map over."""
    frame = series.sort_values(DS, kind="stable").reset_index(drop=True)
    uid = str(frame[ID].iloc[0])
    if frame[ID].astype(str).nunique() != 1:
        raise DataError(f"an event unit takes one series, got {sorted(frame[ID].astype(str).unique())[:5]}")
    refit_every = resolve_refit_every(model, refit_every)
    params = with_event_horizon(model, dict(params or {}), horizon, factory)
    ds = pd.DatetimeIndex(frame[DS])
    X = frame[list(columns)].to_numpy(dtype=float)
    labels = frame[LABEL].to_numpy(dtype=float)
    preds: list[pd.DataFrame] = []
    timings: list[tuple] = []
    failures: list[dict[str, Any]] = []
    instance: Any = None
    i = 0
    while i < len(folds):
        size = len(folds) - i if refit_every == 0 else refit_every
        block = list(folds[i : i + size])
        start, cutoff = _position(ds, block[0].train_start, uid), _position(ds, block[0].cutoff, uid)
        _check_fold(block[0], ds)
        try:
            began = time.perf_counter()
            instance, threshold = fit_event_model(
                X,
                labels,
                model=model,
                params=params,
                start=start,
                cutoff=cutoff,
                horizon=horizon,
                tail_fraction=tail_fraction,
                factory=factory,
                previous=instance,
            )
            fit_s = time.perf_counter() - began
        except Exception as exc:  # models raise anything; recorded as a failure of this fold
            failures.append(_failure_row(uid, model, block[0], exc))
            instance, i = None, i + 1  # the next fold refits from scratch
            continue
        scored, bad = [], []
        for fold in block:
            origins = _origins(ds, fold, uid)
            problem = _origin_problem(uid, fold, origins, X, labels, columns, ds)
            if problem is not None:
                bad.append((fold, problem))
            else:
                scored.append((fold, origins))
        failures += [_failure_row(uid, model, fold, exc) for fold, exc in bad]
        if scored:
            all_rows = np.concatenate([o for _, o in scored])
            try:
                began = time.perf_counter()
                # ONE call for every origin of the block; features up to the block's last origin, from train start.
                p = instance.predict_proba(X[start : all_rows.max() + 1], all_rows - start)
                pred_s = (time.perf_counter() - began) / len(scored)
            except Exception as exc:
                failures += [_failure_row(uid, model, fold, exc) for fold, _ in scored]
                instance, i = None, i + len(block)
                continue
            offset = 0
            for fold, origins in scored:
                chunk = p[offset : offset + origins.size]
                offset += origins.size
                preds.append(
                    _prediction_rows(uid, model, fold, ds[origins], labels[origins], chunk, threshold, horizon)
                )
                timings.append((uid, model, fold.fold, fit_s if fold is block[0] else 0.0, pred_s, fold is block[0]))
        i += len(block)
    if failures:
        log.warning("%s on %s: %d of %d folds failed", model, uid, len(failures), len(folds))
    return EventUnitResult(
        predictions=_predictions_table(preds),
        timings=pd.DataFrame(timings, columns=list(TIMING_COLUMNS)),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
    )


def with_event_horizon(model: str, params: dict[str, Any], horizon: int, factory: EventFactory) -> dict[str, Any]:
    """Models tagged `uses_horizon` (they purge label overlap before their validation tail) get the event h."""
    if factory is make_event_model and model in EVENT_REGISTRY and "horizon" not in params:
        if getattr(event_model_class(model), "uses_horizon", False):
            params["horizon"] = horizon
    return params


def _tail_threshold(instance: Any, X: np.ndarray, known: np.ndarray, tail_fraction: float) -> float:
    rows = training_rows(X, known)
    tail = rows[rows.size - max(1, math.ceil(tail_fraction * rows.size)) :]
    return choose_threshold(known[tail], instance.predict_proba(X, tail))


def _origin_problem(
    uid: str,
    fold: Fold,
    origins: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    columns: Sequence[str],
    ds: pd.DatetimeIndex,
) -> DataError | None:
    """Why a fold's origins cannot be scored (no known outcome, NaN features), or None."""
    if not np.all(np.isfinite(labels[origins])):
        first = ds[origins[~np.isfinite(labels[origins])][0]].date()
        return DataError(f"{uid}: fold {fold.fold} has test origins without a known outcome, first {first}")
    finite = np.isfinite(X[origins])
    if not finite.all():
        col = int(np.flatnonzero(~finite.all(axis=0))[0])
        row = origins[~finite[:, col]]
        return DataError(
            f"{uid}: column {columns[col]} is NaN at {row.size} test origin(s) of fold {fold.fold}, first "
            f"{ds[row[0]].date()} (indicator warm-up); start the folds later (min_train_size) or use shorter windows"
        )
    return None


def _position(ds: pd.DatetimeIndex, when: pd.Timestamp, uid: str) -> int:
    pos = ds.get_indexer([pd.Timestamp(when)])[0]
    if pos < 0:
        raise DataError(f"{uid}: fold session {pd.Timestamp(when).date()} is not a session of the series")
    return int(pos)


def _origins(ds: pd.DatetimeIndex, fold: Fold, uid: str) -> np.ndarray:
    pos = ds.get_indexer(pd.DatetimeIndex(fold.test_ds))
    if (pos < 0).any():
        raise DataError(f"{uid}: fold {fold.fold} tests on sessions missing from the series")
    return pos.astype(np.int64)


def _check_fold(fold: Fold, ds: pd.DatetimeIndex) -> None:
    if fold.train_end != fold.cutoff or not fold.test_ds or fold.test_ds[0] <= fold.cutoff:
        raise LeakageError(
            f"fold {fold.fold}: training ends {fold.train_end.date()}, cutoff {fold.cutoff.date()}, first test "
            f"origin {fold.test_ds[0].date() if fold.test_ds else None}; training must end at the cutoff"
        )


def _prediction_rows(uid, model, fold, origins, truth, p, threshold, horizon) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ID: uid,
            MODEL: model,
            FOLD: fold.fold,
            CUTOFF: fold.cutoff,
            DS: pd.DatetimeIndex(origins),
            H: horizon,
            Y: truth,
            P: p,
            THRESHOLD: threshold,
        }
    )


def _predictions_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return empty_predictions()
    return normalize_predictions(pd.concat(parts, ignore_index=True))


def empty_predictions() -> pd.DataFrame:
    return normalize_predictions(pd.DataFrame({c: [] for c in EVENT_PREDICTION_COLUMNS}))


def normalize_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            ID: frame[ID].astype(str),
            MODEL: frame[MODEL].astype(str),
            FOLD: frame[FOLD].astype("int64"),
            CUTOFF: pd.to_datetime(frame[CUTOFF]).astype("datetime64[ns]"),
            DS: pd.to_datetime(frame[DS]).astype("datetime64[ns]"),
            H: frame[H].astype("int64"),
            Y: frame[Y].astype(float),
            P: frame[P].astype(float),
            THRESHOLD: frame[THRESHOLD].astype(float),
        }
    )
    return out.sort_values([ID, MODEL, FOLD, DS], kind="stable").reset_index(drop=True)


def _failure_row(uid: str, model: str, fold: Fold, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LeakageError):
        raise exc  # a bug, never a model failure
    wrapped = exc if isinstance(exc, ModelFitError) else ModelFitError(model, uid, f"{type(exc).__name__}: {exc}")
    if wrapped.unique_id == "?":
        wrapped = ModelFitError(model, uid, wrapped.reason)
    return {ID: uid, MODEL: model, FOLD: fold.fold, ERROR_TYPE: type(exc).__name__, MESSAGE: str(wrapped)}


def resolve_refit_every(model: str, refit_every: int | None) -> int:
    """The refit policy for `model`: the one asked for, else its class's `default_refit_every`."""
    if refit_every is not None:
        if not isinstance(refit_every, int) or isinstance(refit_every, bool) or refit_every < 0:
            raise ConfigError(
                f"refit_every must be an integer >= 0 (0 = fit once, 1 = every fold), got {refit_every!r}"
            )
        return refit_every
    cls = event_model_class(model) if model in EVENT_REGISTRY else None
    return int(getattr(cls, "default_refit_every", DEFAULT_REFIT_EVERY))


# ---- a whole panel ----------------------------------------------------------------------------------------
@dataclass
class EventResult:
    """Tidy tables of one event backtest plus run metadata (threshold, horizon, plan, models, features)."""

    predictions: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        """predictions (+ timings, and failures when any) as parquet + CSV, meta.json; each written atomically."""
        out = Path(out_dir)
        write_table(self.predictions, out, "predictions")
        write_table(self.timings, out, "timings")
        if len(self.failures):
            write_table(self.failures, out, "failures")
        else:  # a rerun into the same directory must not leave an earlier run's failures behind
            for stale in ("failures.parquet", "failures.csv"):
                (out / stale).unlink(missing_ok=True)
        atomic_write_text(out / "meta.json", json.dumps(self.meta, indent=2, sort_keys=True, default=str))
        return out

    def summary(self) -> str:
        p = self.predictions
        counts = f"{p[ID].nunique()} series x {p[MODEL].nunique()} models, {len(p)} predictions"
        return f"{counts}, {len(self.failures)} failed folds"


def check_event_params(*, threshold: float, horizon: int, tail_fraction: float = DEFAULT_TAIL_FRACTION) -> None:
    """ConfigError for a bad threshold, event horizon or tail fraction (before any work)."""
    target_name("event", horizon=horizon, threshold=threshold)  # validates the horizon
    if not np.isfinite(threshold) or threshold <= -1.0:
        raise ConfigError(f"threshold is a fractional rise (0.05 = 5%) and must be > -1, got {threshold!r}")
    if not 0.0 < tail_fraction < 1.0:
        raise ConfigError(f"tail_fraction must be in (0, 1), got {tail_fraction!r}")


def model_specs(models: Mapping[str, Mapping[str, Any]] | Sequence[str], *, reference: str = BASE_RATE) -> dict:
    """{name: params} with the reference (base_rate) first, added when absent; unknown names fail here."""
    specs = parse_model_specs(models, kind="event models", example="['base_rate', 'logistic']")
    for name in specs:
        if name not in EVENT_REGISTRY:
            make_event_model(name)  # ConfigError naming the registered event models and close matches
    if reference not in specs:
        log.info("adding %s: every event model is tested against it", reference)
    return {reference: specs.pop(reference, {}), **specs}


def run_event_backtest(
    panel: pd.DataFrame,
    *,
    threshold: float,
    horizon: int,
    plan: FoldPlan,
    models: Mapping[str, Mapping[str, Any]] | Sequence[str] = ("base_rate", "logistic"),
    refit_every: int | None = None,
    feature_config: FeatureConfig | None = None,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
    progress: Progress | None = None,
) -> EventResult:
    """Backtest event classifiers on every series of a long panel, on the same folds, deterministic order.

    Args:
        threshold: the rise x (0.05 = 5%); horizon: sessions h the rise may take.
        plan: rolling-origin plan on labelled sessions; plan.horizon = test origins per fold.
        models: event registry names (or {name: params}); base_rate is added when absent.
    """
    check_event_params(threshold=threshold, horizon=horizon, tail_fraction=tail_fraction)
    specs = model_specs(models) if factory is make_event_model else _plain_specs(models)
    started = time.perf_counter()
    frame, columns = event_frame(panel, threshold=threshold, horizon=horizon, config=feature_config)
    folds = event_folds(frame, plan, horizon=horizon)
    series = {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby(ID, sort=True)}
    units = [(uid, name) for uid in sorted(series) for name in specs]
    results = []
    for k, (uid, name) in enumerate(units):
        results.append(
            event_unit(
                series[uid],
                model=name,
                params=specs[name],
                folds=folds[uid],
                horizon=horizon,
                columns=columns,
                refit_every=refit_every,
                tail_fraction=tail_fraction,
                factory=factory,
            )
        )
        if progress:
            progress(k + 1, len(units), uid, name)
    meta = event_meta(
        threshold=threshold,
        horizon=horizon,
        plan=plan,
        models=specs,
        refit_every=refit_every,
        columns=columns,
        frame=frame,
        tail_fraction=tail_fraction,
        factory=factory,
    )
    meta["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    result = gather(results, meta=meta)
    log.info("event backtest done: %s", result.summary())
    return result


def _plain_specs(models: Mapping[str, Mapping[str, Any]] | Sequence[str]) -> dict[str, dict[str, Any]]:
    if isinstance(models, Mapping):
        return {str(k): dict(v or {}) for k, v in models.items()}
    return {str(m): {} for m in ([models] if isinstance(models, str) else models)}


def event_meta(
    *,
    threshold: float,
    horizon: int,
    plan: FoldPlan,
    models: Mapping[str, Mapping[str, Any]],
    refit_every: int | None,
    columns: Sequence[str],
    frame: pd.DataFrame,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
) -> dict[str, Any]:
    """Run metadata the report header shows (JSON-ready)."""
    labelled = frame[frame[LABEL].notna()]
    return {
        "task": "event",
        "event": f"close rises >= {threshold * 100:g}% within {horizon} sessions",
        "threshold": float(threshold),
        "horizon": int(horizon),
        "plan": {**plan.to_dict(), "origins_per_fold": plan.horizon},
        "plan_fingerprint": plan.fingerprint(),
        "refit_every": {
            name: (resolve_refit_every(name, refit_every) if factory is make_event_model else refit_every)
            for name in models
        },
        "models": {name: dict(p) for name, p in models.items()},
        "features": list(columns),
        "tail_fraction": tail_fraction,
        "event_rate": {str(u): round(float(v), 4) for u, v in labelled.groupby(ID)[LABEL].mean().items()},
        "n_series": int(frame[ID].nunique()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def gather(results: Sequence[EventUnitResult], *, meta: dict[str, Any] | None = None) -> EventResult:
    """Concatenate unit results into one EventResult, sorted deterministically."""
    preds = [r.predictions for r in results if len(r.predictions)]
    timings = [r.timings for r in results if len(r.timings)]
    fails = [r.failures for r in results if len(r.failures)]
    predictions = normalize_predictions(pd.concat(preds, ignore_index=True)) if preds else empty_predictions()
    timing = pd.concat(timings, ignore_index=True) if timings else pd.DataFrame(columns=list(TIMING_COLUMNS))
    failures = pd.concat(fails, ignore_index=True) if fails else pd.DataFrame(columns=list(FAILURE_COLUMNS))
    failures = failures.sort_values([ID, MODEL, FOLD], kind="stable").reset_index(drop=True)
    meta = dict(meta or {})
    meta["n_failures"] = len(failures)
    return EventResult(predictions=predictions, timings=timing.reset_index(drop=True), failures=failures, meta=meta)


# ---- scoring ---------------------------------------------------------------------------------------------
@dataclass
class EventEvaluation:
    """Scored tables of one event backtest (long metrics; everything else one row per model/bin/point)."""

    metrics: pd.DataFrame
    per_series: pd.DataFrame
    leaderboard: pd.DataFrame
    calibration: pd.DataFrame
    significance: pd.DataFrame
    curves: pd.DataFrame

    def save(self, out_dir: str | Path) -> Path:
        """metrics.parquet (+csv), leaderboard.csv, per_series.csv, calibration.csv, significance.csv, curves.csv."""
        out = Path(out_dir)
        for f in fields(self):
            write_table(getattr(self, f.name), out, f.name, parquet=f.name == "metrics")
        return out


def evaluate_events(
    result: EventResult, *, alpha: float = ALPHA, bins: int = 10, reference: str = BASE_RATE
) -> EventEvaluation:
    """Every metric, the leaderboard, reliability bins, ROC/PR curves and the DM tests against the base rate."""
    preds = result.predictions
    horizon = int(result.meta.get("horizon") or (preds[H].iloc[0] if len(preds) else 1))
    metrics = metrics_table(preds)
    per_series = per_series_table(metrics, reference=reference)
    plan = result.meta.get("plan") or {}
    significance = significance_table(
        preds,
        horizon=horizon,
        origins_per_fold=int(plan.get("horizon") or 1),
        step=int(plan.get("step") or 1),
        reference=reference,
        alpha=alpha,
    )
    return EventEvaluation(
        metrics=metrics,
        per_series=per_series,
        leaderboard=leaderboard(per_series, significance, result.failures),
        calibration=calibration_table(preds, bins=bins),
        significance=significance,
        curves=curve_table(preds),
    )
