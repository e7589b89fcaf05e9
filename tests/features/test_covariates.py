"""Covariates aligned as of the target's close on real exchange calendars: no back-fill, every fill counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.audit import audit_leakage
from backtest.folds import FoldPlan, make_folds
from common.errors import ConfigError, DataError
from common.schema import DS, ID, Y
from features.build import FeatureConfig, build_features_for
from features.calendar import sessions
from features.covariates import (
    CovariateConfig,
    CovariateSeries,
    check_known_by,
    column,
    covariate_frame,
    slug,
    split_covariates,
    with_covariates,
)


def _series(ticker: str, calendar: str, start: str, end: str, *, seed: int = 0) -> CovariateSeries:
    ds = sessions(calendar, start, end)
    y = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, len(ds))))
    return CovariateSeries(ticker, ds, y, calendar)


def _aligned(target_calendar: str, covariate: CovariateSeries, start: str, end: str) -> pd.DataFrame:
    target = sessions(target_calendar, start, end)
    frame, _ = covariate_frame(target, target_calendar, [covariate], CovariateConfig((covariate.ticker,)))
    frame.index = target
    return frame


def _source_date(frame: pd.DataFrame, covariate: CovariateSeries, session: str) -> pd.Timestamp:
    """The covariate session whose close a target session received."""
    value = frame.loc[pd.Timestamp(session), column(covariate.ticker, "level")]
    return covariate.ds[int(np.flatnonzero(covariate.y == value)[0])]


def test_a_new_york_close_reaches_seoul_the_next_session_and_seoul_reaches_new_york_the_same_day():
    gspc = _series("^GSPC", "XNYS", "2024-01-01", "2024-02-29")
    seoul = _aligned("XKRX", gspc, "2024-01-01", "2024-02-29")
    # Seoul closes at 06:30 UTC, New York at 21:00 UTC: Seoul's Wednesday 2024-01-10 knows New York's Tuesday.
    assert _source_date(seoul, gspc, "2024-01-10") == pd.Timestamp("2024-01-09")
    # Martin Luther King Day (2024-01-15) is no New York session: Seoul's Tuesday reuses Friday's close.
    assert _source_date(seoul, gspc, "2024-01-16") == pd.Timestamp("2024-01-12")
    kospi = _series("KS11", "XKRX", "2024-01-01", "2024-02-29", seed=1)
    new_york = _aligned("XNYS", kospi, "2024-01-01", "2024-02-29")
    assert _source_date(new_york, kospi, "2024-01-10") == pd.Timestamp("2024-01-10")
    # Seoul's Lunar New Year (2024-02-09 .. 02-12): New York's Monday 02-12 still has Thursday 02-08's close.
    assert _source_date(new_york, kospi, "2024-02-12") == pd.Timestamp("2024-02-08")


def test_london_and_tokyo_targets_and_a_crypto_covariate_use_only_closes_already_known():
    gspc = _series("^GSPC", "XNYS", "2024-03-01", "2024-04-30")
    london = _aligned("XLON", gspc, "2024-03-01", "2024-04-30")
    assert _source_date(london, gspc, "2024-03-13") == pd.Timestamp("2024-03-12")  # 16:30 UTC < 21:00 UTC
    tokyo = _aligned("XTKS", gspc, "2024-03-01", "2024-04-30")
    assert _source_date(tokyo, gspc, "2024-03-13") == pd.Timestamp("2024-03-12")
    btc = _series("BTC-USD", "24/7", "2024-03-01", "2024-04-30", seed=2)
    new_york = _aligned("XNYS", btc, "2024-03-01", "2024-04-30")
    # A daily crypto bar of D closes at midnight UTC after D: a New York close of D (21:00 UTC) knows D-1's bar,
    # and on Monday the bar of Sunday (the weekend moves, nothing is dropped).
    assert _source_date(new_york, btc, "2024-03-13") == pd.Timestamp("2024-03-12")
    assert _source_date(new_york, btc, "2024-03-18") == pd.Timestamp("2024-03-17")


def test_nothing_is_back_filled_and_every_fill_is_counted():
    target = sessions("XNYS", "2024-01-01", "2024-03-29")
    late = _series("CL=F", "XNYS", "2024-02-01", "2024-03-29", seed=3)
    gappy = late.ds.delete([5, 6, 7])  # three sessions missing from the covariate's own data
    cov = CovariateSeries("CL=F", gappy, np.delete(late.y, [5, 6, 7]), "XNYS")
    frame, [counted] = covariate_frame(target, "XNYS", [cov], CovariateConfig(("CL=F",), lags=(1,)), target="AAPL")
    level = frame[column("CL=F", "level")].to_numpy()
    before = target < pd.Timestamp("2024-02-01")
    assert np.isnan(level[before]).all() and not np.isnan(level[~before]).any()
    assert counted.no_value_yet == int(before.sum()) and counted.first_value == "2024-02-01"
    assert counted.filled == 3
    logret = frame[column("CL=F", "logret")].to_numpy()
    assert np.isnan(logret[: int(before.sum()) + 1]).all()  # the first known close has no return yet
    filled_rows = np.flatnonzero(~before)[[5, 6, 7]]
    assert (logret[filled_rows] == 0).all()  # a filled close does not move
    lagged = frame[column("CL=F", "logret", 1)].to_numpy()
    np.testing.assert_array_equal(lagged[1:], logret[:-1])


def test_slugs_name_columns_and_clashing_tickers_are_refused():
    assert [slug(t) for t in ("^GSPC", "CL=F", "DX-Y.NYB", "USD/KRW")] == ["gspc", "cl_f", "dx_y_nyb", "usd_krw"]
    with pytest.raises(ConfigError, match="share the columns cov_gspc"):
        CovariateConfig(("^GSPC", "GSPC"))
    with pytest.raises(ConfigError, match="lags must be integers >= 1"):
        CovariateConfig(("^GSPC",), lags=(0,))


def _panel(tickers: dict[str, str], start: str = "2023-01-01", end: str = "2024-06-28") -> pd.DataFrame:
    parts = []
    for k, (ticker, calendar) in enumerate(tickers.items()):
        s = _series(ticker, calendar, start, end, seed=k)
        parts.append(pd.DataFrame({ID: ticker, DS: s.ds, Y: s.y, "volume": 1.0}))
    return pd.concat(parts, ignore_index=True)


def test_a_missing_covariate_names_the_close_matches_and_a_late_one_names_its_dates():
    panel = _panel({"AAPL": "XNYS", "MSFT": "XNYS"})
    with pytest.raises(DataError, match=r"'MSFTT' \(did you mean MSFT\?\)"):
        split_covariates(panel, CovariateConfig(("MSFTT",)), {"AAPL": "XNYS", "MSFT": "XNYS"})
    late = _panel({"AAPL": "XNYS"}).assign(**{ID: "^VIX"})
    late = late.loc[late[DS] >= pd.Timestamp("2024-05-01")]
    target, covariates = split_covariates(
        pd.concat([panel, late]), CovariateConfig(("^VIX",)), {"AAPL": "XNYS", "MSFT": "XNYS", "^VIX": "XNYS"}
    )
    assert sorted(target[ID].unique()) == ["AAPL", "MSFT"]
    frames = {uid: g for uid, g in target.groupby(ID)}
    _, counts = with_covariates(frames, covariates, CovariateConfig(("^VIX",)), {"AAPL": "XNYS", "MSFT": "XNYS"})
    late_error = r"covariate \^VIX: no value known by AAPL's first cutoff 2024-01-02.*2024-05-01"
    with pytest.raises(DataError, match=late_error):
        check_known_by(counts, {"AAPL": pd.Timestamp("2024-01-02")})


def test_the_leakage_audit_recomputes_covariates_at_each_cutoff_and_catches_a_peek():
    panel = _panel({"AAPL": "XNYS", "005930": "XKRX"})
    config, cov_config = FeatureConfig(volume_window=None), CovariateConfig(("005930",))
    target, covariates = split_covariates(panel, cov_config, {"AAPL": "XNYS", "005930": "XKRX"})
    features = build_features_for(target, config)
    frames, _ = with_covariates({"AAPL": features}, covariates, cov_config, {"AAPL": "XNYS"})
    folds = {"AAPL": make_folds(pd.DatetimeIndex(frames["AAPL"][DS]), FoldPlan(horizon=5, step=5, windows=4))}
    kwargs = dict(covariates=covariates, covariate_config=cov_config, calendars={"AAPL": "XNYS"})
    honest = audit_leakage(target, frames, folds, config, **kwargs)
    assert honest.passed, honest.problems
    assert honest.feature_columns == len(config.feature_columns()) + len(cov_config.columns())
    peeking = frames["AAPL"].copy()
    col = column("005930", "logret")
    peeking[col] = peeking[col].shift(-1)  # tomorrow's Seoul return on today's New York row
    leaked = audit_leakage(target, {"AAPL": peeking}, folds, config, **kwargs)
    assert not leaked.passed
    assert "covariate columns" in leaked.problems[0] and col in leaked.problems[0]
