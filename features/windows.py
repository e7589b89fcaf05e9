"""Sliding windows for sequence models, with one documented alignment so no target row leaks into its inputs.

Alignment (0-based rows of a (T, F) array):
    sample i  inputs  = rows i .. i+window-1            (the window ends at row e = i+window-1, the "origin")
              targets = rows i+window .. i+window+horizon-1  (the `horizon` rows strictly after the origin)
So every input row is at or before the origin and every target row after it. With horizon=0 the windows cover
every origin e = window-1 .. T-1 (N = T-window+1); with horizon>0 only origins whose targets exist
(N = T-window-horizon+1).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from common.errors import DataError


def _as_2d(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"windows: values must be (T,) or (T, F), got shape {arr.shape}")
    return arr


def sliding_windows(
    values: np.ndarray,
    *,
    window: int,
    horizon: int = 0,
    target: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """All (input window, next-`horizon` targets) pairs of a series, aligned as in the module docstring.

    Args:
        values: (T, F) inputs (a 1-D array is one feature).
        window: input length, >= 1.
        horizon: number of target steps after each window; 0 returns inputs only.
        target: (T,) array the targets are taken from; defaults to column 0 of `values`.

    Returns:
        X of shape (N, window, F) and Y of shape (N, horizon), or (X, None) when horizon == 0.
        `supervised_windows` is the same with horizon >= 1 and Y always an array.
    """
    if horizon <= 0:  # a negative horizon fails in _inputs with the shared message
        return _inputs(_as_2d(values), window=window, horizon=horizon), None
    return supervised_windows(values, window=window, horizon=horizon, target=target)


def supervised_windows(
    values: np.ndarray,
    *,
    window: int,
    horizon: int,
    target: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs for a direct multi-step model: X (N, window, F) and the next `horizon` targets Y (N, horizon).

    Aligned as in the module docstring; `target` defaults to column 0 of `values`. Needs horizon >= 1.
    """
    if horizon < 1:
        raise DataError(f"windows: supervised windows need horizon >= 1, got {horizon}; use sliding_windows")
    arr = _as_2d(values)
    X = _inputs(arr, window=window, horizon=horizon)
    n_rows, n = arr.shape[0], X.shape[0]
    tgt = arr[:, 0] if target is None else np.asarray(target, dtype=float).reshape(-1)
    if tgt.shape[0] != n_rows:
        raise DataError(f"windows: target has {tgt.shape[0]} rows, values have {n_rows}")
    Y = np.ascontiguousarray(sliding_window_view(tgt[window:], horizon)[:n])
    return X, Y


def _inputs(arr: np.ndarray, *, window: int, horizon: int) -> np.ndarray:
    """The (N, window, F) input windows of a (T, F) array whose `horizon` targets exist."""
    n_rows = arr.shape[0]
    if window < 1 or horizon < 0:
        raise DataError(f"windows: need window >= 1 and horizon >= 0, got window={window}, horizon={horizon}")
    n = n_rows - window - horizon + 1
    if n < 1:
        raise DataError(
            f"windows: {n_rows} rows are too few for window={window} + horizon={horizon}; "
            f"need at least {window + horizon} rows, use a longer history or a shorter window"
        )
    # (T-window+1, F, window) view -> (N, window, F) copy, so callers may modify X freely.
    return np.ascontiguousarray(sliding_window_view(arr, window, axis=0)[:n].transpose(0, 2, 1))


def windows_ending_at(values: np.ndarray, ends: np.ndarray, *, window: int) -> np.ndarray:
    """Input windows ending AT each row index in `ends` (inclusive): X[k] = values[ends[k]-window+1 : ends[k]+1].

    Used to forecast many origins in one batched call; each window only sees rows up to its own origin.
    """
    arr = _as_2d(values)
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    if window < 1:
        raise DataError(f"windows: need window >= 1, got {window}")
    if ends.size and (ends.min() < window - 1 or ends.max() >= arr.shape[0]):
        raise DataError(
            f"windows: origins must lie in [{window - 1}, {arr.shape[0] - 1}] for window={window}, "
            f"got min {ends.min()} max {ends.max()}; the first {window - 1} rows cannot end a full window"
        )
    idx = ends[:, None] + np.arange(-window + 1, 1)[None, :]
    return arr[idx]
