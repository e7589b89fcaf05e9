"""Event backtest: folds on labelled sessions, no label or feature after the cutoff reaches training, failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtest.engine import LeakageError
from backtest.event_metrics import EVENT_PREDICTION_COLUMNS, THRESHOLD, P
from backtest.event_task import (
    LABEL,
    EventUnitResult,
    evaluate_events,
    event_fold_plan,
    event_folds,
    event_frame,
    run_event_backtest,
    training_window,
)
from backtest.units import failed_unit, plan_event_units, run_unit
from common.errors import ConfigError, DataError
from common.schema import DS, FOLD, ID, MODEL, Y
from models import make_event_model
from tests.events.event_helpers import SMALL_FEATURES, TINY_RNN, Spy, panel, plan

H = 5


def _run(data, models, *, factory=None, **kw):
    kwargs = {"threshold": 0.03, "lookahead": H, "plan": plan(), "feature_config": SMALL_FEATURES, **kw}
    if factory is not None:
        kwargs["factory"] = factory
    return run_event_backtest(data, models=models, **kwargs)


def test_folds_are_cut_on_labelled_sessions_and_every_model_scores_the_same_origins():
    data = panel(n_series=2)
    frame, _ = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    folds = event_folds(frame, plan(), lookahead=H)
    for uid, series in frame.groupby(ID):
        last_labelled = series[DS].iloc[-H - 1]
        assert folds[uid][-1].test_ds[-1] == last_labelled  # the last fold ends at the last known outcome
        assert series[LABEL].iloc[-H:].isna().all()
    result = _run(data, ["base_rate", "logistic"])
    keys = {m: set(map(tuple, g[[ID, FOLD, DS]].astype(str).to_numpy())) for m, g in result.predictions.groupby(MODEL)}
    assert keys["base_rate"] == keys["logistic"] and len(keys["logistic"]) == 2 * 6 * 5
    assert result.predictions[Y].notna().all()
    assert list(result.predictions.columns) == list(EVENT_PREDICTION_COLUMNS)


def test_training_window_masks_every_label_that_reads_past_the_cutoff():
    labels = np.arange(20) % 2.0
    rows, known = training_window(labels, start=2, cutoff=14, lookahead=4)
    assert rows == slice(2, 15)
    # Row t's label reads closes t+1..t+4: usable only if t + 4 <= 14, i.e. t <= 10 (positions 0..8 of the window).
    assert np.isfinite(known[:9]).all() and np.isnan(known[9:]).all()


def test_fit_sees_only_rows_up_to_the_cutoff_and_only_labels_known_there():
    Spy.fits.clear()
    Spy.predicts.clear()
    data = panel(n_series=1)
    frame, columns = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    folds = event_folds(frame, plan(), lookahead=H)["S0"]
    _run(data, ["spy"], factory=lambda name, **p: Spy(), refit_every=1)
    ds = pd.DatetimeIndex(frame[DS])
    assert len(Spy.fits) == len(folds)
    for fold, (X, y) in zip(folds, Spy.fits, strict=True):
        cutoff = ds.get_loc(fold.cutoff)
        assert X.shape[0] == cutoff + 1  # feature rows 0..cutoff, nothing after
        np.testing.assert_array_equal(X, frame[columns].to_numpy(float)[: cutoff + 1])
        last_label = np.flatnonzero(np.isfinite(y)).max()
        assert last_label + H <= cutoff  # no training label reads a close after the cutoff
        assert last_label == cutoff - H
    for fold, (X, _rows) in zip(folds, Spy.predicts[1::2], strict=True):  # [tail threshold, test origins] per fit
        assert X.shape[0] == ds.get_loc(fold.test_ds[-1]) + 1  # features up to the last origin only


@pytest.mark.parametrize(
    "model, params",
    [
        ("base_rate", {}),
        ("logistic", {}),
        ("logistic", {"class_weight": "balanced"}),
        pytest.param("rnn_event", TINY_RNN, marks=pytest.mark.slow),
    ],
)
def test_perturbing_prices_after_the_first_test_origin_leaves_its_prediction_unchanged(model, params):
    """Closes after origin c+1 feed the labels of the last training rows: if fit saw them, p(c+1) would move."""
    data = panel(n_series=1, n_steps=300)
    frame, _ = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    one_fold = event_fold_plan(origins_per_fold=3, step=3, windows=1, min_train_size=100)
    fold = event_folds(frame, one_fold, lookahead=H)["S0"][0]
    shocked = data.copy()
    after = shocked[DS] > fold.test_ds[0]
    shocked.loc[after, Y] *= 1.25  # a 25% jump: every masked label would flip to "event"
    shocked_frame, _ = event_frame(shocked, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    assert (shocked_frame[LABEL] != frame[LABEL]).any()  # the shock does change labels before the cutoff

    def first_p(prices):
        res = _run(prices, {model: params}, plan=one_fold)
        return res.predictions.loc[(res.predictions[MODEL] == model) & (res.predictions[DS] == fold.test_ds[0]), P]

    assert first_p(data).item() == pytest.approx(first_p(shocked).item(), abs=1e-12)


def test_the_base_rate_of_a_fold_ignores_everything_after_its_cutoff():
    data = panel(n_series=1)
    frame, _ = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    fold = event_folds(frame, plan(), lookahead=H)["S0"][2]
    shocked = data.copy()
    shocked.loc[shocked[DS] > fold.cutoff, Y] *= 0.7
    a, b = (_run(d, ["base_rate"]).predictions for d in (data, shocked))
    pa, pb = (x.loc[x[FOLD] == fold.fold, P].to_numpy() for x in (a, b))
    np.testing.assert_array_equal(pa, pb)
    assert pa[0] == pytest.approx(frame.loc[_known(frame, fold), LABEL].mean())


def _known(frame, fold):
    """Training rows of `fold` whose label is known at its cutoff and whose features are finite."""
    ds = pd.DatetimeIndex(frame[DS])
    pos = np.arange(len(frame))
    cutoff = ds.get_loc(fold.cutoff)
    features = frame.drop(columns=[ID, DS, Y, LABEL])
    return (pos <= cutoff - H) & frame[LABEL].notna().to_numpy() & features.notna().all(axis=1).to_numpy()


def test_a_failing_fold_is_recorded_and_the_run_carries_on():
    Spy.fits.clear()
    result = _run(panel(n_series=1), ["spy"], factory=lambda name, **p: Spy(fail_on_fit=(2,)), refit_every=1)
    assert result.failures[[ID, MODEL, FOLD]].values.tolist() == [["S0", "spy", 1]]
    assert "spy fails on fit #2" in result.failures["message"].iloc[0]
    assert sorted(result.predictions[FOLD].unique()) == [0, 2, 3, 4, 5]


def test_refit_policy_fits_once_per_block_and_keeps_the_blocks_threshold():
    Spy.fits.clear()
    result = _run(panel(n_series=1), ["spy"], factory=lambda name, **p: Spy(), refit_every=3)
    assert len(Spy.fits) == 2  # 6 folds in blocks of 3
    assert result.timings["refit"].tolist() == [True, False, False, True, False, False]
    per_fold = result.predictions.groupby(FOLD)[THRESHOLD].first()
    assert per_fold[0] == per_fold[1] == per_fold[2]


def test_the_base_rate_is_always_run_and_outputs_are_written(tmp_path):
    result = _run(panel(n_series=2), ["logistic"])
    assert set(result.predictions[MODEL]) == {"base_rate", "logistic"}
    evaluation = evaluate_events(result)
    result.save(tmp_path)
    evaluation.save(tmp_path)
    for name in ("predictions.parquet", "metrics.parquet", "leaderboard.csv", "calibration.csv", "significance.csv"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "failures.parquet").exists()  # written only when something failed
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["horizon"] == meta["lookahead"] == H and meta["plan"]["origins_per_fold"] == 5
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert {"roc_auc", "pr_auc", "brier", "log_loss", "f1", "mean_rank", "beats_base_rate"} <= set(board.columns)


def test_bad_parameters_and_data_fail_with_specific_errors():
    data = panel(n_series=1)
    with pytest.raises(ConfigError, match="threshold"):
        _run(data, ["base_rate"], threshold=-1.5)
    with pytest.raises(ConfigError, match="horizon"):  # features.targets names the event's lookahead its horizon
        _run(data, ["base_rate"], lookahead=0)
    with pytest.raises(ConfigError, match="unknown event model 'logistik'.*did you mean logistic"):
        _run(data, ["logistik"])
    bad = data.copy()
    bad.loc[10, Y] = -1.0
    with pytest.raises(DataError, match="S0: 1 non-positive"):
        _run(bad, ["base_rate"])
    with pytest.raises(DataError, match="1 duplicate \\(unique_id, ds\\) rows, first S0"):
        event_frame(pd.concat([data, data.iloc[[5]]]), threshold=0.03, lookahead=H, config=SMALL_FEATURES)


def test_leakage_guard_raises_rather_than_recording_a_failure(monkeypatch):
    import backtest.event_task as events

    def leaky(labels, *, start, cutoff, lookahead):
        raise LeakageError("label reads past the cutoff")

    monkeypatch.setattr(events, "training_window", leaky)
    with pytest.raises(LeakageError):
        _run(panel(n_series=1), ["base_rate"])


def test_registry_models_build_with_their_cell_and_reject_bad_parameters():
    assert make_event_model("gru_event").cell == "gru"
    with pytest.raises(ConfigError, match="class_weight"):
        make_event_model("logistic", class_weight="auto")
    with pytest.raises(ConfigError, match="cell"):
        make_event_model("rnn_event", cell="transformer")


def test_origins_with_nan_features_fail_their_fold_with_a_message_naming_the_column():
    data = panel(n_series=1)
    frame, _ = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    fold = event_folds(frame, plan(), lookahead=H)["S0"][-1]
    data.loc[data[DS] == fold.test_ds[2], "volume"] = np.nan  # a missing volume: NaN z-score from there on
    result = _run(data, ["logistic"])
    failed = result.failures[result.failures[MODEL] == "logistic"]
    assert failed[FOLD].tolist() == [fold.fold]
    assert f"S0: column volume_z_10 is NaN at 3 test origin(s) of fold {fold.fold}" in failed["message"].iloc[0]
    assert fold.fold not in set(result.predictions.loc[result.predictions[MODEL] == "logistic", FOLD])


def test_the_local_run_is_the_planned_units_run_one_by_one():
    """run_event_backtest = plan_event_units + run_unit per unit, the units the flow fans out, in sorted order."""
    data = panel(n_series=2)
    frame, columns = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    folds = event_folds(frame, plan(), lookahead=H)
    models = {"base_rate": {}, "logistic": {}}
    kw = {"lookahead": H, "columns": columns, "tail_fraction": 0.2}
    units = plan_event_units(["S1", "S0"], models=models, folds=folds, refit_every=None, **kw)
    assert [(u.uid, u.model, u.refit_every) for u in units] == [
        ("S0", "base_rate", 1), ("S0", "logistic", 1), ("S1", "base_rate", 1), ("S1", "logistic", 1)
    ]  # fmt: skip
    series = {uid: g.reset_index(drop=True) for uid, g in frame.groupby(ID)}
    by_hand = [run_unit(u, series[u.uid]) for u in units]
    assert all(isinstance(r, EventUnitResult) for r in by_hand)
    local = _run(data, list(models))
    pd.testing.assert_frame_equal(local.predictions, pd.concat([r.predictions for r in by_hand], ignore_index=True))
    assert local.meta["refit_every"] == {"base_rate": 1, "logistic": 1}


def test_a_unit_that_crashed_records_every_fold_as_failed():
    data = panel(n_series=1)
    frame, columns = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    folds = event_folds(frame, plan(), lookahead=H)
    kw = {"lookahead": H, "columns": columns, "tail_fraction": 0.2, "refit_every": 1}
    (unit,) = plan_event_units(["S0"], models={"logistic": {}}, folds=folds, **kw)
    crashed = failed_unit(unit, frame, TimeoutError("unit timed out"))
    assert crashed.failures[FOLD].tolist() == list(range(6)) and crashed.predictions.empty
    assert (crashed.failures["error_type"] == "TimeoutError").all()
    assert crashed.failures["message"].str.contains("logistic on S0: TimeoutError: unit timed out").all()
    with pytest.raises(LeakageError):  # a leak is never recorded, not even for a crashed unit
        failed_unit(unit, frame, LeakageError("leak"))


class _FailsAtOrigin(Spy):
    """A Spy whose predict_proba fails whenever the call includes one given origin row."""

    def __init__(self, bad_row: int):
        super().__init__()
        self.bad_row = bad_row

    def _predict(self, X, rows):
        if self.bad_row in rows:
            raise FloatingPointError("cannot predict this origin")
        return super()._predict(X, rows)


def test_a_failing_batched_predict_is_replayed_and_loses_only_the_failing_fold():
    """Same block loop as price forecasts: the block is replayed fold by fold from a fresh fit."""
    data = panel(n_series=1)
    frame, _ = event_frame(data, threshold=0.03, lookahead=H, config=SMALL_FEATURES)
    fold4 = event_folds(frame, plan(), lookahead=H)["S0"][4]
    bad_row = int(pd.DatetimeIndex(frame[DS]).get_loc(fold4.test_ds[0]))
    Spy.fits.clear()
    result = _run(data, ["spy"], factory=lambda name, **p: _FailsAtOrigin(bad_row), refit_every=3)
    assert result.failures[FOLD].tolist() == [4]
    assert "spy on S0: FloatingPointError: cannot predict this origin" in result.failures["message"].iloc[0]
    assert sorted(result.predictions[FOLD].unique()) == [0, 1, 2, 3, 5]
    assert result.timings.loc[result.timings["refit"], FOLD].tolist() == [0, 3, 5]
