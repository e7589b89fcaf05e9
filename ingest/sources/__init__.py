"""Data sources: bundled sample, CSV/Parquet files, yfinance, FinanceDataReader (KRX).

Every source returns the raw long frame of ingest.columns.RAW_COLUMNS (index = row number in the file or
response); ingest.validate turns it into the panel. Network libraries are imported only when fetched from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import date

import pandas as pd

from ingest.columns import empty_raw
from ingest.sources.live import DEFAULT_ATTEMPTS
from ingest.spec import FILE_SOURCES, SourceSpec


def read_source(
    spec: SourceSpec,
    *,
    starts: Mapping[str, date | None] | None = None,
    allow_empty: Collection[str] = (),
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Raw bars of `spec`.

    Live sources only: `starts` overrides spec.start per ticker and tickers in `allow_empty` may return no bars
    (incremental fetches of tickers the store already has); `attempts` and `sleep` drive the retries.
    """
    if spec.source == "sample":
        from ingest.sources.sample import read_sample

        return read_sample(spec)
    if spec.source in FILE_SOURCES:
        from ingest.sources.files import read_files

        return read_files(spec)
    return _read_live(spec, starts=starts or {}, allow_empty=allow_empty, attempts=attempts, sleep=sleep)


def _read_live(
    spec: SourceSpec,
    *,
    starts: Mapping[str, date | None],
    allow_empty: Collection[str],
    attempts: int,
    sleep: Callable[[float], None],
) -> pd.DataFrame:
    """One client call per ticker (yfinance or fdr), concatenated."""
    if spec.source == "yfinance":
        from ingest.sources.yahoo import fetch_yahoo as fetch
    else:
        from ingest.sources.fdr import fetch_fdr as fetch
    frames = []
    for t in spec.tickers or ():
        start = starts.get(t, spec.start)
        frames.append(fetch(t, start=start, end=spec.end, allow_empty=t in allow_empty, attempts=attempts, sleep=sleep))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames) if frames else empty_raw()
