"""Fitted live models kept between forecast runs (tasks/fitted.py): update instead of refit while the stored fit's
rows are a prefix of today's series, refit when the history changed or too many sessions came; atomic writes."""

from __future__ import annotations

import pandas as pd
import pytest

from common.schema import DS, ID, Y
from features.build import FeatureConfig, build_features_for
from ingest.load import load_panel
from ingest.spec import SourceSpec
from models import make_model


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    panel, _ = load_panel(SourceSpec(tickers=("AAPL",), start="2011-01-01", end="2012-12-31"))
    return build_features_for(panel, FeatureConfig())


def _fit(series, model="naive", params=None, **kwargs):
    from tasks.fitted import fit_or_update, fits_dir

    return fit_or_update(series, model=model, params=params or {}, root=fits_dir(), **kwargs)


@pytest.mark.parametrize("model", ["naive", "ses", "arima", "ensemble"])
def test_the_update_path_forecasts_what_a_fit_then_update_sequence_does(series, model):
    first = _fit(series.iloc[:-3], model)
    assert first.path == "fit" and first.message == f"fit AAPL {model}: no stored fit"
    second = _fit(series, model)
    assert second.path == "update" and second.new_sessions == 3
    assert second.message == f"updated AAPL {model} with 3 new sessions (fitted through 2012-12-26)"
    want = make_model(model).fit(series.iloc[:-3]).update(series.iloc[-3:]).predict(5)
    pd.testing.assert_frame_equal(second.model.predict(5), want)
    assert _fit(series, model).new_sessions == 3  # the stored fit is not rewritten by an update: still 3 since it


def test_a_changed_history_forces_a_refit_that_says_where(series):
    _fit(series.iloc[:-1])
    revised = series.copy()
    revised.loc[revised[DS] == "2012-06-01", Y] *= 1.01  # a corrected close half a year back
    refit = _fit(revised)
    assert refit.path == "refit"
    assert refit.message == "refit AAPL naive: data changed before 2012-12-28 (first changed session 2012-06-01)"
    assert refit.model.predict(1)["yhat"].iloc[0] == revised[Y].iloc[-1]
    assert _fit(revised).path == "update"  # the refit was stored
    shorter = _fit(revised.loc[revised[DS] >= "2011-02-01"])  # a later start changes the first rows
    assert shorter.path == "refit" and "first changed session 2011-02-01" in shorter.message


def test_more_new_sessions_than_max_update_sessions_refit(series):
    _fit(series.iloc[:-5])
    refit = _fit(series, max_update_sessions=4)
    assert refit.path == "refit" and "5 new sessions since the fit through 2012-12-21 (more than 4)" in refit.message
    assert _fit(series, max_update_sessions=0).path == "update"  # same rows as the stored fit: 0 new sessions


def test_parameters_and_code_version_key_the_stored_fit(series, monkeypatch):
    import tasks.fitted

    _fit(series.iloc[:-1], "moving_average")
    assert _fit(series, "moving_average", {"window": 5}).path == "fit"  # other parameters: another directory
    monkeypatch.setattr(tasks.fitted, "code_version", lambda: "other-code")
    changed = _fit(series, "moving_average")
    assert changed.path == "refit" and "code changed since the stored fit" in changed.message


def test_a_crash_while_writing_keeps_the_previous_fit_and_a_model_that_cannot_be_saved_refits(series, monkeypatch):
    from models.baselines import Naive
    from tasks.fitted import fit_dir, fits_dir

    _fit(series.iloc[:-2])
    directory = fit_dir(fits_dir(), "AAPL", "naive", {})
    before = sorted(p.name for p in directory.iterdir())

    def dies(self, path):
        path.write_bytes(b"half a pickle")
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(Naive, "save", dies)
        refit = _fit(series.iloc[:-1], max_update_sessions=0)  # 1 new session > 0: refit, whose write dies
    assert refit.path == "refit" and "could not store the fitted naive on AAPL (OSError: disk full)" in refit.warning
    assert refit.model.predict(1)["yhat"].iloc[0] == series[Y].iloc[-2]  # the forecast is still made
    assert sorted(p.name for p in directory.iterdir()) == before
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]  # no staging directory left behind
    assert _fit(series.iloc[:-1]).path == "update"  # the previous, whole fit is still there

    def cannot_update(self, y_new, X_new):
        raise FloatingPointError("singular state")

    with monkeypatch.context() as patched:
        patched.setattr(Naive, "_update", cannot_update)
        failed = _fit(series)
    assert failed.path == "refit" and "update failed" in failed.message and "singular state" in failed.message
    assert failed.model.predict(1)["yhat"].iloc[0] == series[Y].iloc[-1]

    (directory / "model.pkl").write_bytes(b"not a pickle")  # a corrupt file (e.g. written by hand)
    broken = _fit(series)
    assert broken.path == "refit" and "stored fit unreadable" in broken.message


def test_tickers_unsafe_as_file_names_get_a_safe_directory(tmp_path):
    from tasks.fitted import fit_dir

    fx = fit_dir(tmp_path, "USD/KRW", "naive", {})
    assert fx.parent.parent == tmp_path and fx.parent.name == "USD%2FKRW"  # percent-encoded (fileio.safe_name)
    assert fit_dir(tmp_path, "005930", "naive", {}).parent.name == "005930"
    assert fit_dir(tmp_path, "..", "naive", {}).parent.parent == tmp_path


def test_forecast_unit_reports_its_path_and_what_a_champion_ran(series):
    from store.results_store import RESOLVED_MODEL
    from tasks.forecast import FIT_PATH, forecast_unit

    kwargs = {"uid": "AAPL", "params": {}, "horizon": 2, "source": "sample", "target": "adj_close"}
    first = forecast_unit.fn(series.iloc[:-1], model="champion", resolved="drift", **kwargs)
    assert (first["model"] == "champion").all() and (first[RESOLVED_MODEL] == "drift").all()
    assert (first[FIT_PATH] == "fit").all()
    second = forecast_unit.fn(series, model="drift", **kwargs)  # the same fit directory as the champion's drift
    assert (second[FIT_PATH] == "update").all() and second[RESOLVED_MODEL].isna().all()
    want = make_model("drift").fit(series.iloc[:-1]).update(series.iloc[-1:]).predict(2)
    assert second["yhat"].tolist() == want["yhat"].tolist()
    assert set(second[ID]) == {"AAPL"}
