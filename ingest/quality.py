"""QualityReport: every change validation made to the data, counted per ticker, so nothing is altered silently."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, Field

from common.schema import ID

# Counters in the order they are reported; each is a number of rows.
COUNTS: tuple[str, ...] = (
    "rows_in",
    "rows_out",
    "outside_range_dropped",
    "exact_duplicates_dropped",
    "rows_sorted",
    "tz_converted",
    "times_normalised",
    "zero_volume_dropped",
    "ffilled",
    "spikes_repaired",
    "non_session_rows",
    "jumps_flagged",
    "flat_target",
    "rows_removed_from_store",
)
# Counters that describe the validated series rather than rows that were changed: recomputed on the whole stored
# history of an incremental ingest, so they are not added up across fetches.
FLAGS: tuple[str, ...] = ("jumps_flagged", "flat_target")
LABELS = {
    "outside_range_dropped": "outside start/end dropped",
    "exact_duplicates_dropped": "exact duplicates dropped",
    "rows_sorted": "rows moved by sorting",
    "tz_converted": "timestamps converted to exchange-local dates",
    "times_normalised": "intraday times dropped to the date",
    "zero_volume_dropped": "zero-volume unchanged-price rows dropped (non-sessions)",
    "ffilled": "target gaps forward-filled",
    "spikes_repaired": "round-trip spike sessions repaired to the previous session's prices (spikes='repair')",
    "non_session_rows": "rows on days that are no session of the ticker's calendar (kept)",
    "jumps_flagged": "suspicious jumps beyond x3 or /3 (left as is)",
    "flat_target": "sessions of a target that never changes",
    "rows_removed_from_store": "stored rows removed (no longer in the file)",
}
SOURCE_ROW = "*"  # unique_id of report rows about the source as a whole (ignored files)


class TickerQuality(BaseModel):
    """What happened to one ticker's rows between the source and the panel."""

    unique_id: str
    rows_in: int = 0
    rows_out: int = 0
    outside_range_dropped: int = 0
    exact_duplicates_dropped: int = 0
    rows_sorted: int = 0
    tz_converted: int = 0
    times_normalised: int = 0
    zero_volume_dropped: int = 0
    ffilled: int = 0
    spikes_repaired: int = 0  # spikes='repair': sessions of round-trip spikes set to the previous session's prices
    non_session_rows: int = 0  # rows dated on a weekend or holiday of the ticker's calendar; kept, named in a warning
    jumps_flagged: int = 0  # sessions whose target moved beyond x3 or /3 (an unadjusted split?); warned, not altered
    flat_target: int = 0  # all sessions, when the target never changes (a suspended ticker?); warned, not altered
    rows_removed_from_store: int = 0  # file sources: stored rows inside the file's span that the file no longer has
    target: str | None = None
    calendar: str | None = None  # the exchange-calendars name (or 24/7, 24/5) its sessions and forecast dates follow
    calendar_how: str | None = None  # why: suffix, ticker form, assumed, --calendar or stored
    first_session: str | None = None
    last_session: str | None = None
    fetch_start: str | None = None  # live sources: the first date requested this run (None = full history)
    warnings: list[str] = Field(default_factory=list)


def describe_how(how: str | None) -> str:
    """How a calendar was chosen, in the words the summary uses."""
    return {
        "assumed": "no exchange suffix: US listing assumed; --calendar to change",
        "suffix": "from the exchange suffix",
        "ticker form": "from the ticker's form",
        "--calendar": "from --calendar",
        "stored": "stored by an earlier ingest",
    }.get(how or "", how or "")


class CovariateAlignment(BaseModel):
    """How one covariate was aligned to one target's closes (features.covariates): counted, never silent."""

    target: str
    covariate: str
    sessions: int
    filled: int  # target sessions that reuse the covariate's previous close (its holiday, another calendar)
    no_value_yet: int  # target sessions before the covariate's first close known at the target's close (NaN)
    first_value: str | None = None

    def line(self) -> str:
        first = f", first value on {self.first_value}" if self.first_value else ", no value at all"
        return (
            f"{self.target}: covariate {self.covariate} aligned as of each close: {self.filled} of {self.sessions} "
            f"sessions forward-filled, {self.no_value_yet} with no value yet{first}"
        )


class QualityReport(BaseModel):
    """Data-quality summary of one ingest: per-ticker counts, warnings and the files the source skipped."""

    source: str
    tickers: dict[str, TickerQuality] = Field(default_factory=dict)
    ignored_files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # how the source was read (a column taken as close, ...)
    start: str | None = None  # the run's start/end (None: no bound), so the summary can say what they cut
    end: str | None = None
    covariates: list[CovariateAlignment] = Field(default_factory=list)  # backtests with --covariates

    def ticker(self, unique_id: str) -> TickerQuality:
        """The (created on first use) entry of one ticker."""
        if unique_id not in self.tickers:
            self.tickers[unique_id] = TickerQuality(unique_id=unique_id)
        return self.tickers[unique_id]

    @property
    def warnings(self) -> list[str]:
        """All warnings, each prefixed with its ticker."""
        return [f"{t}: {w}" for t, q in self.tickers.items() for w in q.warnings]

    def to_frame(self) -> pd.DataFrame:
        """Tidy table `unique_id, check, count, detail`: one row per ticker and check (and per warning)."""
        rows: list[dict[str, object]] = []
        for t, q in self.tickers.items():
            for name in COUNTS:
                detail = f"{q.first_session} .. {q.last_session}" if name == "rows_out" else ""
                if name == "rows_in" and q.fetch_start:
                    detail = f"fetched from {q.fetch_start}"
                rows.append({ID: t, "check": name, "count": getattr(q, name), "detail": detail})
            rows.append({ID: t, "check": "target", "count": q.rows_out, "detail": q.target or ""})
            calendar = f"{q.calendar} ({q.calendar_how})" if q.calendar else ""
            rows.append({ID: t, "check": "calendar", "count": q.rows_out, "detail": calendar})
            rows.extend({ID: t, "check": "warning", "count": 1, "detail": w} for w in q.warnings)
        for a in self.covariates:
            detail = f"{a.covariate}: {a.no_value_yet} sessions with no value yet, first value {a.first_value}"
            rows.append({ID: a.target, "check": "covariate_ffilled", "count": a.filled, "detail": detail})
        if self.ignored_files:
            detail = ", ".join(self.ignored_files)
            rows.append({ID: SOURCE_ROW, "check": "ignored_files", "count": len(self.ignored_files), "detail": detail})
        frame = pd.DataFrame(rows, columns=[ID, "check", "count", "detail"])
        return frame.astype({ID: str, "check": str, "count": "int64", "detail": str})

    def summary_lines(self) -> list[str]:
        """Short human lines: what start/end cut, then sessions, target and calendar per ticker and only the
        checks that changed something."""
        lines = [cut] if (cut := self.range_line()) else []
        for t, q in self.tickers.items():
            # rows cut by start/end are said once, for every ticker, by range_line
            changes = [f"{getattr(q, n)} {LABELS[n]}" for n in LABELS if getattr(q, n) and n != "outside_range_dropped"]
            head = f"{t}: {q.rows_out} sessions {q.first_session} .. {q.last_session}, target {q.target}"
            if q.calendar:
                head += f", calendar {q.calendar} ({describe_how(q.calendar_how)})"
            lines.append(head + (f"; {'; '.join(changes)}" if changes else ""))
            lines.extend(f"{t}: warning: {w}" for w in q.warnings)
        lines.extend(a.line() for a in self.covariates)
        lines.extend(self.notes)
        if self.ignored_files:
            lines.append(f"ignored {len(self.ignored_files)} file(s) of another type: {', '.join(self.ignored_files)}")
        return lines

    def range_line(self) -> str | None:
        """One line saying how many rows start/end cut (per ticker), or None when they cut nothing."""
        cut = {t: q.outside_range_dropped for t, q in self.tickers.items() if q.outside_range_dropped}
        if not cut:
            return None
        total = sum(cut.values())
        rows = f"{total:,} row{'s' if total != 1 else ''}"
        if self.start and self.end:
            what = f"--start {self.start} and --end {self.end} cut {rows} outside them"
        elif self.end:
            what = f"--end {self.end} cut {rows} after it"
        else:
            what = f"--start {self.start} cut {rows} before it"
        per = ", ".join(f"{t} {n:,}" for t, n in cut.items())
        return f"{what} ({per}); widen --start/--end to keep them"

    def to_dict(self) -> dict:
        """JSON-serialisable dict (dates as ISO strings)."""
        return self.model_dump(mode="json")
