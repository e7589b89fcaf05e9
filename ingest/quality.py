"""QualityReport: every change validation made to the data, counted per ticker, so nothing is altered silently."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, Field

from features.schema import ID

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
    "jumps_flagged",
    "flat_target",
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
    "jumps_flagged": "suspicious jumps beyond x3 or /3 (left as is)",
    "flat_target": "sessions of a target that never changes",
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
    jumps_flagged: int = 0  # sessions whose target moved beyond x3 or /3 (an unadjusted split?); warned, not altered
    flat_target: int = 0  # all sessions, when the target never changes (a suspended ticker?); warned, not altered
    target: str | None = None
    first_session: str | None = None
    last_session: str | None = None
    fetch_start: str | None = None  # live sources: the first date requested this run (None = full history)
    warnings: list[str] = Field(default_factory=list)


class QualityReport(BaseModel):
    """Data-quality summary of one ingest: per-ticker counts, warnings and the files the source skipped."""

    source: str
    tickers: dict[str, TickerQuality] = Field(default_factory=dict)
    ignored_files: list[str] = Field(default_factory=list)

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
            rows.extend({ID: t, "check": "warning", "count": 1, "detail": w} for w in q.warnings)
        if self.ignored_files:
            detail = ", ".join(self.ignored_files)
            rows.append({ID: SOURCE_ROW, "check": "ignored_files", "count": len(self.ignored_files), "detail": detail})
        frame = pd.DataFrame(rows, columns=[ID, "check", "count", "detail"])
        return frame.astype({ID: str, "check": str, "count": "int64", "detail": str})

    def summary_lines(self) -> list[str]:
        """Short human lines: sessions and target per ticker, then only the checks that changed something."""
        lines = []
        for t, q in self.tickers.items():
            changes = [f"{getattr(q, n)} {LABELS[n]}" for n in LABELS if getattr(q, n)]
            head = f"{t}: {q.rows_out} sessions {q.first_session} .. {q.last_session}, target {q.target}"
            lines.append(head + (f"; {'; '.join(changes)}" if changes else ""))
            lines.extend(f"{t}: warning: {w}" for w in q.warnings)
        if self.ignored_files:
            lines.append(f"ignored {len(self.ignored_files)} file(s) of another type: {', '.join(self.ignored_files)}")
        return lines

    def to_dict(self) -> dict:
        """JSON-serialisable dict (dates as ISO strings)."""
        return self.model_dump(mode="json")
