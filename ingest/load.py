"""load_panel: the one entry point other packages call - read, validate, store, and return the clean panel."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd

from common.errors import DataError, PricecastError, SourceError
from common.schema import ID
from features.calendar import HOW_STORED
from ingest.price_store import PriceStore
from ingest.quality import COUNTS, FLAGS, QualityReport
from ingest.sources import read_source
from ingest.sources.live import DEFAULT_ATTEMPTS, SourceUnavailable
from ingest.spec import SourceSpec
from ingest.validate import validate

log = logging.getLogger(__name__)

# A stored history starting this much later than the requested start is refetched from the start.
BACKFILL_SLACK = timedelta(days=7)


def load_panel(
    spec: SourceSpec,
    *,
    store: PriceStore | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[pd.DataFrame, QualityReport]:
    """The validated panel (common.schema.PANEL_COLUMNS) and its quality report.

    Live sources with a store fetch only bars after each ticker's last stored session, validate and store them
    ticker by ticker, then return the full [start, end] range from the store. Other sources are read whole,
    validated whole and stored in one transaction when a store is given: a bad file stores nothing. The file is
    the truth over the span it covers: stored rows of a ticker between its first and last date in the file that
    the file no longer has are removed (PriceStore.replace), counted and named in the report.
    `attempts` and `sleep` drive the retries of live sources.
    """
    if spec.is_live and store is not None:
        return _load_incremental(spec, store, attempts=attempts, sleep=sleep)
    stored = store.calendars(spec.source) if store is not None else {}
    panel, report = validate(read_source(spec, attempts=attempts, sleep=sleep), spec, stored_calendars=stored)
    if store is not None:
        _note_removed(report, store.replace(panel, spec.source))
        _keep_calendars(store, spec.source, report)
    return panel, report


def _keep_calendars(store: PriceStore, source: str, report: QualityReport) -> None:
    """Store each ticker's calendar choice (after its prices), so later runs without --calendar use it."""
    chosen = {
        t: (q.calendar, q.calendar_how or "")
        for t, q in report.tickers.items()
        if q.calendar and q.calendar_how != HOW_STORED  # a stored choice keeps its own reason
    }
    store.save_calendars(source, chosen)


def _note_removed(report: QualityReport, removed: dict[str, list[pd.Timestamp]]) -> None:
    """Count and name, per ticker, the stored rows a file ingest removed because the file no longer has them."""
    for t, dates in removed.items():
        q = report.ticker(t)
        q.rows_removed_from_store = len(dates)
        shown = ", ".join(str(d.date()) for d in dates[:3]) + (f" and {len(dates) - 3} more" if len(dates) > 3 else "")
        q.warnings.append(
            f"{len(dates)} stored row{'s' if len(dates) != 1 else ''} between {q.first_session} and "
            f"{q.last_session} no longer in the file, removed from the store: {shown}; live forecasts of those "
            "sessions are unscored at the next scoring (ingest/forecast flow, `pricecast history`)"
        )


def _load_incremental(
    spec: SourceSpec, store: PriceStore, *, attempts: int, sleep: Callable[[float], None]
) -> tuple[pd.DataFrame, QualityReport]:
    """Fetch, validate and store each due ticker's new bars in its own transaction, then read the range back.

    A ticker that cannot be fetched (after retries) or validated is skipped and the others carry on, so the store
    holds every ticker either exactly as before or with all of its new bars - never part of them - and a rerun
    fetches only what is still missing. The error raised at the end names every
    ticker that failed and the ones that were stored.
    """
    tickers = spec.tickers or ()
    calendars = store.calendars(spec.source, tickers)
    spans = {t: store.session_range(spec.source, t) for t in tickers}
    starts = {t: fetch_start(spec, spans[t]) for t in tickers}
    due = {t: s for t, s in starts.items() if s is None or spec.end is None or s <= spec.end}
    due = {t: s for t, s in due.items() if s is None or s <= date.today()}
    fetched = QualityReport(source=spec.source)
    failed: dict[str, PricecastError] = {}
    for t, start in due.items():
        one = spec.model_copy(update={"tickers": (t,), "min_sessions": 1})
        known = (t,) if spans[t] is not None else ()  # nothing new for a stored ticker is fine (weekend)
        try:
            raw = read_source(one, starts={t: start}, allow_empty=known, attempts=attempts, sleep=sleep)
            new, quality = validate(raw, one, stored_calendars=calendars) if len(raw) else (None, None)
        except (SourceError, DataError) as exc:
            log.warning("skipping %s: %s", t, exc)
            failed[t] = exc
            continue
        if new is not None and quality is not None:
            store.upsert(new, spec.source)  # one transaction per ticker: all of its new bars or none
            fetched.tickers[t] = quality.tickers[t]
    if failed:
        raise _fetch_failure(spec, failed, stored=[t for t in due if t not in failed])
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
    panel, report = validate(stored, spec, stored_calendars=calendars)
    _keep_calendars(store, spec.source, report)
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
            if name not in ("rows_in", "rows_out", *FLAGS) and new is not None:
                setattr(q, name, getattr(q, name) + getattr(new, name))
        if new is not None:
            q.warnings = new.warnings + [w for w in q.warnings if w not in new.warnings]
    return out


def _fetch_failure(spec: SourceSpec, failed: dict[str, PricecastError], *, stored: list[str]) -> PricecastError:
    """One error for the tickers an incremental ingest could not fetch, saying what was stored all the same.

    A DataError when any ticker failed on its data (unknown ticker, bad bars: a retry will not help); a
    SourceUnavailable when every failure was transient (the source already retried each request: the one network
    retry layer, ingest/sources/live.py; the Prefect task retries only a store lock).
    """
    kept = f"stored the other {len(stored)}: {', '.join(stored)}" if stored else "nothing was stored"
    if len(failed) == 1:
        message = f"{next(iter(failed.values()))}; {kept}; a rerun fetches only what is missing"
    else:
        shown = "; ".join(f"{t}: {e}" for t, e in list(failed.items())[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        message = (
            f"{spec.source}: {len(failed)} tickers failed ({', '.join(failed)}); {kept}; a rerun fetches only "
            f"what is missing. {shown}{more}"
        )
    errors = failed.values()
    kind: type[PricecastError] = SourceError
    if any(isinstance(e, DataError) for e in errors):
        kind = DataError
    elif all(isinstance(e, SourceUnavailable) for e in errors):
        kind = SourceUnavailable
    error = kind(message)
    error.__cause__ = next((e.__cause__ for e in errors if isinstance(e, kind) and e.__cause__), None)
    return error
