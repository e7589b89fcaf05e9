"""Determinism: two separate processes with the same inputs and seeds give identical forecast tables for every
registered model, the Keras ones included (keras.utils.set_random_seed + TensorFlow op determinism)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KERAS_TINY = {"units": 4, "window": 10, "epochs": 2, "warm_epochs": 1, "batch_size": 128, "patience": 1}

SCRIPT = textwrap.dedent(
    """
    import sys
    from backtest.engine import run_backtest
    from backtest.folds import FoldPlan
    from features.build import FeatureConfig, build_features_for
    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from models import REGISTRY

    keras = {keras}
    models = {{name: (dict(keras, horizon=3) if spec.family == "neural" else {{}}) for name, spec in REGISTRY.items()}}
    panel, _ = load_panel(SourceSpec(tickers=("AAPL",), start="2010-01-01", end="2012-12-31"))
    panel = build_features_for(panel, FeatureConfig())  # arimax reads features
    result = run_backtest(panel, models=models, plan=FoldPlan(horizon=3, step=5, windows=2))
    assert result.failures.empty, result.failures.to_string()
    result.forecasts.to_parquet(sys.argv[1], index=False)
    """
).format(keras=repr(KERAS_TINY))


def _run(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_processes_give_identical_forecasts_for_every_model(tmp_path):
    from models import REGISTRY

    outs = [tmp_path / "first.parquet", tmp_path / "second.parquet"]
    procs = [_run(out) for out in outs]  # side by side: the two cores, and no shared state between them
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
    first, second = (pd.read_parquet(p) for p in outs)
    assert set(first["model"]) == set(REGISTRY)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_keras_units_training_at_once_in_threads_match_a_sequential_run():
    """Prefect's thread runner trains several Keras units at once; Keras' seed is process-wide (TRAINING_LOCK)."""
    from concurrent.futures import ThreadPoolExecutor

    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from models import make_model

    panel, _ = load_panel(SourceSpec(tickers=("AAPL", "IBM"), start="2011-01-01", end="2012-12-31"))
    series = [g.reset_index(drop=True) for _, g in panel.groupby("unique_id")]
    jobs = [(name, s) for name in ("lstm", "gru") for s in series]

    def forecast(job):
        name, frame = job
        return make_model(name, **KERAS_TINY, horizon=3).fit(frame).predict(3)["yhat"].to_numpy()

    sequential = [forecast(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(forecast, jobs))
    for a, b in zip(sequential, threaded, strict=True):
        assert (a == b).all()


@pytest.mark.parametrize("name", ["lstm", "lstm_event"])
def test_keras_fits_do_not_move_when_another_thread_draws_from_pythons_random(name):
    """Prefect's log and event workers run beside a flow's tasks and may draw from Python's global `random`; a
    Keras layer built without explicit seeds takes its initial weights from there (models.rnn.recurrent_stack)."""
    import random
    import threading

    import numpy as np

    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from models import make_event_model, make_model

    panel, _ = load_panel(SourceSpec(tickers=("AAPL",), start="2011-01-01", end="2012-12-31"))
    frame = panel.reset_index(drop=True)
    y = frame["y"].to_numpy()

    def fit_and_predict() -> np.ndarray:
        if name == "lstm":
            return make_model(name, **KERAS_TINY, horizon=3).fit(frame).predict(3)["yhat"].to_numpy()
        X = np.column_stack([np.log(y), np.r_[0.0, np.diff(np.log(y))]])
        labels = (np.r_[y[5:], [np.nan] * 5] > 1.02 * y).astype(float)
        labels[-5:] = np.nan
        tiny = {k: KERAS_TINY[k] for k in ("units", "window", "epochs", "batch_size")}
        model = make_event_model(name, **tiny).fit(X[:400], labels[:400])
        return model.predict_proba(X, np.arange(450, 460))

    quiet = fit_and_predict()
    stop = threading.Event()

    def draw() -> None:
        while not stop.wait(0.0002):  # often, without hogging the GIL
            random.random()

    noisy_thread = threading.Thread(target=draw, daemon=True)
    noisy_thread.start()
    try:
        noisy = fit_and_predict()
    finally:
        stop.set()
        noisy_thread.join()
    np.testing.assert_array_equal(quiet, noisy)
