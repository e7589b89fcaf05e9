"""A model reports the name the user typed: the registry key, also when one class serves several keys (rnn/lstm/gru).

Everything here runs without training a network: the messages come from checks that fire before Keras is imported,
except one marked slow that reaches the recurrent model's own window check.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from common.errors import ConfigError, DataError, ModelFitError
from models import EVENT_REGISTRY, REGISTRY, make_event_model, make_model
from models.baselines import Naive
from models.event_rnn import RecurrentEventClassifier
from models.rnn import RecurrentForecaster
from tests.models.conftest import synthetic_prices

RECURRENT = ("rnn", "lstm", "gru")


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_model_is_named_after_its_registry_key(key):
    assert make_model(key).name == key
    assert make_model(key.upper()).name == key  # the registered spelling, whatever the case typed


@pytest.mark.parametrize("key", sorted(EVENT_REGISTRY))
def test_every_event_model_is_named_after_its_registry_key(key):
    assert make_event_model(key).name == key
    assert make_event_model(key.upper()).name == key


def test_registry_summaries_are_the_one_description():
    for registry in (REGISTRY, EVENT_REGISTRY):
        for key, spec in registry.items():
            assert spec.summary.strip(), f"{key}: empty summary"
    assert not hasattr(RecurrentForecaster, "description") and not hasattr(RecurrentEventClassifier, "description")


def test_a_model_built_from_its_class_is_named_by_its_class_or_cell():
    assert Naive().name == "naive"
    assert [RecurrentForecaster(cell=c).name for c in RECURRENT] == list(RECURRENT)
    assert RecurrentForecaster(cell="simplernn").name == "rnn"  # the Keras spelling of the rnn cell
    assert [RecurrentEventClassifier(cell=c).name for c in RECURRENT] == ["rnn_event", "lstm_event", "gru_event"]


def test_the_registry_key_wins_over_the_cell():
    """make_model("rnn", cell="lstm") is what the user asked for under the name rnn: messages and tables say rnn."""
    assert make_model("rnn", cell="lstm").name == "rnn"


def test_name_is_kept_by_clone_and_pickle_and_is_no_constructor_argument():
    model = make_model("gru", units=4)
    assert model.clone().name == "gru"
    assert pickle.loads(pickle.dumps(model)).name == "gru"
    assert "name" not in model.get_params() and "_name" not in model.get_params()
    assert "name" not in repr(model)
    with pytest.raises(AttributeError):
        model.name = "lstm"  # read-only: set by the registry through named()


@pytest.mark.parametrize("key", RECURRENT)
def test_recurrent_fit_failure_names_the_key(key):
    short = synthetic_prices(1, 12, seed=3)  # fewer sessions than the recurrent models' minimum (20)
    with pytest.raises(ModelFitError) as info:
        make_model(key, units=4, epochs=1).fit(short, horizon=3)
    assert info.value.model == key and str(info.value).startswith(f"{key} on S00:")


@pytest.mark.parametrize("key", RECURRENT)
def test_recurrent_constructor_errors_name_the_cell(key):
    with pytest.raises(ConfigError, match=rf"^{key}: window must be >= 1"):
        make_model(key, window=0)
    with pytest.raises(ConfigError, match=rf"^{key}_event: window must be an integer >= 1"):
        make_event_model(f"{key}_event", window=0)


@pytest.mark.parametrize("key", ("lstm_event", "gru_event"))
def test_event_fit_failure_names_the_key(key):
    X = np.ones((5, 2))
    with pytest.raises(DataError, match=rf"^{key}: 5 labelled training samples"):
        make_event_model(key).fit(X, np.zeros(5))


@pytest.mark.slow
def test_recurrent_window_error_names_the_key():
    """Past the length check, the network's own check (too few windows) also says gru."""
    series = synthetic_prices(1, 30, seed=3)
    with pytest.raises(DataError, match=r"^gru on S00: 30 sessions give"):
        make_model("gru", units=4, epochs=1, window=20).fit(series, horizon=3)
