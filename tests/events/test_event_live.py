"""Live event probabilities: one per (ticker, model) at its last session, fitted on labelled sessions only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.event_live import (
    AS_OF,
    DECISION_THRESHOLD,
    LIVE_EVENT_COLUMNS,
    LIVE_FOLD,
    N_TRAIN,
    TRAIN_END,
    live_event_probabilities,
    live_event_unit,
    live_probability_records,
)
from backtest.event_metrics import P
from backtest.event_task import LABEL, event_frame, model_specs
from common.schema import DS, FOLD, ID, MODEL, H, Y
from models import make_event_model
from models.classifiers import training_rows
from tests.events.event_helpers import SMALL_FEATURES, Spy, panel

HORIZON, RISE = 5, 0.03


def _frames(data: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str]]:
    frame, columns = event_frame(data, threshold=RISE, lookahead=HORIZON, config=SMALL_FEATURES)
    return {str(u): g.reset_index(drop=True) for u, g in frame.groupby(ID)}, columns


def _spy_factory(name: str, **params) -> Spy:
    return Spy(**params)


def _live(frames, columns, models=("base_rate", "logistic"), **kw):
    return live_event_probabilities(
        frames, models=model_specs(list(models)), threshold=RISE, lookahead=HORIZON, columns=columns, **kw
    )


def test_one_probability_per_ticker_and_model_at_each_tickers_last_session():
    data = panel(n_series=3, seed=2)
    data = data[~((data[ID] == "S1") & (data[DS] > data[DS].max() - pd.Timedelta(days=10)))]  # S1 ends earlier
    frames, columns = _frames(data)
    live = _live(frames, columns)
    probs = live.probabilities
    assert live.failures.empty
    assert list(probs.columns) == list(LIVE_EVENT_COLUMNS)
    assert len(probs) == 3 * 2 and not probs.duplicated([ID, MODEL]).any()
    assert probs[P].between(0.0, 1.0).all() and probs[DECISION_THRESHOLD].between(0.0, 1.0).all()
    last = data.groupby(ID)[DS].max()
    assert (probs[AS_OF].to_numpy() == last.loc[probs[ID]].to_numpy()).all()
    assert probs.loc[probs[ID] == "S1", AS_OF].iloc[0] < probs.loc[probs[ID] == "S0", AS_OF].iloc[0]
    assert (probs[H] == HORIZON).all() and (probs["threshold"] == RISE).all()
    for uid, series in frames.items():
        # The last training session is the latest with a known outcome: h sessions before as_of.
        assert (probs.loc[probs[ID] == uid, TRAIN_END] == series[DS].iloc[-HORIZON - 1]).all()
    records = live_probability_records(probs)
    assert set(records[0]) == {"ticker", "model", "as_of", "horizon", "threshold", "p", "decision_threshold"}
    assert records[0]["as_of"] == str(probs[AS_OF].iloc[0].date())


def test_the_base_rates_live_probability_is_the_rate_of_the_labelled_training_sessions():
    frames, columns = _frames(panel(n_series=1, seed=5))
    series = frames["S0"]
    row = live_event_unit(series, model="base_rate", threshold=RISE, lookahead=HORIZON, columns=columns)
    X, labels = series[columns].to_numpy(dtype=float), series[LABEL].to_numpy(dtype=float)
    trained = training_rows(X, labels)
    assert trained.max() == len(series) - HORIZON - 1  # every labelled session trains, the last h do not
    assert row[N_TRAIN].iloc[0] == trained.size
    assert row[P].iloc[0] == pytest.approx(labels[trained].mean())


def test_the_live_fit_never_trains_on_the_last_h_unlabelled_sessions():
    """Even if the last h sessions carried labels (a partial outcome window, a bug upstream), the live fit masks
    them: the same training labels, the same model, the same probability."""
    frames, columns = _frames(panel(n_series=1, seed=7))
    series = frames["S0"]
    leaked = series.copy()
    leaked.loc[leaked.index[-HORIZON:], LABEL] = 1.0  # "the rise already happened" for every unknown outcome
    Spy.fits.clear()
    kw = {"model": "spy", "threshold": RISE, "lookahead": HORIZON, "columns": columns, "factory": _spy_factory}
    honest, dirty = live_event_unit(series, **kw), live_event_unit(leaked, **kw)
    (X1, y1), (X2, y2) = Spy.fits
    assert np.isnan(y1[-HORIZON:]).all() and np.isnan(y2[-HORIZON:]).all()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(X1, X2)
    pd.testing.assert_frame_equal(honest, dirty)

    logistic = {**kw, "model": "logistic", "factory": make_event_model}
    pd.testing.assert_frame_equal(live_event_unit(series, **logistic), live_event_unit(leaked, **logistic))


def test_changing_the_last_h_sessions_prices_leaves_the_training_rows_unaffected():
    """The last h sessions' closes move the features of unlabelled rows (never trained on) and the outcome of rows
    whose window reaches them (known at as_of); every other training row, and the row set, stays as it was."""
    data = panel(n_series=1, seed=11)
    bumped = data.copy()
    tail = bumped.index[-HORIZON:]
    bumped.loc[tail, Y] = bumped.loc[tail, Y] * np.linspace(1.05, 1.3, HORIZON)  # a rally after the last label
    (before, columns), (after, _) = _frames(data), _frames(bumped)
    Spy.fits.clear()
    kw = {"model": "spy", "threshold": RISE, "lookahead": HORIZON, "columns": columns, "factory": _spy_factory}
    live_event_unit(before["S0"], **kw)
    live_event_unit(after["S0"], **kw)
    (X1, y1), (X2, y2) = Spy.fits
    n = len(before["S0"])
    rows1, rows2 = training_rows(X1, y1), training_rows(X2, y2)
    np.testing.assert_array_equal(rows1, rows2)
    assert rows1.max() == n - HORIZON - 1
    np.testing.assert_array_equal(X1[rows1], X2[rows2])  # causal features: nothing after a training row moves
    settled = rows1[rows1 < n - 2 * HORIZON]  # outcome windows that end before the changed sessions
    np.testing.assert_array_equal(y1[settled], y2[settled])
    assert np.isnan(y1[-HORIZON:]).all() and np.isnan(y2[-HORIZON:]).all()
    assert not np.array_equal(X1[-1], X2[-1])  # the origin's features do see today's close

    logistic = {**kw, "model": "logistic", "factory": make_event_model}
    assert live_event_unit(before["S0"], **logistic)[P].iloc[0] != live_event_unit(after["S0"], **logistic)[P].iloc[0]


def test_a_model_that_fails_is_recorded_and_the_others_carry_on():
    frames, columns = _frames(panel(n_series=2, seed=3))

    def factory(name: str, **params):
        return Spy(fail_on_fit=tuple(range(1, 100))) if name == "spy" else make_event_model(name, **params)

    Spy.fits.clear()
    live = live_event_probabilities(
        frames,
        models={"base_rate": {}, "spy": {}},
        threshold=RISE,
        lookahead=HORIZON,
        columns=columns,
        factory=factory,
    )
    assert set(live.probabilities[MODEL]) == {"base_rate"} and len(live.probabilities) == 2
    assert list(live.failures[ID]) == ["S0", "S1"] and (live.failures[FOLD] == LIVE_FOLD).all()
    assert live.failures["message"].str.contains("live fit: spy on S0").any()


def test_nan_features_at_the_latest_session_name_the_column_and_the_date():
    frames, columns = _frames(panel(n_series=1, seed=1))
    series = frames["S0"].copy()
    series.loc[series.index[-1], columns[0]] = np.nan
    live = _live({"S0": series}, columns, models=("base_rate",))
    assert live.probabilities.empty and list(live.probabilities.columns) == list(LIVE_EVENT_COLUMNS)
    message = live.failures["message"].iloc[0]
    assert columns[0] in message and str(series[DS].iloc[-1].date()) in message
