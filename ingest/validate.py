"""Validation: turn a raw long frame into the clean panel, counting every change and refusing what cannot be fixed.

Each refusal is a DataError naming the ticker, the column, the first offending rows (row number in the source file
or response, and the date) and the fix. Each change (dropped duplicates, sorting, time-zone conversion, filled
gaps, dropped holiday rows) is counted in the QualityReport; suspicious jumps and a target that never changes are
warned about and counted, never altered.

The rules for values a feed got wrong (overflow, round-trip spikes) live in ingest/spikes.py, the wording of
offending rows in ingest/messages.py; this module runs every rule in its per-ticker order (_validate_ticker).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype, is_string_dtype
from pandas.tseries.api import guess_datetime_format

from common.errors import ConfigError, DataError
from common.redact import redact
from common.schema import ADJ_CLOSE, BAR_COLUMNS, CLOSE, DS, ID, PANEL_COLUMNS, PRICE_COLUMNS, VOLUME, Y
from features.calendar import HOW_STORED, HOW_USER, exchange_for, infer_calendar, non_sessions, weekend_share
from ingest.columns import OPTIONAL_COLUMNS
from ingest.messages import SHOW_ROWS, show_day, show_rows, show_span
from ingest.quality import QualityReport, TickerQuality
from ingest.spec import SourceSpec
from ingest.spikes import JUMP_LIMIT, check_overflow, handle_spikes, raise_overflow

log = logging.getLogger(__name__)

CADENCE_MIN_ROWS = 14  # two weeks of rows before a cadence is judged
WEEKEND_SHARE = 0.2  # a 7-day series has 2/7 = 0.29 of its rows on weekends; an exchange's almost none
_EXCHANGE_TZ = {"XNYS": "America/New_York", "XNAS": "America/New_York", "XKRX": "Asia/Seoul", "24/5": "UTC"}


def validate(
    raw: pd.DataFrame, spec: SourceSpec, *, stored_calendars: dict[str, str] | None = None
) -> tuple[pd.DataFrame, QualityReport]:
    """Validate a raw long frame (see ingest.columns.RAW_COLUMNS) into the panel and its quality report.

    Returns the panel with exactly PANEL_COLUMNS, sorted by unique_id and ds, and the per-ticker report.
    Raw row labels (the index) are quoted in error messages as row numbers. Each ticker's calendar is the
    run's choice (spec.calendars), else `stored_calendars` (an earlier ingest's), else its spelling's.
    """
    report = QualityReport(
        source=spec.source,
        ignored_files=list(raw.attrs.get("ignored_files", [])),
        notes=list(raw.attrs.get("column_notes", [])),
    )
    report.start, report.end = (d.isoformat() if d else None for d in (spec.start, spec.end))
    where = _where(spec)
    _require_columns(raw, spec, where=where)
    raw = _fast_types(_complete(raw))
    positions = raw.groupby(ID, sort=False).indices  # one pass over the ids, not one scan per ticker
    body = raw.drop(columns=[ID])
    parts = []
    for ticker in _select_tickers(raw, spec, where=where):
        rows = body.iloc[positions[ticker]].assign(**{ID: ticker})
        q = report.ticker(ticker)
        q.calendar, q.calendar_how = choose_calendar(ticker, spec, stored_calendars or {})
        parts.append(_validate_ticker(rows, ticker, spec=spec, q=q))
    del raw, body
    panel = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PANEL_COLUMNS))
    return _panel_dtypes(panel), report


def _validate_ticker(g: pd.DataFrame, t: str, *, spec: SourceSpec, q: TickerQuality) -> pd.DataFrame:
    """All rules for one ticker, in an order where each rule sees the rows the earlier ones left."""
    q.rows_in = len(g)
    g = _parse_dates(g, t, q, exchange=q.calendar or exchange_for(t))
    g = _filter_range(g, t, spec, q)
    g = _to_numeric(g, t)
    g = _sort(g, q)
    g = _drop_exact_duplicates(g, t, q)
    _check_positive(g, t)
    target = _choose_target(g, t, spec)
    g = _drop_zero_volume(g, target, q)
    g = _cut_before_start(g, spec, q)
    _check_calendar(g, t, q)
    g = _fill_gaps(g, t, target, spec, q)
    g = handle_spikes(g, t, target, spec, q)
    check_overflow(g, t)
    g = g.assign(**{Y: g[target]})
    _warn_missing_bars(g, t, target, q)
    _warn_jumps(g, t, target, q)
    _warn_flat(g, t, target, q)
    if len(g) < spec.min_sessions:
        raise DataError(
            f"{t}: {len(g)} sessions after validation ({show_span(g)}), "
            f"need at least min_sessions={spec.min_sessions}; widen start/end or lower min_sessions"
        )
    q.rows_out, q.target = len(g), target
    q.first_session, q.last_session = (show_day(g[DS].iloc[0]), show_day(g[DS].iloc[-1])) if len(g) else (None, None)
    return g[list(PANEL_COLUMNS)]


# ---------------------------------------------------------------------------------------------- frame-level checks


def _where(spec: SourceSpec) -> str:
    """The source as messages name it (credentials in a path or URL masked)."""
    return redact(f"{spec.source} {spec.path}") if spec.path else spec.source


def _require_columns(raw: pd.DataFrame, spec: SourceSpec, *, where: str) -> None:
    """Date, close and the ticker are required; adj_close too when it is the requested target."""
    required = [ID, DS, CLOSE] + ([ADJ_CLOSE] if spec.target == "adj_close" else [])
    missing = [c for c in required if c not in raw.columns]
    if missing:
        tickers = sorted(map(str, raw[ID].dropna().unique()))[:5] if ID in raw.columns else []
        names = {ID: "a ticker column (ticker/symbol/code)", DS: "Date", CLOSE: "Close", ADJ_CLOSE: "Adj Close"}
        raise DataError(
            f"{where}: tickers {tickers or '(unknown)'}: missing required column(s) {missing}; "
            f"the source has {[str(c) for c in raw.columns]}; add {', '.join(names[c] for c in missing)} "
            "(names match case-insensitively, with spaces/underscores/dashes alike)"
            + ("; or use target='auto'/'close'" if ADJ_CLOSE in missing else "")
        )


def _complete(raw: pd.DataFrame) -> pd.DataFrame:
    """Optional bar columns a caller's frame lacks become NaN; tickers become stripped strings."""
    out = raw.assign(**{c: np.nan for c in OPTIONAL_COLUMNS if c not in raw.columns})
    blank = out[ID].isna() | (out[ID].astype(str).str.strip() == "")
    if blank.any():
        raise DataError(
            f"column {ID!r} (ticker) is empty in {int(blank.sum())} rows: {show_rows(out, blank, [ID, DS])}; "
            "fill in the ticker or delete those rows"
        )
    return out.assign(**{ID: out[ID].astype(str).str.strip()})


def _fast_types(raw: pd.DataFrame) -> pd.DataFrame:
    """Convert whole text columns at once when every value is clean: prices and volume to float, plain ISO dates.

    The common case of a big file, vectorised once instead of per ticker. A column with any bad value is left as
    text: the per-ticker rules then name the ticker, the column and the rows, exactly as without this step.
    """
    out = {}
    for col in (*PRICE_COLUMNS, VOLUME):
        s = raw[col]
        if is_numeric_dtype(s) and not is_bool_dtype(s):
            continue
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        blank = s.isna() | (s.astype(str).str.strip() == "")
        if not (num.isna() & ~blank).any():
            out[col] = num
    if is_string_dtype(raw[DS]):
        try:
            days = pd.to_datetime(raw[DS], format="%Y-%m-%d", errors="coerce")  # exact: '2024-01-02 16:00' is not
        except (ValueError, TypeError):
            days = None
        if days is not None and days.notna().all():
            out[DS] = days.astype("datetime64[ns]")
    return raw.assign(**out) if out else raw


def _select_tickers(raw: pd.DataFrame, spec: SourceSpec, *, where: str) -> list[str]:
    """The requested tickers (all the frame has when none were asked for); an absent one lists what is available."""
    available = sorted(raw[ID].unique())
    if spec.tickers is None:
        if not available:
            raise DataError(f"{where}: no rows at all; check the file or the source")
        return available
    unknown = [t for t in spec.tickers if t not in set(available)]
    if unknown:
        hints = {t: a for t in unknown for a in available if a.upper() == t.upper()}
        if not hints:  # no case slip: the closest spellings the source has
            import difflib

            hints = {t: a for t in unknown for a in difflib.get_close_matches(t, available, n=1, cutoff=0.6)}
        hint = f" (did you mean {', '.join(repr(a) for a in hints.values())}?)" if hints else ""
        zeros = {t: a for t in unknown for a in available if t.isdigit() and a.isdigit() and t.lstrip("0") == a}
        if zeros:
            hint = (
                f" (did you mean {', '.join(repr(a) for a in zeros.values())}? its leading zeros were lost before "
                "pricecast read it - a spreadsheet or a numeric column; store tickers as text)"
            )
        shown = available[:30] + (["..."] if len(available) > 30 else [])
        raise DataError(
            f"unknown ticker(s) {unknown} in {where}{hint}; available: {shown}; "
            "check the spelling (KRX codes are 6-digit strings like '005930')"
        )
    return sorted(spec.tickers)


# ---------------------------------------------------------------------------------------------- dates


def _parse_dates(g: pd.DataFrame, t: str, q: TickerQuality, *, exchange: str) -> pd.DataFrame:
    """Dates to tz-naive midnights: tz-aware stamps become exchange-local dates, times are dropped (both counted)."""
    empty = g[DS].isna()
    if empty.any():
        raise DataError(
            f"{t}: column {DS!r} (Date) is empty in {int(empty.sum())} rows: {show_rows(g, empty, [DS, CLOSE])}; "
            "fill in the dates or delete those rows"
        )
    parsed, aware = _to_datetime(g[DS], t, exchange)
    if aware:
        q.tz_converted = len(g)
    day = parsed.dt.normalize()
    q.times_normalised = int((day != parsed).sum())
    return g.assign(**{DS: day.astype("datetime64[ns]")})


def _to_datetime(s: pd.Series, t: str, exchange: str) -> tuple[pd.Series, bool]:
    """Parse one consistent date format (or ISO 8601 throughout); returns naive local datetimes and tz-awareness."""
    if is_datetime64_any_dtype(s):
        parsed = s
    else:
        try:
            parsed = pd.to_datetime(s)  # infers the format from the first value, then holds every value to it
        except (ValueError, TypeError) as exc:
            if "timezone" in str(exc).lower():  # offsets differ across DST: parse each stamp with its own offset
                try:
                    stamps = [pd.Timestamp(v) for v in s]
                except (ValueError, TypeError):
                    _raise_bad_dates(s, t)
                return _localise(stamps, s.index, exchange), True
            try:
                parsed = pd.to_datetime(s, format="ISO8601")  # ISO variants (with/without time) are unambiguous
            except (ValueError, TypeError):
                _raise_bad_dates(s, t)
    if parsed.dt.tz is None:
        return parsed, False
    wall = parsed.dt.tz_localize(None)
    if _all_midnight(wall):
        return wall, True
    return parsed.dt.tz_convert(exchange_tz(exchange)).dt.tz_localize(None), True


def _localise(stamps: list[pd.Timestamp], index: pd.Index, exchange: str) -> pd.Series:
    """Naive session dates from tz-aware stamps with differing offsets (see _all_midnight for the rule)."""
    wall = pd.Series([ts.tz_localize(None) for ts in stamps], index=index, dtype="datetime64[ns]")
    if _all_midnight(wall):
        return wall
    tz = exchange_tz(exchange)
    return pd.Series([ts.tz_convert(tz).tz_localize(None) for ts in stamps], index=index, dtype="datetime64[ns]")


def _all_midnight(wall: pd.Series) -> bool:
    """True when every stamp is a midnight in its own zone: a date label, whose own calendar date is the session.

    yfinance writes exchange-local midnights and many feeds UTC midnights; converting a UTC midnight to New York
    would shift every date back a day. Stamps with a time of day are instants and go to the exchange's zone.
    """
    return bool((wall == wall.dt.normalize()).all())


@lru_cache(maxsize=16)
def exchange_tz(exchange: str) -> str:
    """The IANA time zone of an exchange-calendars name (a table for the common ones, the calendar otherwise)."""
    if exchange in _EXCHANGE_TZ:
        return _EXCHANGE_TZ[exchange]
    if exchange.startswith("24/"):
        return "UTC"
    import exchange_calendars as xc

    return str(xc.get_calendar(exchange).tz)


def _raise_bad_dates(s: pd.Series, t: str) -> None:
    """Explain why dates did not parse: values that are no date at all, or several formats mixed."""
    text = s.astype(str)
    each = pd.to_datetime(text, format="mixed", errors="coerce", utc=True)
    bad = each.isna()
    frame = pd.DataFrame({DS: text})
    if bad.any():
        raise DataError(
            f"{t}: column {DS!r} (Date) has {int(bad.sum())} unparseable dates: {show_rows(frame, bad, [DS])}; "
            "fix or delete those rows (write dates as YYYY-MM-DD)"
        )
    fmt = guess_datetime_format(text.iloc[0])
    odd = pd.to_datetime(text, format=fmt, errors="coerce").isna() if fmt else pd.Series(True, index=s.index)
    odd.iloc[0] = False
    raise DataError(
        f"{t}: column {DS!r} (Date) mixes date formats: row {s.index[0]} is {text.iloc[0]!r} ({fmt or 'unknown'}) "
        f"but {show_rows(frame, odd, [DS])}; write every date in one format (ISO YYYY-MM-DD) - "
        "dates like 01/04/2020 are ambiguous, so none is guessed"
    )


def _filter_range(g: pd.DataFrame, t: str, spec: SourceSpec, q: TickerQuality) -> pd.DataFrame:
    """Keep rows within [start, end] plus the last date before start (all counted); nothing inside is an error.

    The row before start stays until _cut_before_start, after the zero-volume rule, which compares each row with
    its predecessor: cutting first would hide the predecessor of a stale holiday row on the start date.
    """
    inside = pd.Series(True, index=g.index)
    if spec.start is not None:
        inside &= g[DS] >= pd.Timestamp(spec.start)
    if spec.end is not None:
        inside &= g[DS] <= pd.Timestamp(spec.end)
    if not inside.any():
        raise DataError(
            f"{t}: no rows between start={spec.start} and end={spec.end}; its data runs {show_span(g)}; widen start/end"
        )
    keep = inside.copy()
    if spec.start is not None:
        before = g[DS] < pd.Timestamp(spec.start)
        if before.any():
            keep |= g[DS] == g.loc[before, DS].max()
    q.outside_range_dropped = int((~keep).sum())
    return g[keep]


def _cut_before_start(g: pd.DataFrame, spec: SourceSpec, q: TickerQuality) -> pd.DataFrame:
    """Drop (and count) the predecessor row(s) _filter_range kept before start for the zero-volume rule."""
    if spec.start is None:
        return g
    before = g[DS] < pd.Timestamp(spec.start)
    q.outside_range_dropped += int(before.sum())
    return g[~before]


# ---------------------------------------------------------------------------------------------- calendars


def choose_calendar(ticker: str, spec: SourceSpec, stored: dict[str, str]) -> tuple[str, str]:
    """(calendar, how) of one ticker: --calendar, else the stored choice, else its spelling (features.calendar)."""
    asked = spec.calendar_for(ticker)
    if asked:
        return asked, HOW_USER
    if ticker in stored:
        return stored[ticker], HOW_STORED
    try:
        return infer_calendar(ticker)
    except ConfigError as exc:
        raise DataError(str(exc)) from None


def _check_calendar(g: pd.DataFrame, t: str, q: TickerQuality) -> None:
    """Count and name rows on non-sessions of the ticker's calendar; refuse a 7-day series on a weekday calendar.

    Rows on a weekend or holiday are kept (the data's dates are the sessions models see; the zero-volume rule has
    already dropped the stale holiday rows feeds insert) and named in a warning. A series with at least
    CADENCE_MIN_ROWS rows of which WEEKEND_SHARE or more fall on weekends trades every day: a weekday calendar
    would label its forecasts with wrong dates, so it stops with the fix.
    """
    exchange = q.calendar or exchange_for(t)
    ds = pd.DatetimeIndex(g[DS])
    weekend = weekend_share(ds)
    if exchange != "24/7" and len(ds) >= CADENCE_MIN_ROWS and weekend >= WEEKEND_SHARE:
        n = int(round(weekend * len(ds)))
        raise DataError(
            f"{t}: {n} of {len(ds)} rows ({show_span(g)}) fall on Saturdays or Sundays - a 7-day series - but its "
            f"calendar is {exchange} ({q.calendar_how}); pass --calendar {t}=24/7 (or --calendar 24/7 for every "
            "ticker) so forecasts get every day's dates"
        )
    off = non_sessions(exchange, ds)
    q.non_session_rows = int(off.sum())
    if off.any():
        shown = ", ".join(show_day(d) for d in ds[off][:SHOW_ROWS])
        more = f" and {int(off.sum()) - SHOW_ROWS} more" if off.sum() > SHOW_ROWS else ""
        msg = (
            f"{int(off.sum())} rows on days that are no {exchange} session ({shown}{more}); kept - "
            f"check the source, or pass --calendar {t}=NAME if {exchange} is not its exchange"
        )
        q.warnings.append(msg)
        log.warning("%s: %s", t, msg)


# ---------------------------------------------------------------------------------------------- values


def _to_numeric(g: pd.DataFrame, t: str) -> pd.DataFrame:
    """Prices and volume to float; text such as 'abc' or '1,234' is refused, never coerced to NaN."""
    out = {}
    for col in (*PRICE_COLUMNS, VOLUME):
        s = g[col]
        if s.dtype == np.float64 and not np.isinf(s.to_numpy()).any():  # already clean (see _fast_types)
            continue
        if is_numeric_dtype(s) and not is_bool_dtype(s):
            num = s.astype("float64")
            bad = pd.Series(np.isinf(num.to_numpy()), index=g.index)
        else:
            num = pd.to_numeric(s, errors="coerce").astype("float64")
            blank = s.isna() | (s.astype(str).str.strip() == "")
            bad = (num.isna() & ~blank) | np.isinf(num)
        inf = pd.Series(np.isinf(num.to_numpy()), index=g.index)
        if inf.any():
            raise_overflow(g.assign(**{col: num}), t, col, inf)
        if bad.any():
            raise DataError(
                f"{t}: column {col!r} has {int(bad.sum())} non-numeric values: {show_rows(g, bad, [col])}; "
                "fix the source (plain numbers with '.' as decimal point, no thousands separators) or delete the rows"
            )
        out[col] = num
    return g.assign(**out) if out else g


def _sort(g: pd.DataFrame, q: TickerQuality) -> pd.DataFrame:
    """Sort by date (stable); the number of rows that moved is counted."""
    order = np.argsort(g[DS].to_numpy(), kind="stable")
    moved = int((order != np.arange(len(order))).sum())
    q.rows_sorted = moved
    return g.iloc[order] if moved else g


def _drop_exact_duplicates(g: pd.DataFrame, t: str, q: TickerQuality) -> pd.DataFrame:
    """Drop repeated identical rows (counted); the same date with different values is refused."""
    if (np.diff(g[DS].to_numpy()) > np.timedelta64(0)).all():  # sorted by now: strictly increasing means no repeats
        return g
    exact = g.duplicated(subset=[DS, *BAR_COLUMNS], keep="first")
    g = g[~exact]
    conflict = g.duplicated(DS, keep=False)
    if conflict.any():
        first = g.loc[conflict, DS].iloc[0]
        same_day = g[g[DS] == first]
        cols = [c for c in BAR_COLUMNS if same_day[c].nunique(dropna=False) > 1]
        dates = g.loc[conflict, DS].drop_duplicates()
        raise DataError(
            f"{t}: {len(dates)} dates appear more than once with different {cols}, first {show_day(first)}: "
            f"{show_rows(g, conflict, cols)}; deduplicate the source (one row per date)"
        )
    q.exact_duplicates_dropped = int(exact.sum())
    return g


def _check_positive(g: pd.DataFrame, t: str) -> None:
    """Prices must be > 0 and volume >= 0 (NaN is a gap, handled later)."""
    for col in (*PRICE_COLUMNS, VOLUME):
        bad = g[col] < 0 if col == VOLUME else g[col] <= 0
        if bad.any():
            need = ">= 0" if col == VOLUME else "> 0"
            raise DataError(
                f"{t}: column {col!r} has {int(bad.sum())} values not {need}: {show_rows(g, bad, [col])}; "
                "fix or delete those rows (a price of 0 usually marks a missing value)"
            )


def _choose_target(g: pd.DataFrame, t: str, spec: SourceSpec) -> str:
    """adj_close when asked for or (auto) when the ticker has any, else close."""
    has_adj = bool(g[ADJ_CLOSE].notna().any())
    if spec.target == "adj_close" and not has_adj:
        raise DataError(
            f"{t}: target='adj_close' but column {ADJ_CLOSE!r} is empty for {t} ({show_span(g)}) or absent from the "
            "source; use target='close' or 'auto', or add an Adj Close column to the source"
        )
    if spec.target == "close":
        return CLOSE
    return ADJ_CLOSE if has_adj else CLOSE


def _drop_zero_volume(g: pd.DataFrame, target: str, q: TickerQuality) -> pd.DataFrame:
    """Drop zero-volume rows whose price repeats the previous row: feeds insert them on exchange holidays.

    Skipped for series that never report volume (indices, FX), where zero volume carries no information.
    """
    vol = g[VOLUME]
    if not (vol > 0).any():
        return g
    stale = (vol == 0) & (g[CLOSE] == g[CLOSE].shift()) & (g[target] == g[target].shift())
    q.zero_volume_dropped = int(stale.sum())
    return g[~stale]


def _fill_gaps(g: pd.DataFrame, t: str, target: str, spec: SourceSpec, q: TickerQuality) -> pd.DataFrame:
    """Empty target values: refused (gap_policy='error') or forward-filled for runs up to max_ffill sessions.

    A filled row carries the previous row's prices (all of them, so bars stay consistent) and keeps its volume.
    """
    gap = g[target].isna().to_numpy()
    if not gap.any():
        return g
    gaps = pd.Series(gap, index=g.index)
    lead = int(np.argmax(~gap)) if (~gap).any() else len(gap)
    if lead:
        fix = f"set start after {show_day(g[DS].iloc[lead - 1])}" if lead < len(gap) else "use another target"
        raise DataError(
            f"{t}: column {target!r} is empty in its first {lead} rows: "
            f"{show_rows(g, gaps.iloc[:lead], [DS, target])}; nothing precedes them to forward-fill from; "
            f"{fix} or fix the source"
        )
    if spec.gap_policy == "error":
        raise DataError(
            f"{t}: column {target!r} is empty in {int(gap.sum())} rows: {show_rows(g, gaps, [target])}; "
            f"fill them in the source or use gap_policy='ffill' (runs up to max_ffill={spec.max_ffill} sessions)"
        )
    run_id = (gaps != gaps.shift()).cumsum()[gaps]
    lengths = run_id.map(run_id.value_counts())
    too_long = lengths > spec.max_ffill
    if too_long.any():
        rows = run_id.index[run_id == run_id[too_long].iloc[0]]
        raise DataError(
            f"{t}: column {target!r} has a gap of {len(rows)} sessions from {show_day(g.loc[rows[0], DS])} to "
            f"{show_day(g.loc[rows[-1], DS])} (rows {rows[0]}..{rows[-1]}), longer than max_ffill={spec.max_ffill}; "
            "fix the source, raise max_ffill, or set start after the gap"
        )
    filled = g[list(PRICE_COLUMNS)].ffill()
    out = g.copy()
    out.loc[gaps, list(PRICE_COLUMNS)] = filled.loc[gaps]
    q.ffilled = int(gap.sum())
    return out


# ---------------------------------------------------------------------------------------------- warnings


def _warn_missing_bars(g: pd.DataFrame, t: str, target: str, q: TickerQuality) -> None:
    """Empty non-target bar columns are left as they are, but said."""
    for col in (c for c in PRICE_COLUMNS if c not in (target, ADJ_CLOSE)):
        n = int(g[col].isna().sum())
        if 0 < n < len(g):
            q.warnings.append(
                f"column {col!r} is empty in {n} rows (left empty), first {show_rows(g, g[col].isna(), [])}"
            )


def _warn_jumps(g: pd.DataFrame, t: str, target: str, q: TickerQuality) -> None:
    """Record (do not alter) one-way session moves beyond x3 or /3, the signature of an unadjusted split.

    Round-trip spikes never reach this rule: _handle_spikes refused or repaired them.
    """
    y = g[Y].to_numpy(dtype="float64")
    if len(y) < 2:
        return
    lr = np.abs(np.diff(np.log(y)))
    idx = np.flatnonzero(lr > JUMP_LIMIT) + 1
    q.jumps_flagged = len(idx)
    for i in idx[:SHOW_ROWS]:
        msg = (
            f"suspicious jump on {show_day(g[DS].iloc[i])}: {target} {y[i - 1]:.6g} -> {y[i]:.6g} "
            f"(x{y[i] / y[i - 1]:.3g}); left as is - an unadjusted split? use adjusted prices or check the source"
        )
        q.warnings.append(msg)
        log.warning("%s: %s", t, msg)
    if len(idx) > SHOW_ROWS:
        q.warnings.append(f"{len(idx) - SHOW_ROWS} more jumps beyond x3 or /3")


def _warn_flat(g: pd.DataFrame, t: str, target: str, q: TickerQuality) -> None:
    """Record (do not alter) a target that never changes: nothing to forecast, and scaled errors divide by zero."""
    y = g[Y].to_numpy(dtype="float64")
    if len(y) < 2 or not (y == y[0]).all():
        return
    q.flat_target = len(y)
    msg = (
        f"{target} is constant ({y[0]:.6g} in all {len(y)} sessions, {show_span(g)}); left as is - a suspended or "
        "delisted ticker? scaled errors (MASE, RMSSE) are undefined for it; check the source or drop the ticker"
    )
    q.warnings.append(msg)
    log.warning("%s: %s", t, msg)


def _panel_dtypes(panel: pd.DataFrame) -> pd.DataFrame:
    """Exact panel contract: string ids, ns-resolution naive dates, float bars, sorted by ticker then date."""
    out = panel.astype({ID: str, DS: "datetime64[ns]", **{c: "float64" for c in (*BAR_COLUMNS, Y)}})
    return out.sort_values([ID, DS], kind="stable").reset_index(drop=True)[list(PANEL_COLUMNS)]
