"""load_panel: the one entry point other packages call - read, validate, store, and return the clean panel."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pandas as pd

from features.schema import ID
from ingest.quality import COUNTS, QualityReport
from ingest.sources import read_source
from ingest.spec import SourceSpec
from ingest.store import PriceStore
from ingest.validate import validate
from pricecast.errors import DataError

log = logging.getLogger(__name__)

# A stored history starting this much later than the requested start is refetched from the start.
BACKFILL_SLACK = timedelta(days=7)


def load_panel(spec: SourceSpec, *, store: PriceStore | None = None) -> tuple[pd.DataFrame, QualityReport]:
    """The validated panel (features.schema.PANEL_COLUMNS) and its quality report.

    Live sources with a store fetch only bars after each ticker's last stored session, validate and store them,
    then return the full [start, end] range from the store. Other sources are read whole and stored when a store
    is given.
    """
    if spec.is_live and store is not None:
        return _load_incremental(spec, store)
    panel, report = validate(read_source(spec), spec)
    if store is not None:
        store.upsert(panel, spec.source)
    return panel, report


def _load_incremental(spec: SourceSpec, store: PriceStore) -> tuple[pd.DataFrame, QualityReport]:
    """Fetch new bars per ticker, store them in one transaction, and read the requested range back."""
    tickers = spec.tickers or ()
    spans = {t: store.session_range(spec.source, t) for t in tickers}
    starts = {t: fetch_start(spec, spans[t]) for t in tickers}
    due = {t: s for t, s in starts.items() if s is None or spec.end is None or s <= spec.end}
    due = {t: s for t, s in due.items() if s is None or s <= date.today()}
    fetched = QualityReport(source=spec.source)
    if due:
        new_spec = spec.model_copy(update={"tickers": tuple(due), "min_sessions": 1})
        known = {t for t in due if spans[t] is not None}  # nothing new for a stored ticker is fine (weekend)
        raw = read_source(new_spec, starts=due, allow_empty=known)
        got = tuple(t for t in due if t in set(raw[ID]))
        if got:
            new, fetched = validate(raw, new_spec.model_copy(update={"tickers": got}))
            store.upsert(new, spec.source)
    log.info(
        "%s: fetched %d new rows for %d of %d tickers",
        spec.source,
        sum(q.rows_in for q in fetched.tickers.values()),
        len(fetched.tickers),
        len(tickers),
    )
    stored = store.read(spec.source, tickers, spec.start, spec.end)
    absent = [t for t in tickers if t not in set(stored[ID])]
    if absent:
        raise DataError(
            f"{absent}: no stored or fetched {spec.source} bars between {spec.start or 'the beginning'} and "
            f"{spec.end or 'today'}; widen start/end or check the tickers"
        )
    panel, report = validate(stored, spec)
    return panel, _combine(fetched, report, starts)


def fetch_start(spec: SourceSpec, stored: tuple[pd.Timestamp, pd.Timestamp] | None) -> date | None:
    """First date to request: the day after the last stored session, or spec.start when the store lacks history."""
    if stored is None:
        return spec.start
    first, last = stored
    if spec.start is not None and pd.Timestamp(spec.start) < first - BACKFILL_SLACK:
        log.info("stored history starts %s, after start=%s: refetching from start", first.date(), spec.start)
        return spec.start
    after = (last + pd.Timedelta(days=1)).date()
    return max(after, spec.start) if spec.start else after


def _combine(fetched: QualityReport, final: QualityReport, starts: dict[str, date | None]) -> QualityReport:
    """One report: cleaning counts of this run's fetched bars plus the shape of the panel read from the store."""
    out = final.model_copy(deep=True)
    for t, q in out.tickers.items():
        new = fetched.tickers.get(t)
        start = starts.get(t)
        q.fetch_start = start.isoformat() if start else None
        q.rows_in = new.rows_in if new else 0
        for name in COUNTS:
            if name not in ("rows_in", "rows_out") and new is not None:
                setattr(q, name, getattr(q, name) + getattr(new, name))
        if new is not None:
            q.warnings = new.warnings + [w for w in q.warnings if w not in new.warnings]
    return out
