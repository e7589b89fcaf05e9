"""Event backtest: "will the close rise >= x% within `lookahead` sessions?" classifiers on rolling-origin folds.

Design (the honest one, and why):
- Label: features.targets.event_target on the modelling price (y, the adjusted close: a raw close "falls" 50% at
  a 2:1 split): 1.0 if max(c[t+1..t+L]) >= c[t](1+x), else 0.0 (L = lookahead); NaN for the last L sessions.
- Features: features.build (returns, SMA 5/20/60/120, MACD, RSI, Bollinger, volatility, volume z-score,
  calendar), all causal. Price-level indicators are made scale-free before modelling (SMA/EMA/Bollinger bands
  as price ratios - 1, MACD lines over the price), so a model trained at $30 works at $300.
- Origins: every session is a potential origin t; the prediction at t uses features at t (known at the close
  of t) and a model whose parameters were fitted at the fold's cutoff.
- Folds: backtest.folds (FoldPlan, panel_folds), cut on each series' LABELLED sessions (the last L sessions,
  whose outcome is still unknown, are dropped first). In this task a FoldPlan's `horizon` is the number of test
  ORIGINS per fold, never the lookahead: build plans with `event_fold_plan(origins_per_fold=...)`. With
  origins_per_fold == step consecutive folds' origins tile the test span, every labelled session there is scored
  exactly once. Every model sees the same folds.
- Leakage guard: a training row t is usable only if its label is known at the cutoff c, i.e. t + L <= c. The
  last L training rows' labels read closes after the cutoff, so they are masked (NaN) before `fit` sees them,
  and fit receives the feature rows up to the cutoff only. Training rows come from [train_start, cutoff]; no
  shuffling or stratified splits across time. `LeakageError` (never recorded as a model failure) is raised if
  a fold would train on a label that reads past its cutoff.
- Decision threshold: chosen per fit on the TRAINING tail (the last `tail_fraction` of the fold's labelled
  training samples, in-sample predictions) by maximising F1 (backtest.event_metrics.choose_threshold). The
  Keras classifiers use the same tail (their validation_fraction, 0.2 by default) for early stopping.
- Refit policy, failures, warm starts, timings: the block loop's (backtest.blocks), as for price forecasts (the
  event task of the loop is backtest.units.EventTask); default: each model class's `default_refit_every`.
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

from backtest.blocks import LeakageError
from backtest.blocks import model_specs as parse_model_specs
from backtest.engine import Progress, prepare_panel
from backtest.event_metrics import (
    ALPHA,
    calibration_table,
    choose_threshold,
    curve_table,
    leaderboard,
    metrics_table,
    per_series_table,
    significance_table,
)
from backtest.folds import Fold, FoldPlan, WindowType, panel_folds
from common.errors import ConfigError, DataError
from common.fileio import atomic_write_text, write_table
from common.schema import (
    BASE_RATE,
    CUTOFF,
    DS,
    EVENT_PREDICTION_COLUMNS,
    FAILURE_COLUMNS,
    FOLD,
    ID,
    LABEL,
    MODEL,
    THRESHOLD,
    TIMING_COLUMNS,
    VOLUME,
    H,
    P,
    Y,
)
from features import indicators as ind
from features.build import FeatureConfig, build_features_for
from features.targets import event_target_panel, target_name
from models import EVENT_REGISTRY, event_model_class, make_event_model
from models.classifiers import training_rows

log = logging.getLogger(__name__)

DEFAULT_TAIL_FRACTION = 0.2
EventFactory = Callable[..., Any]  # (name, **params) -> unfitted EventClassifier; make_event_model by default


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
    lookahead: int,
    config: FeatureConfig | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """unique_id, ds, y, label + scale-free feature columns, sorted by (unique_id, ds); and the feature names.

    The label of the last `lookahead` sessions of each series is NaN (their outcome is not known yet).
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
    label = event_target_panel(panel, threshold=threshold, horizon=lookahead, price_col=config.price_col)
    design = scale_free(build_features_for(panel, config), price, config)
    columns = list(design.columns)
    frame = pd.concat([panel[[ID, DS, Y]], pd.Series(label.to_numpy(), name=LABEL), design], axis=1)
    return frame, columns


def labelled_sessions(frame: pd.DataFrame, *, lookahead: int) -> pd.DataFrame:
    """Each series without its last `lookahead` sessions: the origins whose outcome is known."""
    from_end = frame.groupby(ID, sort=False).cumcount(ascending=False)
    return frame.loc[from_end >= lookahead]


def event_fold_plan(
    *,
    origins_per_fold: int,
    step: int = 1,
    windows: int | None = None,
    window_type: WindowType = "expanding",
    train_size: int | None = None,
    min_train_size: int | None = None,
) -> FoldPlan:
    """The FoldPlan of an event backtest: its `horizon` field is the number of test ORIGINS per fold (the one
    place this task gives FoldPlan.horizon that meaning; the event's own "within L sessions" is `lookahead`)."""
    return FoldPlan(
        horizon=origins_per_fold,
        step=step,
        windows=windows,
        window_type=window_type,
        train_size=train_size,
        min_train_size=min_train_size,
    )


def event_folds(frame: pd.DataFrame, plan: FoldPlan, *, lookahead: int) -> dict[str, list[Fold]]:
    """The fold plan (see event_fold_plan) on each series' labelled sessions."""
    return panel_folds(labelled_sessions(frame, lookahead=lookahead), plan)


# ---- one unit: its result, its one fit (the block loop's event task is backtest.units.EventTask) ------------
@dataclass
class EventUnitResult:
    """What one (series, model) unit produces."""

    predictions: pd.DataFrame
    timings: pd.DataFrame
    failures: pd.DataFrame


def training_window(labels: np.ndarray, *, start: int, cutoff: int, lookahead: int) -> tuple[slice, np.ndarray]:
    """Rows [start, cutoff] and their labels with every label unknown at the cutoff masked (t + L > cutoff)."""
    rows = slice(start, cutoff + 1)
    known = labels[rows].astype(float).copy()
    first_unknown = max(cutoff - lookahead + 1, start) - start  # rows t > cutoff - L read closes after the cutoff
    known[first_unknown:] = np.nan
    latest = start + int(np.flatnonzero(np.isfinite(known)).max()) if np.isfinite(known).any() else None
    if latest is not None and latest + lookahead > cutoff:
        raise LeakageError(f"training label at row {latest} reads row {latest + lookahead} > cutoff row {cutoff}")
    return rows, known


def fit_event_model(
    instance: Any, X: np.ndarray, labels: np.ndarray, *, start: int, cutoff: int, lookahead: int, tail_fraction: float
) -> tuple[Any, float]:
    """The event task's one fit (every backtest refit, backtest.units.EventTask, and the live step): `instance`
    fitted on rows [start, cutoff] with every label unknown at the cutoff masked; the decision threshold chosen
    on the training tail. Returns the fitted instance and the threshold."""
    rows, known = training_window(labels, start=start, cutoff=cutoff, lookahead=lookahead)
    instance = instance.fit(X[rows], known)
    return instance, _tail_threshold(instance, X[rows], known, tail_fraction)


def _tail_threshold(instance: Any, X: np.ndarray, known: np.ndarray, tail_fraction: float) -> float:
    rows = training_rows(X, known)
    tail = rows[rows.size - max(1, math.ceil(tail_fraction * rows.size)) :]
    return choose_threshold(known[tail], instance.predict_proba(X, tail))


def with_lookahead(model: str, params: dict[str, Any], lookahead: int, factory: EventFactory) -> dict[str, Any]:
    """Models tagged `uses_horizon` (they purge label overlap before their validation tail) get the lookahead as
    their `horizon` parameter."""
    if factory is make_event_model and model in EVENT_REGISTRY and "horizon" not in params:
        if getattr(event_model_class(model), "uses_horizon", False):
            params["horizon"] = lookahead
    return params


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


# ---- a whole panel ----------------------------------------------------------------------------------------
@dataclass
class EventResult:
    """Tidy tables of one event backtest plus run metadata (threshold, lookahead, plan, models, features)."""

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


def check_event_params(*, threshold: float, lookahead: int, tail_fraction: float = DEFAULT_TAIL_FRACTION) -> None:
    """ConfigError for a bad threshold, lookahead or tail fraction (before any work)."""
    target_name("event", horizon=lookahead, threshold=threshold)  # validates the lookahead
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
    lookahead: int,
    plan: FoldPlan,
    models: Mapping[str, Mapping[str, Any]] | Sequence[str] = ("base_rate", "logistic"),
    refit_every: int | None = None,
    feature_config: FeatureConfig | None = None,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
    progress: Progress | None = None,
) -> EventResult:
    """Backtest event classifiers on every series of a long panel, locally: plan_event_units + run_unit per unit.

    Args:
        threshold: the rise x (0.05 = 5%); lookahead: sessions L the rise may take.
        plan: rolling-origin plan on labelled sessions (event_fold_plan: plan.horizon = test origins per fold).
        models: event registry names (or {name: params}); base_rate is added when absent (registry factory only).
    """
    from backtest.units import plan_event_units, run_unit  # units builds on this module

    check_event_params(threshold=threshold, lookahead=lookahead, tail_fraction=tail_fraction)
    specs = model_specs(models) if factory is make_event_model else parse_model_specs(models, kind="event models")
    started = time.perf_counter()
    frame, columns = event_frame(panel, threshold=threshold, lookahead=lookahead, config=feature_config)
    folds = event_folds(frame, plan, lookahead=lookahead)
    series = {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby(ID, sort=True)}
    units = plan_event_units(
        list(series),
        models=specs,
        folds=folds,
        lookahead=lookahead,
        columns=columns,
        refit_every=refit_every,
        tail_fraction=tail_fraction,
    )
    results = []
    for k, unit in enumerate(units):
        results.append(run_unit(unit, series[unit.uid], factory=factory))
        if progress:
            progress(k + 1, len(units), unit.uid, unit.model)
    meta = event_meta(
        threshold=threshold,
        lookahead=lookahead,
        plan=plan,
        models=specs,
        refit_every={unit.model: unit.refit_every for unit in units},
        columns=columns,
        frame=frame,
        tail_fraction=tail_fraction,
    )
    meta["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    result = gather(results, meta=meta)
    log.info("event backtest done: %s", result.summary())
    return result


def event_meta(
    *,
    threshold: float,
    lookahead: int,
    plan: FoldPlan,
    models: Mapping[str, Mapping[str, Any]],
    refit_every: Mapping[str, int],
    columns: Sequence[str],
    frame: pd.DataFrame,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
) -> dict[str, Any]:
    """Run metadata the report header shows (JSON-ready); `refit_every` is each model's resolved policy (the
    units' refit_every). "horizon" is kept beside "lookahead": reports and the results store read it."""
    labelled = frame[frame[LABEL].notna()]
    return {
        "task": "event",
        "event": f"close rises >= {threshold * 100:g}% within {lookahead} sessions",
        "threshold": float(threshold),
        "horizon": int(lookahead),
        "lookahead": int(lookahead),
        "plan": {**plan.to_dict(), "origins_per_fold": plan.horizon},
        "plan_fingerprint": plan.fingerprint(),
        "refit_every": {name: int(refit_every[name]) for name in models},
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
    lookahead = int(
        result.meta.get("lookahead") or result.meta.get("horizon") or (preds[H].iloc[0] if len(preds) else 1)
    )
    metrics = metrics_table(preds)
    per_series = per_series_table(metrics, reference=reference)
    plan = result.meta.get("plan") or {}
    significance = significance_table(
        preds,
        horizon=lookahead,
        origins_per_fold=int(plan.get("origins_per_fold") or plan.get("horizon") or 1),
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
