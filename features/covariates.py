"""Covariates: other series (indices, commodities, FX) aligned causally to a target's sessions, as feature columns.

A covariate's close is used for a target session only once it is KNOWN at the target's close: both closes are
placed on the UTC clock from their exchange calendars (exchange-calendars' session closes; a 24/7 or 24/5 daily
bar closes at the next UTC midnight), and each target session takes the covariate's latest close at or before its
own (an as-of join, pandas.merge_asof). So a US index closing at 21:00 UTC feeds a Seoul target (close 06:30 UTC)
from the NEXT Seoul session on, a crypto bar of day D feeds a New York target from D+1, and a covariate holiday
forward-fills the last known close. Nothing is ever back-filled: sessions before the covariate's first known close
have no value (NaN; models skip such warm-up rows) and are counted.

Columns, per covariate ticker (slug: the ticker lower-cased, runs of other characters as `_`):
    cov_<slug>_logret   log return of the aligned close between consecutive target sessions (0 over a filled day)
    cov_<slug>_level    the aligned close itself
each also lagged by every k of `lags` > 0 as `..._lag<k>`. Models lag further where they must (ARIMAX and Prophet
lag non-calendar regressors by the horizon); the recurrent models read windows ending at the origin.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError
from common.schema import COVARIATE_PREFIX, DS, ID, Y
from features.calendar import ALWAYS_OPEN, session_closes

LOGRET, LEVEL = "logret", "level"
KINDS = (LOGRET, LEVEL)
COVARIATES_VERSION = 1  # bump when the alignment or a column's maths changes (it keys cached units)


def slug(ticker: str) -> str:
    """'^GSPC' -> 'gspc', 'CL=F' -> 'cl_f', 'USD/KRW' -> 'usd_krw': a column-name-safe spelling of a ticker."""
    out = re.sub(r"[^0-9a-z]+", "_", str(ticker).lower()).strip("_")
    if not out:
        raise ConfigError(f"covariate {ticker!r} has no letters or digits to name its columns by")
    return out


@dataclass(frozen=True)
class CovariateConfig:
    """Which covariates, which kinds of column and which extra lags; `fingerprint()` keys cached units."""

    tickers: tuple[str, ...] = ()
    lags: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        tickers = tuple(dict.fromkeys(str(t).strip() for t in self.tickers if str(t).strip()))
        slugs: dict[str, str] = {}
        for ticker in tickers:
            other = slugs.setdefault(slug(ticker), ticker)
            if other != ticker:
                raise ConfigError(f"covariates {other!r} and {ticker!r} would share the columns cov_{slug(ticker)}_*")
        lags = tuple(sorted(set(self.lags)))
        if any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in lags):
            raise ConfigError(f"covariate lags must be integers >= 1 (sessions), got {list(self.lags)}")
        object.__setattr__(self, "tickers", tickers)
        object.__setattr__(self, "lags", tuple(int(k) for k in lags))

    def __bool__(self) -> bool:
        return bool(self.tickers)

    def columns(self, kinds: Sequence[str] = KINDS) -> list[str]:
        """The feature columns of `kinds` for every covariate, with their lags, in a fixed order."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ConfigError(f"covariate column kinds must be among {list(KINDS)}, got {unknown}")
        return [column(t, kind, lag) for t in self.tickers for kind in kinds for lag in (0, *self.lags)]

    def fingerprint(self) -> str:
        payload = json.dumps({"version": COVARIATES_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def column(ticker: str, kind: str, lag: int = 0) -> str:
    """The name of one covariate column: cov_<slug>_<kind>[_lag<k>]."""
    return f"{COVARIATE_PREFIX}{slug(ticker)}_{kind}" + (f"_lag{lag}" if lag else "")


@dataclass(frozen=True)
class CovariateSeries:
    """One covariate's validated closes on its own sessions, and the calendar they follow."""

    ticker: str
    ds: pd.DatetimeIndex
    y: np.ndarray
    calendar: str

    @classmethod
    def from_panel(cls, panel: pd.DataFrame, ticker: str, calendar: str) -> CovariateSeries:
        rows = panel.loc[panel[ID].astype(str) == ticker].sort_values(DS)
        return cls(ticker, pd.DatetimeIndex(rows[DS]), rows[Y].to_numpy(dtype=float), calendar)

    def fingerprint(self) -> str:
        """A stable hash of the ticker, calendar, dates and closes: what cached units and audits key on."""
        h = hashlib.sha256(f"{self.ticker}|{self.calendar}".encode())
        h.update(self.ds.as_unit("ns").asi8.tobytes())
        h.update(np.ascontiguousarray(self.y, dtype=float).tobytes())
        return h.hexdigest()[:16]

    def known_at(self, target_calendar: str, target_session: pd.Timestamp) -> CovariateSeries:
        """The rows whose close is known at the target's close of `target_session`: what a user had then."""
        closes = close_times(self.calendar, self.ds, latest=True)
        limit = close_times(target_calendar, pd.DatetimeIndex([target_session]), latest=False)[0]
        keep = closes <= limit
        return CovariateSeries(self.ticker, self.ds[keep], self.y[keep], self.calendar)


@dataclass(frozen=True)
class Alignment:
    """How one covariate was aligned to one target: the data-quality summary counts these."""

    target: str
    covariate: str
    sessions: int  # target sessions aligned
    filled: int  # target sessions that reuse the covariate close of the session before (holiday, calendar offset)
    no_value_yet: int  # target sessions before the covariate's first known close (left NaN)
    first_value: str | None  # the first target session with a value (ISO date)


def close_times(calendar: str, ds: pd.DatetimeIndex, *, latest: bool) -> np.ndarray:
    """Each session's close on the UTC clock (int64 ns) from its exchange calendar.

    24/7 and 24/5 daily bars close at the next UTC midnight. A date the calendar does not know as a session (a
    non-session row kept by ingest) gets its next midnight when `latest` (a covariate: known as late as possible)
    and its own midnight otherwise (a target: as early as possible), so an unknown close never lets a value in early.
    """
    ds = pd.DatetimeIndex(ds).as_unit("ns")
    fallback = ds + pd.Timedelta(days=1) if latest else ds
    if calendar in ALWAYS_OPEN:
        return (ds + pd.Timedelta(days=1)).asi8.copy()
    index, utc = _closes_ns(calendar)
    pos = index.get_indexer(ds)
    known = pos >= 0
    out = fallback.asi8.copy()
    out[known] = utc[pos[known]]
    return out


@lru_cache(maxsize=16)
def _closes_ns(calendar: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(session dates, UTC closes as int64 ns) of a calendar, converted once."""
    closes = session_closes(calendar)
    utc = pd.DatetimeIndex(closes.dt.tz_convert("UTC").dt.tz_localize(None)).as_unit("ns")
    return pd.DatetimeIndex(closes.index).as_unit("ns"), utc.asi8


def align(
    target_ds: pd.DatetimeIndex, target_calendar: str, covariate: CovariateSeries
) -> tuple[np.ndarray, np.ndarray]:
    """(close as known at each target close, index of the covariate session used or -1) for every target session."""
    target_ds = pd.DatetimeIndex(target_ds)
    left = pd.DataFrame({"t": close_times(target_calendar, target_ds, latest=False), "row": np.arange(len(target_ds))})
    right = pd.DataFrame(
        {"t": close_times(covariate.calendar, covariate.ds, latest=True), "src": np.arange(len(covariate.ds))}
    )
    order = np.argsort(left["t"].to_numpy(), kind="stable")
    joined = pd.merge_asof(
        left.iloc[order], right.sort_values("t", kind="stable"), on="t", direction="backward", allow_exact_matches=True
    )
    src = np.full(len(target_ds), -1, dtype=np.int64)
    src[joined["row"].to_numpy()] = joined["src"].fillna(-1).to_numpy(dtype=np.int64)
    values = np.where(src >= 0, covariate.y[np.maximum(src, 0)] if len(covariate.y) else np.nan, np.nan)
    return values.astype(float), src


def covariate_frame(
    target_ds: pd.DatetimeIndex,
    target_calendar: str,
    covariates: Sequence[CovariateSeries],
    config: CovariateConfig,
    *,
    target: str = "",
) -> tuple[pd.DataFrame, list[Alignment]]:
    """The covariate columns (CovariateConfig.columns order) on one target's sessions, and how each was aligned."""
    target_ds = pd.DatetimeIndex(target_ds)
    cols: dict[str, np.ndarray] = {}
    counts = []
    by_ticker = {c.ticker: c for c in covariates}
    for ticker in config.tickers:
        cov = by_ticker[ticker]
        level, src = align(target_ds, target_calendar, cov)
        with np.errstate(divide="ignore", invalid="ignore"):
            logret = np.concatenate([[np.nan], np.diff(np.log(level))]) if len(level) else level
        for kind, values in ((LOGRET, logret), (LEVEL, level)):
            for lag in (0, *config.lags):
                shifted = np.concatenate([np.full(min(lag, len(values)), np.nan), values[: len(values) - lag]])
                cols[column(ticker, kind, lag)] = shifted
        known = src >= 0
        filled = int(np.sum(known[1:] & (src[1:] == src[:-1]))) if len(src) > 1 else 0
        first = target_ds[int(np.argmax(known))] if known.any() else None
        counts.append(
            Alignment(
                target=target,
                covariate=ticker,
                sessions=len(target_ds),
                filled=filled,
                no_value_yet=int(np.sum(~known)),
                first_value=None if first is None else first.date().isoformat(),
            )
        )
    return pd.DataFrame(cols, index=range(len(target_ds)))[config.columns()], counts


def check_known_by(alignments: Sequence[Alignment], first_cutoffs: Mapping[str, pd.Timestamp]) -> None:
    """DataError naming the covariate and the dates when one has no value known at a target's first cutoff."""
    for a in alignments:
        cutoff = first_cutoffs.get(a.target)
        if cutoff is None:
            continue
        if a.first_value is None or pd.Timestamp(a.first_value) > pd.Timestamp(cutoff):
            since = f"its first value is known on {a.first_value}" if a.first_value else "it has no value at all"
            raise DataError(
                f"covariate {a.covariate}: no value known by {a.target}'s first cutoff "
                f"{pd.Timestamp(cutoff).date()} ({since}); use a covariate with a longer history or later folds"
            )


def split_covariates(
    panel: pd.DataFrame, config: CovariateConfig, calendars: Mapping[str, str | None]
) -> tuple[pd.DataFrame, list[CovariateSeries]]:
    """(the panel of the tickers to forecast, each covariate's series): covariates are inputs, never targets.

    A covariate missing from the panel is a DataError naming it with the closest tickers the source has.
    """
    have = sorted(panel[ID].astype(str).unique())
    missing = [t for t in config.tickers if t not in have]
    if missing:
        import difflib

        hints = {t: difflib.get_close_matches(t, have, n=3, cutoff=0.5) for t in missing}
        said = "; ".join(f"{t!r}" + (f" (did you mean {', '.join(h)}?)" if h else "") for t, h in hints.items())
        shown = have[:30] + (["..."] if len(have) > 30 else [])
        raise DataError(f"covariate(s) not found in the source: {said}; the source has {shown}")
    is_cov = panel[ID].astype(str).isin(config.tickers)
    if is_cov.all():
        raise DataError(f"every ticker of the source is a covariate ({list(config.tickers)}); name tickers to forecast")
    series = []
    for ticker in config.tickers:
        calendar = calendars.get(ticker)
        if not calendar:
            raise DataError(f"covariate {ticker}: its trading calendar is unknown; pass --calendar {ticker}=NAME")
        series.append(CovariateSeries.from_panel(panel, ticker, calendar))
    return panel.loc[~is_cov].reset_index(drop=True), series


def with_covariates(
    frames: Mapping[str, pd.DataFrame],
    covariates: Sequence[CovariateSeries],
    config: CovariateConfig,
    calendars: Mapping[str, str | None],
) -> tuple[dict[str, pd.DataFrame], list[Alignment]]:
    """Each target's frame (sorted by ds) with its covariate columns appended, and every alignment's counts."""
    out: dict[str, pd.DataFrame] = {}
    counts: list[Alignment] = []
    for uid, frame in frames.items():
        calendar = calendars.get(uid)
        if not calendar:
            raise DataError(f"{uid}: its trading calendar is unknown, so covariates cannot be aligned to its closes")
        frame = frame.sort_values(DS, kind="stable").reset_index(drop=True)
        cov, aligned = covariate_frame(pd.DatetimeIndex(frame[DS]), calendar, covariates, config, target=uid)
        out[uid] = pd.concat([frame.drop(columns=[c for c in cov.columns if c in frame.columns]), cov], axis=1)
        counts += aligned
    return out, counts


def covariate_problems(
    uid: str,
    seen: pd.DataFrame,
    cutoffs: Sequence[tuple[int, pd.Timestamp]],
    covariates: Sequence[CovariateSeries],
    config: CovariateConfig,
    calendar: str,
    *,
    rtol: float = 1e-9,
) -> list[str]:
    """The leakage audit of covariate columns: at each (fold, cutoff), recomputed from only the covariate closes
    known at the target's close of the cutoff, every value up to the cutoff must equal what the models saw."""
    columns = config.columns()
    absent = sorted(set(columns) - set(seen.columns))
    if absent:
        return [f"{uid}: the run's features lack the covariate columns {absent}; cannot audit them"]
    seen = seen.sort_values(DS, kind="stable").reset_index(drop=True)
    ds = pd.DatetimeIndex(seen[DS])
    values = seen[columns].to_numpy(dtype=float)
    out = []
    for fold, cutoff in cutoffs:
        n = int(ds.searchsorted(pd.Timestamp(cutoff), side="right"))
        known = [c.known_at(calendar, pd.Timestamp(cutoff)) for c in covariates]
        again, _ = covariate_frame(ds[:n], calendar, known, config)
        a, b = again.to_numpy(dtype=float), values[:n]
        same = np.isclose(a, b, rtol=rtol, atol=0.0) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            rows, cols = np.nonzero(~same)
            names = sorted({columns[int(c)] for c in cols})
            out.append(
                f"{uid} fold {fold}: covariate columns {names} change when covariate closes not yet known at the "
                f"cutoff {pd.Timestamp(cutoff):%Y-%m-%d} are removed (first at {ds[int(rows.min())]:%Y-%m-%d})"
            )
    return out
