"""The one block loop (backtest.blocks) on a tiny fake task: refit policies, failures, replay, warm starts, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import pytest

from backtest.blocks import (
    DEFAULT_REFIT_EVERY,
    LeakageError,
    failure_row,
    model_specs,
    resolve_refit_every,
    run_blocks,
)
from backtest.folds import Fold, FoldPlan, make_folds
from common.errors import ConfigError, DataError, ModelFitError
from common.schema import ERROR_TYPE, FOLD, ID, MESSAGE, MODEL
from models import model_class

FOLDS = make_folds(pd.bdate_range("2024-01-01", periods=40), FoldPlan(horizon=2, step=2, windows=7))


@dataclass
class FakeModel:
    warm_start: bool = False
    fits: list[int] = field(default_factory=list)  # the folds this instance was fitted at


@dataclass
class FakeTask:
    """Records every build, fit and batched predict; fails where told to."""

    warm: bool = False
    fail_fit: set[int] = field(default_factory=set)
    fail_predict: set[int] = field(default_factory=set)  # a batched call that includes this fold raises
    unscorable_folds: set[int] = field(default_factory=set)
    leak_at: int | None = None
    built: list[FakeModel] = field(default_factory=list)
    fitted_at: list[int] = field(default_factory=list)
    calls: list[list[int]] = field(default_factory=list)

    def build(self) -> FakeModel:
        self.built.append(FakeModel(warm_start=self.warm))
        return self.built[-1]

    def fit(self, model: FakeModel, fold: Fold) -> FakeModel:
        if fold.fold == self.leak_at:
            raise LeakageError(f"fold {fold.fold} trains past its cutoff")
        if fold.fold in self.fail_fit:
            raise ValueError(f"cannot fit at fold {fold.fold}")
        time.sleep(0.002)  # a measurable fit
        model.fits.append(fold.fold)
        self.fitted_at.append(fold.fold)
        return model

    def unscorable(self, fold: Fold) -> Exception | None:
        return DataError(f"fold {fold.fold} has NaN features") if fold.fold in self.unscorable_folds else None

    def predict(self, fitted: FakeModel, folds: list[Fold]) -> dict[int, int]:
        self.calls.append([f.fold for f in folds])
        if self.fail_predict & {f.fold for f in folds}:
            raise FloatingPointError("batched predict blew up")
        return {f.fold: fitted.fits[-1] for f in folds}

    def score(self, fitted: FakeModel, fold: Fold, batch: dict[int, int]) -> tuple[int, int]:
        return fold.fold, batch[fold.fold]  # (fold, the fold the parameters were fitted at)


def _done(run) -> list[int]:
    return [d.fold.fold for d in run.done]


def _failed(run) -> list[int]:
    return [fold.fold for fold, _ in run.failed]


@pytest.mark.parametrize(
    ("refit_every", "fitted_at", "calls"),
    [
        (1, [0, 1, 2, 3, 4, 5, 6], [[0], [1], [2], [3], [4], [5], [6]]),
        (3, [0, 3, 6], [[0, 1, 2], [3, 4, 5], [6]]),
        (0, [0], [[0, 1, 2, 3, 4, 5, 6]]),
    ],
)
def test_refit_policy_fits_at_each_block_start_and_predicts_each_block_in_one_call(refit_every, fitted_at, calls):
    task = FakeTask()
    run = run_blocks(FOLDS, task, refit_every=refit_every)
    assert task.fitted_at == fitted_at and task.calls == calls
    assert _done(run) == list(range(7)) and run.failed == []
    assert [d.refit for d in run.done] == [k in fitted_at for k in range(7)]
    # Every fold is predicted with the parameters of its block's refit: nothing refits in between.
    assert [d.output for d in run.done] == [(k, max(f for f in fitted_at if f <= k)) for k in range(7)]


def test_timings_fit_on_the_refit_fold_and_the_batched_predict_split_evenly():
    run = run_blocks(FOLDS, FakeTask(), refit_every=3)
    assert all((d.fit_seconds > 0) == d.refit for d in run.done)
    for block in ([0, 1, 2], [3, 4, 5]):
        assert len({run.done[k].predict_seconds for k in block}) == 1  # one call, divided over its folds


def test_a_failing_fit_is_recorded_and_the_next_fold_refits_from_scratch():
    task = FakeTask(fail_fit={3})
    run = run_blocks(FOLDS, task, refit_every=3)
    assert _failed(run) == [3] and isinstance(run.failed[0][1], ValueError)
    assert task.fitted_at == [0, 4] and task.calls == [[0, 1, 2], [4, 5, 6]]
    assert _done(run) == [0, 1, 2, 4, 5, 6]
    assert len(task.built) == 3  # fold 0, the failed fit at 3, the fresh model at 4


def test_a_failing_batched_predict_is_replayed_fold_by_fold_and_loses_only_the_failing_fold():
    task = FakeTask(fail_predict={4})
    run = run_blocks(FOLDS, task, refit_every=0)
    assert _failed(run) == [4] and isinstance(run.failed[0][1], FloatingPointError)
    assert _done(run) == [0, 1, 2, 3, 5, 6]
    assert task.calls == [[0, 1, 2, 3, 4, 5, 6], [0], [1], [2], [3], [4], [5, 6]]
    assert task.fitted_at == [0, 0, 5]  # the replay refits fold 0 from scratch; after the failure fold 5 refits
    assert [d.fold.fold for d in run.done if d.refit] == [0, 5]


def test_without_replay_every_fold_of_the_failed_batch_is_recorded():
    task = FakeTask(fail_predict={4})
    run = run_blocks(FOLDS, task, refit_every=3, replay=False)
    assert _failed(run) == [3, 4, 5] and _done(run) == [0, 1, 2, 6]
    assert task.fitted_at == [0, 3, 6]


def test_a_single_fold_block_that_fails_its_predict_is_not_replayed():
    task = FakeTask(fail_predict={2})
    run = run_blocks(FOLDS, task, refit_every=1)
    assert _failed(run) == [2] and task.fitted_at == list(range(7))


def test_unscorable_folds_are_recorded_once_and_the_block_goes_on():
    task = FakeTask(unscorable_folds={1, 5}, fail_predict={3})
    run = run_blocks(FOLDS, task, refit_every=0)
    # batch [0, 2, 3, 4, 6] fails -> replay: 0, 2 fine, 3 fails (1 recorded as unscorable on the way); then 4.. refit
    assert _failed(run) == [1, 3, 5]
    assert _done(run) == [0, 2, 4, 6]
    assert task.calls == [[0, 2, 3, 4, 6], [0], [2], [3], [4, 6]]
    assert isinstance(dict((f.fold, e) for f, e in run.failed)[5], DataError)


def test_warm_start_models_are_refitted_in_place_until_a_failure():
    task = FakeTask(warm=True, fail_fit={4})
    run = run_blocks(FOLDS, task, refit_every=2)
    assert _failed(run) == [4]
    # Blocks start at 0, 2, 4 (fails), 5: one instance for 0 and 2, a fresh one at 4, reused at 5.
    assert len(task.built) == 2
    assert task.built[0].fits == [0, 2] and task.built[1].fits == [5]


def test_cold_models_are_built_fresh_at_every_refit():
    task = FakeTask(warm=False)
    run_blocks(FOLDS, task, refit_every=2)
    assert [m.fits for m in task.built] == [[0], [2], [4], [6]]


def test_leakage_is_raised_never_recorded():
    with pytest.raises(LeakageError):
        run_blocks(FOLDS, FakeTask(leak_at=3), refit_every=1)
    with pytest.raises(LeakageError):
        failure_row("S0", "m", FOLDS[0], LeakageError("leak"))


def test_failure_row_names_model_and_series():
    row = failure_row("AAPL", "ets", FOLDS[2], ValueError("boom"))
    assert row[ID] == "AAPL" and row[MODEL] == "ets" and row[FOLD] == 2 and row[ERROR_TYPE] == "ValueError"
    assert row[MESSAGE] == "ets on AAPL: ValueError: boom"
    own_check = failure_row("AAPL", "ets", 2, ModelFitError("?", "?", "expected h = 1..3"))
    assert own_check[MESSAGE] == "ets on AAPL: expected h = 1..3" and own_check[ERROR_TYPE] == "ModelFitError"


def test_one_refit_policy_resolution_for_both_registries():
    assert resolve_refit_every("naive", 3) == 3 and resolve_refit_every("logistic", 0) == 0
    assert resolve_refit_every("naive", None) == model_class("naive").default_refit_every
    from models import event_model_class

    assert resolve_refit_every("logistic", None) == event_model_class("logistic").default_refit_every
    assert resolve_refit_every(model_class("ets"), None) == model_class("ets").default_refit_every
    assert resolve_refit_every("not_registered", None) == DEFAULT_REFIT_EVERY
    from backtest.units import plan_price_units

    for bad in (-1, 1.5, True, "3"):  # a unit refuses a bad policy however it is built
        with pytest.raises(ConfigError, match=r"refit_every must be an integer >= 0 \(0 = fit once"):
            plan_price_units(["A"], models={"naive": {}}, folds={"A": ()}, horizon=1, refit_every=bad)  # type: ignore[arg-type]


def test_model_specs_parse_names_and_mappings():
    assert model_specs(["naive", "ets"]) == {"naive": {}, "ets": {}}
    assert model_specs("naive") == {"naive": {}}
    assert model_specs({"ses": {"alpha": 0.5}, "naive": None}) == {"ses": {"alpha": 0.5}, "naive": {}}
    with pytest.raises(ConfigError, match="more than once"):
        model_specs(["naive", "naive"])
    with pytest.raises(ConfigError, match="no event models to backtest"):
        model_specs([], kind="event models")


@dataclass
class QueuedTask(FakeTask):
    """Fits and predicts under the Keras training lock, working 0.1 s inside it."""

    def fit(self, model: FakeModel, fold: Fold) -> FakeModel:
        from models.rnn import training_lock

        with training_lock():
            time.sleep(0.1)
        return super().fit(model, fold)

    def predict(self, fitted, folds):
        from models.rnn import training_lock

        with training_lock():
            time.sleep(0.1)
        return super().predict(fitted, folds)


def test_time_queued_behind_another_units_training_is_not_charged():
    """Another unit holds the training lock for 0.8 s when this one starts: its fit is charged its own ~0.1 s of
    work inside the lock, not the wait (a flow runs several Keras units in threads; training is serialised)."""
    import threading

    from models.rnn import TRAINING_LOCK

    held, release = threading.Event(), threading.Event()

    def other_unit() -> None:
        with TRAINING_LOCK:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=other_unit)
    thread.start()
    held.wait(5)
    threading.Timer(0.8, release.set).start()
    started = time.perf_counter()
    run = run_blocks(FOLDS[:2], QueuedTask(), refit_every=2)
    wall = time.perf_counter() - started
    thread.join()
    first = run.done[0]
    assert wall >= 0.8 + 0.2  # it did wait, then worked
    assert 0.1 <= first.fit_seconds < 0.5  # the work, not the 0.8 s queue
    assert 0.05 <= first.predict_seconds < 0.3  # one batched call over two folds: 0.1 s shared
