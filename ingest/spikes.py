"""Values a feed got wrong: round-trip spikes (refused or repaired) and values too large for float64 (refused).

Part of ingest validation (ingest.validate runs these rules in its per-ticker order). The policy:
- Overflow: a price or volume beyond OVERFLOW_LIMIT (1e150), or one that reads as infinite ('inf', '1e400'), is
  refused with the ticker, column and rows: squared errors and sums of such values overflow float64 to inf, which
  would make scaled metrics 0 and every smoothing fit fail. Nothing above the limit is kept or repaired silently.
- Round-trip spike: the target jumps beyond x3 or /3 and, within SPIKE_SESSIONS (20) sessions, jumps back the
  other way to within x2 of the pre-spike level (a x100 spike that reverts after 8 sessions, a x1000 typo for one
  session, a 1e308 cell). That is a feed error, not a split. By default (spikes='error') ingest stops with ONE
  DataError naming the ticker, the column, the first and last spike session and the fix. Only spikes='repair'
  (CLI --spikes repair) changes data: the spike sessions get the previous (pre-spike) session's prices, counted in
  `spikes_repaired` and named in a warning. Repair runs before the overflow check, so a repaired 1e308 cell is gone.
- A one-way jump (an unadjusted split: no return) is warned about and counted (`jumps_flagged`), never altered.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from common.errors import DataError
from common.schema import DS, PRICE_COLUMNS, VOLUME
from ingest.messages import SHOW_ROWS, show_day, show_rows
from ingest.quality import TickerQuality
from ingest.spec import SourceSpec

log = logging.getLogger(__name__)

JUMP_LIMIT = math.log(3.0)  # |log return| above this (a x3 or /3 move in one session) is worth a warning
OVERFLOW_LIMIT = 1e150  # beyond this, squared differences (and their sums) overflow float64
SPIKE_SESSIONS = 20  # a jump reverted within this many sessions is a round-trip spike (a feed error)
SPIKE_TOLERANCE = math.log(2.0)  # ... when it comes back to within x2 of the pre-spike level


def handle_spikes(g: pd.DataFrame, t: str, target: str, spec: SourceSpec, q: TickerQuality) -> pd.DataFrame:
    """Round-trip spikes of the target: refused (spikes='error') or set to the pre-spike prices (counted, warned)."""
    y = g[target].to_numpy(dtype="float64")
    spikes = find_spikes(y)
    if not spikes:
        return g
    ds = g[DS]
    shown = "; ".join(_describe_spike(y, ds, first, last) for first, last in spikes[:SHOW_ROWS])
    more = f"; and {len(spikes) - SHOW_ROWS} more" if len(spikes) > SHOW_ROWS else ""
    if spec.spikes == "error":
        raise DataError(
            f"{t}: column {target!r} has {len(spikes)} round-trip spike{'s' if len(spikes) > 1 else ''} (a jump "
            f"beyond x3 or /3 that comes back within {SPIKE_SESSIONS} sessions: a feed error, not a split): "
            f"{shown}{more}; fix the source, or pass spikes='repair' (CLI --spikes repair) to set those sessions to "
            "the previous session's prices (counted in the quality report)"
        )
    out = g.copy()
    cols = [out.columns.get_loc(c) for c in PRICE_COLUMNS]
    for first, last in spikes:
        out.iloc[first : last + 1, cols] = out.iloc[[first - 1] * (last - first + 1), cols].to_numpy()
    q.spikes_repaired = sum(last - first + 1 for first, last in spikes)
    msg = (
        f"{q.spikes_repaired} session{'s' if q.spikes_repaired > 1 else ''} of {len(spikes)} round-trip "
        f"spike{'s' if len(spikes) > 1 else ''} in {target} set to the previous session's prices "
        f"(spikes='repair'): {shown}{more}"
    )
    q.warnings.append(msg)
    log.warning("%s: %s", t, msg)
    return out


def find_spikes(y: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each round-trip spike in a positive series: a jump beyond x3 or /3 at `first`,
    then within SPIKE_SESSIONS sessions a jump the other way beyond x3 back to within x2 of y[first - 1]."""
    if len(y) < 3:
        return []
    with np.errstate(all="ignore"):
        logy = np.log(np.asarray(y, dtype="float64"))
    lr = np.diff(logy)
    spikes: list[tuple[int, int]] = []
    done = 0  # positions before this belong to a spike already found
    for i in (int(k) + 1 for k in np.flatnonzero(np.abs(lr) > JUMP_LIMIT)):
        if i < done:
            continue
        up = np.sign(lr[i - 1])
        for j in range(i + 1, min(i + SPIKE_SESSIONS, len(y) - 1) + 1):
            if -up * lr[j - 1] > JUMP_LIMIT and abs(logy[j] - logy[i - 1]) <= SPIKE_TOLERANCE:
                spikes.append((i, j - 1))
                done = j + 1
                break
    return spikes


def _describe_spike(y: np.ndarray, ds: pd.Series, first: int, last: int) -> str:
    """'2024-03-05 .. 2024-03-14 (8 sessions): 70000 -> 7e+06 (x100), back to 70500 on 2024-03-15'."""
    n = last - first + 1
    return (
        f"{show_day(ds.iloc[first])} .. {show_day(ds.iloc[last])} ({n} session{'s' if n > 1 else ''}): "
        f"{y[first - 1]:.6g} -> {y[first]:.6g} (x{y[first] / y[first - 1]:.3g}), "
        f"back to {y[last + 1]:.6g} on {show_day(ds.iloc[last + 1])}"
    )


def check_overflow(g: pd.DataFrame, t: str) -> None:
    """Prices and volume beyond OVERFLOW_LIMIT are refused: their squared differences overflow float64."""
    for col in (*PRICE_COLUMNS, VOLUME):
        big = g[col].abs() > OVERFLOW_LIMIT
        if big.any():
            raise_overflow(g, t, col, big)


def raise_overflow(g: pd.DataFrame, t: str, col: str, bad: pd.Series) -> None:
    raise DataError(
        f"{t}: column {col!r} has {int(bad.sum())} values beyond {OVERFLOW_LIMIT:.0e} or infinite, too large for "
        f"float64 arithmetic (squared errors overflow to inf): {show_rows(g, bad, [col])}; fix the source (a typo or a "
        "feed error) or set start/end to exclude those rows"
    )
