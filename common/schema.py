"""Column-name constants of the long panel and the forecast/backtest tables: no string literals elsewhere."""

from __future__ import annotations

# The one exchange format (as in statsforecast): a long frame of unique_id, ds, y.
ID = "unique_id"  # the ticker, always a string ("005930" keeps its leading zeros)
DS = "ds"  # session date, tz-naive midnight Timestamp
Y = "y"  # the modelling target (adjusted close by default)

# Raw bar columns after ingest normalisation.
OPEN = "open"
HIGH = "high"
LOW = "low"
CLOSE = "close"
ADJ_CLOSE = "adj_close"
VOLUME = "volume"
BAR_COLUMNS = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE, VOLUME)
PRICE_COLUMNS = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE)

# Validated price panel: unique_id, ds, open, high, low, close, adj_close, volume, y.
PANEL_COLUMNS = (ID, DS, *BAR_COLUMNS, Y)

# Forecast output (Forecaster.predict).
H = "h"  # 1-based horizon step
YHAT = "yhat"
LO_80, HI_80 = "yhat_lo_80", "yhat_hi_80"
LO_95, HI_95 = "yhat_lo_95", "yhat_hi_95"
INTERVAL_COLUMNS = (LO_80, HI_80, LO_95, HI_95)
LEVELS = (80, 95)
FORECAST_COLUMNS = (ID, DS, H, YHAT)

# Backtest tables.
MODEL = "model"
FOLD = "fold"
CUTOFF = "cutoff"
BACKTEST_COLUMNS = (ID, MODEL, FOLD, CUTOFF, DS, H, Y, YHAT, *INTERVAL_COLUMNS)
METRIC = "metric"
VALUE = "value"
METRICS_COLUMNS = (ID, MODEL, FOLD, H, METRIC, VALUE)
TIMING_COLUMNS = (ID, MODEL, FOLD, "fit_seconds", "predict_seconds", "refit")

# Calendar features are known in advance for any future session; their names share this prefix.
CALENDAR_PREFIX = "cal_"


def interval_columns(level: int) -> tuple[str, str]:
    """(lo, hi) column names for a central prediction interval at `level` percent."""
    return f"yhat_lo_{level}", f"yhat_hi_{level}"
