"""Live event probabilities: P(event) at each ticker's latest session, from a model fitted on every labelled one.

The daily step after an event backtest, on the backtest's own code path (backtest.event_task.fit_event_model, then
one predict_proba call): the cutoff is the series' last session, so the leakage guard masks the last L labels
(their outcome reads closes that have not happened yet; the event frame holds them as NaN already) and only
labelled rows with finite features train. The origin is the last session (`as_of`), whose features are known
at its close; the decision threshold is chosen on the training tail as in every backtest fold. Training
starts at the series' first session (every labelled session, whatever the backtest's window type).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.blocks import LeakageError, failure_row
from backtest.event_task import DEFAULT_TAIL_FRACTION, EventFactory, fit_event_model, training_window, with_lookahead
from common.errors import DataError
from common.schema import (
    AS_OF,
    DECISION_THRESHOLD,
    DS,
    FAILURE_COLUMNS,
    ID,
    LABEL,
    LIVE_EVENT_COLUMNS,
    MESSAGE,
    MODEL,
    N_TRAIN,
    THRESHOLD,
    TRAIN_END,
    H,
    P,
)
from models import make_event_model
from models.classifiers import training_rows

log = logging.getLogger(__name__)

LIVE_FOLD = -1  # FOLD of a live fit's failure row (backtest folds count from 0)


@dataclass
class LiveEventResult:
    """One row per (ticker, model) that produced a probability, and one failure row per one that did not."""

    probabilities: pd.DataFrame
    failures: pd.DataFrame


def live_event_unit(
    series: pd.DataFrame,
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    threshold: float,
    lookahead: int,
    columns: list[str],
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
) -> pd.DataFrame:
    """Fit `model` on every labelled session of one series (an event_frame slice); P(event) at its last session."""
    frame = series.sort_values(DS, kind="stable").reset_index(drop=True)
    uid = str(frame[ID].iloc[0])
    if frame[ID].astype(str).nunique() != 1:
        raise DataError(f"a live event unit takes one series, got {sorted(frame[ID].astype(str).unique())[:5]}")
    ds = pd.DatetimeIndex(frame[DS])
    X = frame[list(columns)].to_numpy(dtype=float)
    labels = frame[LABEL].to_numpy(dtype=float)
    origin = len(frame) - 1
    missing = [c for c, ok in zip(columns, np.isfinite(X[origin]), strict=True) if not ok]
    if missing:
        raise DataError(
            f"{uid}: {', '.join(missing)} NaN at the latest session {ds[origin].date()}; "
            "fill the source's gap (volume, price) or drop the ticker for today"
        )
    params = with_lookahead(model, dict(params or {}), lookahead, factory)
    window = {"start": 0, "cutoff": origin, "lookahead": lookahead}
    instance, decision = fit_event_model(factory(model, **params), X, labels, **window, tail_fraction=tail_fraction)
    p = instance.predict_proba(X, np.array([origin]))
    trained = training_rows(X, training_window(labels, **window)[1])
    return pd.DataFrame(
        {
            ID: [uid],
            MODEL: [model],
            AS_OF: [ds[origin]],
            H: [int(lookahead)],
            THRESHOLD: [float(threshold)],
            P: [float(p[0])],
            DECISION_THRESHOLD: [float(decision)],
            TRAIN_END: [ds[trained.max()]],
            N_TRAIN: [int(trained.size)],
        }
    )


def live_event_probabilities(
    frames: Mapping[str, pd.DataFrame],
    *,
    models: Mapping[str, Mapping[str, Any]],
    threshold: float,
    lookahead: int,
    columns: list[str],
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    factory: EventFactory = make_event_model,
) -> LiveEventResult:
    """live_event_unit for every (ticker, model); a unit that fails is recorded (fold LIVE_FOLD), the rest go on."""
    rows, failures = [], []
    for uid in sorted(frames):
        for name, params in models.items():
            try:
                rows.append(
                    live_event_unit(
                        frames[uid],
                        model=name,
                        params=params,
                        threshold=threshold,
                        lookahead=lookahead,
                        columns=columns,
                        tail_fraction=tail_fraction,
                        factory=factory,
                    )
                )
            except LeakageError:
                raise  # a bug, never a model failure
            except Exception as exc:  # models raise anything; recorded for this (ticker, model)
                log.warning("live %s on %s failed: %s", name, uid, exc)
                failures.append(live_failure_row(uid, name, exc))
    return gather_live(rows, failures)


def gather_live(rows: list[pd.DataFrame], failures: list[dict[str, Any]]) -> LiveEventResult:
    """One LiveEventResult from live_event_unit rows and live_failure_row records (a flow's mapped live units)."""
    return LiveEventResult(
        probabilities=_normalize(pd.concat(rows, ignore_index=True) if rows else None),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
    )


def live_failure_row(uid: str, model: str, exc: BaseException) -> dict[str, Any]:
    """blocks.failure_row on fold LIVE_FOLD, the message marked as the live fit's (LeakageError re-raised)."""
    row = failure_row(uid, model, LIVE_FOLD, exc)
    return {**row, MESSAGE: f"live fit: {row[MESSAGE]}"}


def _normalize(frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = frame if frame is not None else pd.DataFrame({c: [] for c in LIVE_EVENT_COLUMNS})
    out = pd.DataFrame(
        {
            ID: frame[ID].astype(str),
            MODEL: frame[MODEL].astype(str),
            AS_OF: pd.to_datetime(frame[AS_OF]).astype("datetime64[ns]"),
            H: frame[H].astype("int64"),
            THRESHOLD: frame[THRESHOLD].astype(float),
            P: frame[P].astype(float),
            DECISION_THRESHOLD: frame[DECISION_THRESHOLD].astype(float),
            TRAIN_END: pd.to_datetime(frame[TRAIN_END]).astype("datetime64[ns]"),
            N_TRAIN: frame[N_TRAIN].astype("int64"),
        }
    )
    return out.reset_index(drop=True)


def live_probability_records(probabilities: pd.DataFrame, *, digits: int = 4) -> list[dict[str, Any]]:
    """JSON-ready rows (ticker, model, as_of, horizon, threshold, p, decision_threshold) for a table artifact."""
    return [
        {
            "ticker": str(row[ID]),
            "model": str(row[MODEL]),
            "as_of": pd.Timestamp(row[AS_OF]).date().isoformat(),
            "horizon": int(row[H]),
            "threshold": float(row[THRESHOLD]),
            "p": round(float(row[P]), digits),
            "decision_threshold": round(float(row[DECISION_THRESHOLD]), digits),
        }
        for _, row in probabilities.iterrows()
    ]
