"""Small numeric helpers shared by the statistical model families (baselines, smoothing, arima)."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import norm

from common.schema import LEVELS

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

    from models.base import Forecaster

Intervals = dict[int, tuple[np.ndarray, np.ndarray]]

_controller_lock = threading.Lock()
_controller: ThreadpoolController | None = None
_controller_missing = False


def normal_intervals(mean: np.ndarray, sd: np.ndarray, levels: tuple[int, ...] = LEVELS) -> Intervals:
    """Central Gaussian prediction intervals mean ± z·sd at each level (percent)."""
    mean = np.asarray(mean, dtype=float)
    sd = np.broadcast_to(np.asarray(sd, dtype=float), mean.shape)
    out: Intervals = {}
    for level in levels:
        z = float(norm.ppf(0.5 + level / 200.0))
        out[level] = (mean - z * sd, mean + z * sd)
    return out


def _blas_controller() -> ThreadpoolController | None:
    """A cached threadpoolctl controller (building one scans loaded libraries: ~20 ms), or None if unavailable."""
    global _controller, _controller_missing
    if _controller is None and not _controller_missing:
        with _controller_lock:
            if _controller is None and not _controller_missing:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:
                    _controller_missing = True
                else:
                    _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the block with one BLAS thread.

    statsmodels' optimisers (scipy L-BFGS-B) and Kalman filters call BLAS on matrices of size 2-10 thousands of
    times; with OpenBLAS' default thread pool each call pays a thread hand-off that costs more than the maths.
    Measured here (2 cores): ETS(A,A,N) fit 0.40 s -> 0.03-0.13 s, ARIMA(1,1,1) MLE 3.9 s -> 0.4 s. statsforecast
    does the same via threadpoolctl. threadpoolctl is optional (a statsforecast/scikit-learn dependency); without
    it this is a no-op and fits are just slower. The limit is process-wide while the block runs.
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def quiet_numerics() -> Iterator[None]:
    """Silence statsmodels' convergence/specification chatter; failures still raise and become ModelFitError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Wang, Smith & Hyndman (2006) seasonal strength threshold used by forecast::nsdiffs(test="seas").
SEASONAL_STRENGTH_THRESHOLD = 0.64


def seasonal_strength(y: np.ndarray, period: int) -> float:
    """STL seasonal strength F_s = max(0, 1 - Var(R) / Var(S + R)) in [0, 1]; 0 when there are < 2 full periods.

    A daily random walk scores about 0.3 with period 5, a clear weekly pattern above 0.64.
    """
    y = np.asarray(y, dtype=float)
    if period < 2 or len(y) < 2 * period + 1:
        return 0.0
    from statsmodels.tsa.seasonal import STL  # ~25 ms on 2,000 points

    with quiet_numerics():
        res = STL(y, period=period).fit()
    resid = np.asarray(res.resid)
    denom = float(np.var(resid + np.asarray(res.seasonal)))
    if not np.isfinite(denom) or denom <= 0.0:
        return 0.0
    return float(max(0.0, 1.0 - np.var(resid) / denom))


class MinTrainSize:
    """A `min_train_size` that depends on constructor arguments.

    On the class it reads as the value for the default arguments (what registries and conformance tests see);
    on an instance it is computed from that instance's arguments, so the base class's length check and its
    "N training sessions, needs at least M" message are right for e.g. MovingAverage(window=2).
    """

    # Any: the function reads the owning class's own arguments (e.g. self.window), unknown to Forecaster.
    def __init__(self, default: int, per_instance: Callable[[Any], int]) -> None:
        self.default = default
        self.per_instance = per_instance

    def __get__(self, obj: Forecaster | None, objtype: type | None = None) -> int:
        return self.default if obj is None else int(self.per_instance(obj))
