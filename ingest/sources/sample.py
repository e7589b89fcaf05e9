"""The bundled sample: public-domain daily bars of AAPL, GOOG, IBM, MSFT (and FB) 2000-2013 from bokeh_sampledata."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import pandas as pd

from common.errors import SourceError
from common.schema import ID
from ingest.columns import finish_raw, normalise_columns, one_based
from ingest.spec import SAMPLE_TICKERS, SourceSpec

SAMPLE_FILE = "stocks.csv.gz"
# Where backtest and forecast runs of the sample start unless --start says otherwise: ~2,000 sessions per ticker
# keep `make run` fast. Only the sample has a default start; file and live sources use all the history they have.
SAMPLE_START = date(2005, 3, 1)


def default_start(source: str, start: date | None) -> date | None:
    """The first session a backtest or forecast uses: `start`, else SAMPLE_START for the sample, else None (all)."""
    if start is None and source == "sample":
        return SAMPLE_START
    return start


def sample_start_note(source: str, start: date | None) -> str | None:
    """The line that says the sample's default start was used, or None when the run named its own start."""
    if start is None and source == "sample":
        return f"sample: using sessions from {SAMPLE_START.isoformat()} (--start to change)"
    return None


def sample_path() -> Path:
    """Where the installed bokeh_sampledata package keeps its stocks file (no download needed)."""
    try:
        path = Path(str(resources.files("bokeh_sampledata") / "_data" / SAMPLE_FILE))
    except ModuleNotFoundError:
        raise SourceError("the sample needs the bokeh_sampledata package; pip install bokeh-sampledata") from None
    if not path.is_file():
        raise SourceError(f"bokeh_sampledata has no {SAMPLE_FILE} at {path}; reinstall bokeh-sampledata")
    return path


def read_sample(spec: SourceSpec) -> pd.DataFrame:
    """Raw bars of the sample; without tickers, the four with the full 2000-2013 history (FB only when asked for)."""
    frame = pd.read_csv(sample_path(), dtype={"Ticker": str})
    raw = finish_raw(normalise_columns(one_based(frame), where=f"sample {SAMPLE_FILE}"))
    if spec.tickers is None:
        raw = raw[raw[ID].isin(SAMPLE_TICKERS)]
    return raw
