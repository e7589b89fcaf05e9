"""Event classifiers: registry, lazy heavy imports, base rate, logistic, Keras cell classifier (tiny config)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import models
from common.errors import ConfigError, DataError, NotFittedError
from models import EVENT_REGISTRY, REGISTRY, event_model_names, make_event_model
from models.classifiers import BaseRate, LogisticEvent, balanced_weights, prior_shift
from tests.events.event_helpers import TINY_RNN

ROOT = Path(__file__).resolve().parents[2]


def _signal(n: int = 600, *, seed: int = 0, rate: float = 0.2):
    """Features whose first column shifts the event probability; labels NaN for the last 5 rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    logit = np.log(rate / (1 - rate)) + 1.5 * X[:, 0]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    y[-5:] = np.nan
    return X, y


def test_the_event_registry_is_separate_and_lists_five_models():
    assert event_model_names() == ["base_rate", "logistic", "rnn_event", "lstm_event", "gru_event"]
    assert not set(EVENT_REGISTRY) & set(REGISTRY)  # the Forecaster zoo is untouched
    assert [make_event_model(n).cell for n in ("rnn_event", "lstm_event")] == ["rnn", "lstm"]
    with pytest.raises(ConfigError, match="did you mean lstm_event"):
        models.make_event_model("lstm_evnt")


def test_importing_the_event_models_loads_neither_tensorflow_nor_sklearn():
    code = (
        "import sys, models, models.classifiers, models.event_rnn, backtest.event_task;"
        "print(','.join(m for m in ('tensorflow', 'keras', 'sklearn', 'prefect') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_base_rate_predicts_the_training_rate_of_known_labels():
    X, y = _signal()
    model = BaseRate().fit(X, y)
    p = model.predict_proba(X, np.array([3, 10, 599]))
    assert p == pytest.approx(np.full(3, np.nanmean(y)))
    with pytest.raises(NotFittedError):
        BaseRate().predict_proba(X, np.array([0]))
    with pytest.raises(DataError, match="0, 1 or NaN"):
        BaseRate().fit(X, np.where(np.isnan(y), np.nan, y * 2))


def test_logistic_learns_a_signal_and_uses_training_rows_only_for_scaling():
    from sklearn.metrics import roc_auc_score

    X, y = _signal(1200)
    train = y.copy()
    train[800:] = np.nan  # only the first 800 rows are training samples
    model = LogisticEvent().fit(X, train)
    rows = np.arange(800, 1195)
    assert roc_auc_score(y[rows], model.predict_proba(X, rows)) > 0.75
    shifted = X.copy()
    shifted[800:] += 100.0  # rows that are not training samples must not move the scaler
    again = LogisticEvent().fit(shifted, train)
    np.testing.assert_allclose(again.scaler_.center_, model.scaler_.center_)
    np.testing.assert_allclose(again.clf_.coef_, model.clf_.coef_)


def test_balanced_weights_and_the_prior_correction_by_hand():
    assert balanced_weights(np.array([1, 0, 0, 0.0])) == {0: 4 / 6, 1: 2.0}
    # odds 1 (p = 0.5) times w0 / w1 = (4/6) / 2 = 1/3 -> p = 0.25
    assert prior_shift(np.array([0.5]), {0: 4 / 6, 1: 2.0}) == pytest.approx([0.25])
    X, y = _signal(2000, rate=0.1)
    plain = LogisticEvent().fit(X, y).predict_proba(X, np.arange(1995))
    weighted = LogisticEvent(class_weight="balanced").fit(X, y)
    corrected = weighted.predict_proba(X, np.arange(1995))
    raw = weighted.clf_.predict_proba(weighted.scaler_.transform(X[:1995]))[:, 1]
    assert raw.mean() > 0.3  # weighting pushes probabilities towards 0.5 ...
    assert corrected.mean() == pytest.approx(plain.mean(), abs=0.02)  # ... the correction brings them back


def test_logistic_with_one_class_in_training_predicts_that_class_rate():
    X, _ = _signal(100)
    p = LogisticEvent().fit(X, np.zeros(100)).predict_proba(X, np.arange(3))
    assert p.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_keras_classifier_is_seeded_causal_batched_and_warm_starts():
    X, y = _signal(400, rate=0.3)
    y[300:] = np.nan  # train on rows < 300
    a = make_event_model("gru_event", **TINY_RNN, horizon=5).fit(X, y)
    b = make_event_model("gru_event", **TINY_RNN, horizon=5).fit(X, y)
    rows = np.arange(300, 330)
    pa = a.predict_proba(X, rows)
    np.testing.assert_array_equal(pa, b.predict_proba(X, rows))  # same seed, same data -> same network
    assert np.all((pa > 0) & (pa < 1)) and pa.std() > 0
    # One batched call equals one call per origin, and an origin never reads rows after it.
    singles = np.array([a.predict_proba(X, np.array([r]))[0] for r in rows[:5]])
    np.testing.assert_allclose(singles, pa[:5], rtol=1e-5)
    future = X.copy()
    future[305:] = 50.0
    np.testing.assert_allclose(a.predict_proba(future, rows[:5]), pa[:5], rtol=1e-6)  # rows 300..304
    # Purge: no training sample's label (origin + h) overlaps the validation tail's first origin.
    train, val = a._split(X, y)
    assert train.max() + 5 <= val[0]
    # A refit of the same instance continues from its weights (warm) for warm_epochs.
    y2 = y.copy()
    y2[300:320] = (X[300:320, 0] > 0).astype(float)
    a.fit(X, y2)
    assert a.warm_started_ and a.epochs_run_ <= TINY_RNN["warm_epochs"]


def test_keras_classifier_rejects_too_little_data():
    X, y = _signal(40)
    with pytest.raises(DataError, match="training samples"):
        make_event_model("lstm_event", **{**TINY_RNN, "window": 30}).fit(X, y)
