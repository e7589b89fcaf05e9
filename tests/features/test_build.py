"""build_features: per-series indicators, calendar columns, row order kept, config fingerprint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from common.schema import ADJ_CLOSE, CALENDAR_PREFIX, CLOSE, DS, HIGH, ID, LOW, OPEN, PANEL_COLUMNS, VOLUME, Y
from features import indicators as ind
from features.build import FeatureConfig, build_features, build_features_for, series_features
from features.calendar import CALENDAR_COLUMNS


def make_panel(tickers: dict[str, int], *, seed: int = 0) -> pd.DataFrame:
    """A small seeded long panel: one geometric random walk per ticker, `n` sessions each."""
    rng = np.random.default_rng(seed)
    frames = []
    for uid, n in tickers.items():
        p = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
        frames.append(
            pd.DataFrame(
                {
                    ID: uid,
                    DS: pd.bdate_range("2023-01-02", periods=n),
                    OPEN: p,
                    HIGH: p * 1.01,
                    LOW: p * 0.99,
                    CLOSE: p,
                    ADJ_CLOSE: p,
                    VOLUME: rng.integers(1_000, 50_000, n).astype(float),
                    Y: p,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(PANEL_COLUMNS)]


def test_columns_rows_and_index_are_kept():
    panel = make_panel({"AAPL": 150, "005930": 90}).sample(frac=1.0, random_state=0)
    out = build_features(panel)
    assert list(out.columns) == list(panel.columns) + FeatureConfig().feature_columns()
    assert out.index.equals(panel.index)
    pd.testing.assert_frame_equal(out[panel.columns], panel)
    assert FeatureConfig().feature_columns() == list(ind.FEATURE_COLUMNS) + list(CALENDAR_COLUMNS)


def test_multi_series_equals_each_series_alone():
    panel = make_panel({"A": 140, "B": 130, "C": 5})
    together = build_features(panel.sample(frac=1.0, random_state=1)).sort_index()
    for _uid, part in panel.groupby(ID):
        alone = build_features(part)
        pd.testing.assert_frame_equal(together.loc[part.index], alone, check_exact=False, rtol=1e-12)


def test_matches_indicators_on_the_series():
    panel = make_panel({"A": 200})
    out = build_features(panel)
    np.testing.assert_allclose(out["sma_20"], ind.sma(panel[Y], window=20), equal_nan=True)
    np.testing.assert_allclose(out["rsi_14"], ind.rsi(panel[Y]), equal_nan=True)
    np.testing.assert_allclose(out["volume_z_20"], ind.volume_zscore(panel[VOLUME]), equal_nan=True)


def test_warmup_rows_stay_nan_never_backfilled():
    out = build_features(make_panel({"A": 150}))
    warm = {"ret_1": 1, "sma_5": 4, "sma_120": 119, "macd": 25, "macd_signal": 33, "rsi_14": 14, "bb_pctb": 19}
    warm |= {"vol_20": 20, "volume_z_20": 19}
    for col, n in warm.items():
        assert out[col].iloc[:n].isna().all() and out[col].iloc[n:].notna().all(), col
    assert out[list(CALENDAR_COLUMNS)].notna().all().all()


def test_short_series_is_all_warmup():
    out = build_features(make_panel({"A": 3}))
    assert out["sma_5"].isna().all() and out["rsi_14"].isna().all() and out["ret_1"].notna().sum() == 2


def test_calendar_columns_are_the_only_cal_prefixed_ones():
    out = build_features(make_panel({"A": 30}), calendar=True)
    cal = [c for c in out.columns if c.startswith(CALENDAR_PREFIX)]
    assert cal == list(CALENDAR_COLUMNS)
    assert not any(c.startswith(CALENDAR_PREFIX) for c in ind.FEATURE_COLUMNS)
    assert not any(c.startswith(CALENDAR_PREFIX) for c in build_features(make_panel({"A": 30}), calendar=False))


def test_options_price_col_and_no_volume():
    panel = make_panel({"A": 60}).drop(columns=[VOLUME])
    with pytest.raises(DataError, match="volume_window=None"):
        build_features(panel)
    out = build_features(panel, price_col=CLOSE, sma_windows=[3], ema_spans=(10,), volume_window=None, macd=None)
    assert "volume_z_20" not in out and "macd" not in out and "ema_10" in out
    np.testing.assert_allclose(out["sma_3"], panel[CLOSE].rolling(3).mean(), equal_nan=True)


def test_rebuilding_is_idempotent():
    panel = make_panel({"A": 50})
    once = build_features(panel)
    pd.testing.assert_frame_equal(build_features(once), once)


def test_duplicate_sessions_are_rejected():
    panel = make_panel({"A": 10})
    with pytest.raises(DataError, match="deduplicate"):
        build_features(pd.concat([panel, panel.iloc[[3]]], ignore_index=True))


def test_empty_panel():
    out = build_features(make_panel({"A": 5}).iloc[:0])
    assert len(out) == 0 and "rsi_14" in out


def test_series_features_single_series():
    panel = make_panel({"A": 40})
    frame = series_features(panel[Y], volume=panel[VOLUME], config=FeatureConfig())
    assert list(frame.columns) == list(ind.FEATURE_COLUMNS)


def test_config_is_frozen_normalised_and_fingerprinted():
    cfg = FeatureConfig(sma_windows=[5, 20], bollinger=(20, 2))
    assert cfg.sma_windows == (5, 20) and cfg.bollinger == (20, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rsi_window = 7  # type: ignore[misc]
    assert cfg.fingerprint() == FeatureConfig(sma_windows=(5, 20), bollinger=(20, 2.0)).fingerprint()
    assert cfg.fingerprint() != FeatureConfig().fingerprint()
    assert len(cfg.fingerprint()) == 12 and int(cfg.fingerprint(), 16) >= 0
    # Pinned: the key must not change across processes or Python versions (bump FEATURES_VERSION on purpose).
    assert FeatureConfig().fingerprint() == "bf46bb49ccbe"
    assert hash(cfg) == hash(FeatureConfig(sma_windows=(5, 20), bollinger=(20, 2.0)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sma_windows": (5, 5)},
        {"sma_windows": 5},
        {"sma_windows": (0,)},
        {"macd": (26, 12, 9)},
        {"macd": (12, 26)},
        {"bollinger": (20, 0.0)},
        {"vol_window": 1},
        {"annualisation": -1},
        {"rsi_window": 2.5},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        FeatureConfig(**kwargs)


def test_build_features_for_equals_kwargs():
    panel = make_panel({"A": 40})
    cfg = FeatureConfig(sma_windows=(5,), rsi_window=None)
    pd.testing.assert_frame_equal(
        build_features_for(panel, cfg), build_features(panel, sma_windows=(5,), rsi_window=None)
    )
