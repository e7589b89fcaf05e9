"""Feature panel: indicators per series plus calendar features, appended to the validated long panel.

Indicators are computed per unique_id in ds order (no cross-series reads) and are causal: the value at a row
uses that series' rows up to and including it. Warm-up rows (fewer sessions than a window needs) stay NaN and
are never back-filled; models drop or impute them. Calendar columns (prefix `cal_`) are known ahead; every
other feature must be lagged by the model before it predicts (models/base.py does this).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import ConfigError, DataError
from common.schema import DS, ID, VOLUME, Y
from features import indicators as ind
from features.calendar import CALENDAR_COLUMNS, calendar_features

log = logging.getLogger(__name__)

# Bump when an indicator's maths changes, so cached feature panels keyed by fingerprint() are invalidated.
FEATURES_VERSION = 1


def _windows(name: str, values: Sequence[int], minimum: int = 1) -> tuple[int, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise ConfigError(f"{name} must be a sequence of integers such as (5, 20), got {values!r}")
    out = tuple(values)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
            raise ConfigError(f"{name} must hold integers >= {minimum}, got {list(out)}")
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} has duplicate windows: {list(out)}; list each window once")
    return tuple(int(v) for v in out)


def _optional_window(name: str, value: int | None, minimum: int) -> int | None:
    return None if value is None else _windows(name, (value,), minimum)[0]


@dataclass(frozen=True)
class FeatureConfig:
    """Which indicators to compute and on which columns; `fingerprint()` keys feature caches.

    None (or an empty tuple) disables an indicator family. Sequences are normalised to tuples of ints.
    """

    price_col: str = Y
    volume_col: str = VOLUME
    returns: bool = True
    sma_windows: tuple[int, ...] = ind.SMA_WINDOWS
    ema_spans: tuple[int, ...] = ind.EMA_SPANS
    macd: tuple[int, int, int] | None = ind.MACD_PARAMS
    rsi_window: int | None = ind.RSI_WINDOW
    bollinger: tuple[int, float] | None = ind.BOLLINGER
    vol_window: int | None = ind.VOL_WINDOW
    annualisation: float | None = ind.TRADING_DAYS
    volume_window: int | None = ind.VOLUME_WINDOW
    calendar: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, at construction
        set_(self, "sma_windows", _windows("sma_windows", self.sma_windows))
        set_(self, "ema_spans", _windows("ema_spans", self.ema_spans))
        if self.macd is not None:
            if len(self.macd) != 3:
                raise ConfigError(f"macd must be (fast, slow, signal) spans, got {self.macd!r}")
            fast, slow, signal = (_windows("macd spans", (v,))[0] for v in self.macd)
            if not fast < slow:
                raise ConfigError(f"macd must be (fast, slow, signal) with 0 < fast < slow, got {self.macd!r}")
            set_(self, "macd", (fast, slow, signal))
        set_(self, "rsi_window", _optional_window("rsi_window", self.rsi_window, 1))
        if self.bollinger is not None:
            window, k = self.bollinger
            if not float(k) > 0:
                raise ConfigError(f"bollinger must be (window, k) with k > 0, got {self.bollinger!r}")
            set_(self, "bollinger", (_windows("bollinger window", (window,), 2)[0], float(k)))
        set_(self, "vol_window", _optional_window("vol_window", self.vol_window, 2))
        set_(self, "volume_window", _optional_window("volume_window", self.volume_window, 2))
        if self.annualisation is not None:
            if not float(self.annualisation) > 0:
                raise ConfigError(f"annualisation must be > 0 sessions per year, got {self.annualisation!r}")
            set_(self, "annualisation", float(self.annualisation))

    def indicator_columns(self) -> list[str]:
        """Indicator column names in output order."""
        return ind.feature_names(
            returns=self.returns,
            sma_windows=self.sma_windows,
            ema_spans=self.ema_spans,
            macd_params=self.macd,
            rsi_window=self.rsi_window,
            bollinger_params=self.bollinger,
            vol_window=self.vol_window,
            volume_window=self.volume_window,
        )

    def feature_columns(self) -> list[str]:
        """Every column build_features adds: indicators, then calendar columns if enabled."""
        return self.indicator_columns() + (list(CALENDAR_COLUMNS) if self.calendar else [])

    def fingerprint(self) -> str:
        """Stable 12-hex-digit hash of the config and FEATURES_VERSION (same config -> same key, across runs)."""
        payload = json.dumps({"version": FEATURES_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def series_features(price: pd.Series, *, volume: pd.Series | None = None, config: FeatureConfig) -> pd.DataFrame:
    """Indicator columns of ONE series sorted by ds (no calendar columns), on the series' index."""
    cols: dict[str, pd.Series] = {}
    if config.returns:
        cols[ind.RET_1] = ind.simple_return(price)
        cols[ind.LOGRET_1] = ind.log_return(price)
    for w in config.sma_windows:
        cols[ind.SMA.format(window=w)] = ind.sma(price, window=w)
    for s in config.ema_spans:
        cols[ind.EMA.format(span=s)] = ind.ema(price, span=s)
    if config.macd is not None:
        fast, slow, signal = config.macd
        cols.update(ind.macd(price, fast=fast, slow=slow, signal=signal).items())
    if config.rsi_window is not None:
        cols[ind.RSI.format(window=config.rsi_window)] = ind.rsi(price, window=config.rsi_window)
    if config.bollinger is not None:
        window, k = config.bollinger
        cols.update(ind.bollinger(price, window=window, k=k).items())
    if config.vol_window is not None:
        cols[ind.VOL.format(window=config.vol_window)] = ind.volatility(
            price, window=config.vol_window, annualisation=config.annualisation
        )
    if config.volume_window is not None:
        if volume is None:
            raise DataError("volume z-score needs a volume series; pass volume= or set volume_window=None")
        cols[ind.VOLUME_Z.format(window=config.volume_window)] = ind.volume_zscore(volume, window=config.volume_window)
    return pd.DataFrame(cols, index=price.index)


def _check_panel(panel: pd.DataFrame, config: FeatureConfig) -> None:
    need = [ID, DS, config.price_col] + ([config.volume_col] if config.volume_window is not None else [])
    missing = [c for c in need if c not in panel.columns]
    if missing:
        hint = "; set volume_window=None for series without volume" if config.volume_col in missing else ""
        raise DataError(f"panel lacks column(s) {missing} needed for features (has {list(panel.columns)}){hint}")
    dup = panel.duplicated([ID, DS], keep=False)
    if dup.any():
        bad = panel.loc[dup, [ID, DS]]
        first = bad.sort_values(DS).iloc[0]
        raise DataError(
            f"{int(dup.sum())} rows share (unique_id, ds) in series {sorted(bad[ID].astype(str).unique())[:5]}, "
            f"first {first[ID]} on {pd.Timestamp(first[DS]).date()}; deduplicate the panel (ingest validation) first"
        )


def build_features_for(panel: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """The panel plus the feature columns of `config`, same rows, same order, same index (see build_features)."""
    _check_panel(panel, config)
    names = config.indicator_columns()
    clash = [c for c in config.feature_columns() if c in panel.columns]
    if clash:
        log.info("recomputing feature column(s) already in the panel: %s", clash)
    out = panel.drop(columns=clash)
    # Sort positions by (unique_id, ds) so each series is computed in time order, then scatter back.
    order = np.lexsort((pd.DatetimeIndex(panel[DS]).asi8, panel[ID].astype(str).to_numpy()))
    ordered = panel.iloc[order]
    values = np.full((len(panel), len(names)), np.nan)
    for rows in ordered.groupby(ID, sort=False).indices.values():
        part = ordered.iloc[rows]
        price = part[config.price_col].reset_index(drop=True)
        volume = part[config.volume_col].reset_index(drop=True) if config.volume_window is not None else None
        frame = series_features(price, volume=volume, config=config)
        values[order[rows]] = frame[names].to_numpy(dtype=float)
    feats = pd.DataFrame(values, columns=names, index=panel.index)
    if config.calendar:
        cal = calendar_features(panel[DS])
        cal.index = panel.index
        feats = pd.concat([feats, cal], axis=1)
    return pd.concat([out, feats], axis=1)


def build_features(
    panel: pd.DataFrame,
    *,
    price_col: str = Y,
    volume_col: str = VOLUME,
    returns: bool = True,
    sma_windows: Sequence[int] = ind.SMA_WINDOWS,
    ema_spans: Sequence[int] = ind.EMA_SPANS,
    macd: tuple[int, int, int] | None = ind.MACD_PARAMS,
    rsi_window: int | None = ind.RSI_WINDOW,
    bollinger: tuple[int, float] | None = ind.BOLLINGER,
    vol_window: int | None = ind.VOL_WINDOW,
    annualisation: float | None = ind.TRADING_DAYS,
    volume_window: int | None = ind.VOLUME_WINDOW,
    calendar: bool = True,
) -> pd.DataFrame:
    """Append indicator and calendar features to a long panel (several tickers allowed), keeping rows and order.

    Indicators run per unique_id in ds order and never read another series; warm-up rows are NaN, never
    back-filled. Calendar columns (`cal_*`) are known ahead; all other features must be lagged before use.
    Equivalent to build_features_for(panel, FeatureConfig(...)); see FeatureConfig for the parameters.
    """
    config = FeatureConfig(
        price_col=price_col,
        volume_col=volume_col,
        returns=returns,
        sma_windows=tuple(sma_windows),
        ema_spans=tuple(ema_spans),
        macd=macd,
        rsi_window=rsi_window,
        bollinger=bollinger,
        vol_window=vol_window,
        annualisation=annualisation,
        volume_window=volume_window,
        calendar=calendar,
    )
    return build_features_for(panel, config)
