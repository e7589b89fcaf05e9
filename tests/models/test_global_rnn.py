"""GlobalRecurrentForecaster: one network over a panel; per-series scaling, no look-ahead, batched == looped,
per-series errors, embeddings, skipped series, determinism across processes, persistence and warm starts."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError, NotFittedError
from common.schema import DS, ID, LEVELS, Y
from features.calendar import next_sessions, sessions
from models.base import OriginForecasts
from models.global_rnn import GlobalRecurrentForecaster, log_return_scale

N_TRAIN = 300
N = N_TRAIN + 40
H = 5
TINY = {"units": 4, "epochs": 2, "window": 10, "patience": 1, "batch_size": 64}
# A calm index, a stock, a volatile coin (24/7 by its spelling) and one on a calendar chosen by the run.
VOLS = {"IDX": 0.005, "STK": 0.012, "BTC-USD": 0.04, "FXP": 0.008}
CALENDARS = {"FXP": "24/5"}
EXCHANGES = {"IDX": "XNYS", "STK": "XNYS", "BTC-USD": "24/7", "FXP": "24/5"}


def _panel(n: int = N, *, seed: int = 3, vols: dict[str, float] = VOLS) -> pd.DataFrame:
    """Seeded geometric random walks on XNYS sessions, one per uid, with the uid's volatility."""
    rng = np.random.default_rng(seed)
    ds = sessions("XNYS", "2015-01-02", "2016-12-30")[:n]
    frames = [
        pd.DataFrame({ID: uid, DS: ds, Y: 100 * np.exp(np.cumsum(rng.normal(0.0002, vol, n)))})
        for uid, vol in vols.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _head(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each series' first `n` rows."""
    return frame.groupby(ID, sort=False).head(n).reset_index(drop=True)


def _row_dates(frame: pd.DataFrame, rows: list[int]) -> list[pd.Timestamp]:
    ds = pd.DatetimeIndex(frame[DS].unique())
    return [ds[r] for r in rows]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel()


@pytest.fixture(scope="module")
def fitted(panel) -> GlobalRecurrentForecaster:
    return GlobalRecurrentForecaster(**TINY).fit_panel(_head(panel, N_TRAIN), horizon=H, calendars=CALENDARS)


def _cutoffs(panel: pd.DataFrame, rows: list[int], uids=VOLS) -> dict[str, list[pd.Timestamp]]:
    return {uid: _row_dates(panel, rows) for uid in uids}


def test_import_does_not_load_tensorflow():
    code = "import sys, models.global_rnn; sys.exit(int('tensorflow' in sys.modules or 'keras' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_config_errors_and_tags():
    with pytest.raises(ConfigError, match="cell"):
        GlobalRecurrentForecaster(cell="transformer")
    with pytest.raises(ConfigError, match="embedding_dim"):
        GlobalRecurrentForecaster(embedding_dim=-1)
    assert GlobalRecurrentForecaster(cell="gru").name == "global_gru"
    assert GlobalRecurrentForecaster.global_model and not GlobalRecurrentForecaster.supports_exog
    assert log_return_scale(np.log(np.full(50, 7.0))) == 1.0  # a flat series: no NaN, log units


@pytest.mark.slow
def test_panel_forecasts_shapes_dates_and_bands(panel, fitted):
    rows = [N_TRAIN - 1, N_TRAIN + 4, N_TRAIN + 17]
    out = fitted.predict_panel_origins(panel, _cutoffs(panel, rows), H)
    assert list(out) == list(VOLS) and not fitted.skipped_
    assert fitted.exchanges_ == EXCHANGES and fitted.residuals_.shape[1] == H
    assert set(fitted.scales_) == set(VOLS) and fitted.scales_["BTC-USD"] > 5 * fitted.scales_["IDX"]
    for uid, f in out.items():
        assert isinstance(f, OriginForecasts) and f.unique_id == uid
        assert f.mean.shape == (3, H) and np.isfinite(f.mean).all()
        for k, cut in enumerate(f.cutoffs):
            assert list(f.ds[k]) == list(next_sessions(EXCHANGES[uid], cut, H).values)
        lo80, hi80 = f.intervals[80]
        lo95, hi95 = f.intervals[95]
        assert (lo95 <= lo80).all() and (lo80 <= f.mean).all() and (f.mean <= hi80).all() and (hi80 <= hi95).all()
    # A coin's band is wider (relative to its price) than a calm index's: the pooled residuals scale by s_i.
    width = {u: (out[u].intervals[95][1] - out[u].intervals[95][0]) / out[u].mean for u in ("IDX", "BTC-USD")}
    assert (width["BTC-USD"] > 3 * width["IDX"]).all()
    with pytest.raises(DataError, match=f"{H + 1} steps"):
        fitted.predict_panel_origins(panel, _cutoffs(panel, rows), H + 1)


@pytest.mark.slow
def test_scaling_one_series_scales_only_its_forecasts(panel, fitted):
    scaled = panel.copy()
    scaled.loc[scaled[ID] == "STK", Y] *= 1000.0
    other = GlobalRecurrentForecaster(**TINY).fit_panel(_head(scaled, N_TRAIN), horizon=H, calendars=CALENDARS)
    cuts = _cutoffs(panel, [N_TRAIN - 1, N_TRAIN + 9])
    a = fitted.predict_panel_origins(panel, cuts, H)
    b = other.predict_panel_origins(scaled, cuts, H)
    for uid in VOLS:
        factor = 1000.0 if uid == "STK" else 1.0
        np.testing.assert_allclose(b[uid].mean, factor * a[uid].mean, rtol=1e-5, err_msg=uid)
        for level in LEVELS:
            for got, want in zip(b[uid].intervals[level], a[uid].intervals[level], strict=True):
                np.testing.assert_allclose(got, factor * want, rtol=1e-5, err_msg=f"{uid} {level}")


@pytest.mark.slow
def test_no_look_ahead_across_the_panel(panel, fitted):
    """Fitted on rows <= the first cutoff; every series' rows after a cutoff (x10 + noise) never move its forecasts."""
    rows = [N_TRAIN - 1, N_TRAIN + 6]
    cuts = _cutoffs(panel, rows)
    rng = np.random.default_rng(0)
    for row in rows:
        tampered = panel.copy()
        after = tampered[DS] > _row_dates(panel, [row])[0]
        tampered.loc[after, Y] = tampered.loc[after, Y] * 10.0 + rng.uniform(0.0, 5.0, int(after.sum()))
        upto = {uid: [c for c in cs if c <= _row_dates(panel, [row])[0]] for uid, cs in cuts.items()}
        a = fitted.predict_panel_origins(panel, upto, H)
        b = fitted.predict_panel_origins(tampered, upto, H)
        for uid in VOLS:
            np.testing.assert_array_equal(a[uid].mean, b[uid].mean)
            np.testing.assert_array_equal(a[uid].intervals[95][0], b[uid].intervals[95][0])


@pytest.mark.slow
def test_batched_equals_origin_by_origin(panel, fitted):
    rows = [N_TRAIN - 1, N_TRAIN, N_TRAIN + 4, N_TRAIN + 17]
    new = _panel(seed=99, vols={"NEW": 0.02})  # unseen: scaled on its rows up to each origin
    history = pd.concat([panel, new], ignore_index=True)
    cuts = _cutoffs(panel, rows, [*VOLS, "NEW"])
    batched = fitted.predict_panel_origins(history, cuts, H)
    for uid, dates in cuts.items():
        for k, cut in enumerate(dates):
            one = fitted.predict_panel_origins(history, {uid: [cut]}, H)[uid]
            np.testing.assert_allclose(batched[uid].mean[k], one.mean[0], rtol=1e-6, err_msg=f"{uid} {cut}")
            np.testing.assert_allclose(batched[uid].intervals[80][1][k], one.intervals[80][1][0], rtol=1e-6)
            assert (batched[uid].ds[k] == one.ds[0]).all()


@pytest.mark.slow
def test_per_series_problems_are_that_series_errors(panel, fitted):
    rows = [N_TRAIN - 1, N_TRAIN + 4]
    bad = panel.copy()
    cut = _row_dates(panel, rows)
    in_window = (bad[ID] == "STK") & (bad[DS] == _row_dates(panel, [N_TRAIN - 3])[0])
    bad.loc[in_window, Y] = -1.0
    bad.loc[(bad[ID] == "FXP") & (bad[DS] == _row_dates(panel, [N_TRAIN + 2])[0]), Y] = np.nan
    bad = bad.loc[~((bad[ID] == "IDX") & (bad[DS] == cut[1]))]  # IDX has no row at its second cutoff
    cuts = _cutoffs(panel, rows) | {"EARLY": _row_dates(panel, [3])}
    early = _panel(seed=5, vols={"EARLY": 0.01})
    out = fitted.predict_panel_origins(pd.concat([bad, early], ignore_index=True), cuts, H)
    assert isinstance(out["BTC-USD"], OriginForecasts)
    for uid, pattern in {
        "STK": "STK: price -1.0 at .* finite prices > 0",
        "FXP": "FXP: price nan at .* finite prices > 0",
        "IDX": f"IDX: cutoff {cut[1].date()} is not a row",
        "EARLY": "EARLY: the origin at .* has 4 rows up to it, the model needs window=10",
    }.items():
        assert isinstance(out[uid], DataError), uid
        with pytest.raises(DataError, match=pattern):
            raise out[uid]
        assert "global_lstm on" in str(out[uid])
    # The healthy series' forecasts are the ones it gets in a clean panel.
    clean = fitted.predict_panel_origins(panel, {"BTC-USD": cut}, H)["BTC-USD"]
    np.testing.assert_allclose(out["BTC-USD"].mean, clean.mean, rtol=1e-6)


@pytest.fixture(scope="module")
def embedded(panel) -> GlobalRecurrentForecaster:
    """Embedding on, fitted on three series and one too short to give a training window."""
    train = _head(panel[panel[ID] != "FXP"], N_TRAIN)
    short = _panel(12, seed=8, vols={"TINY": 0.01})
    return GlobalRecurrentForecaster(embedding_dim=2, **TINY).fit_panel(
        pd.concat([train, short], ignore_index=True), horizon=H
    )


@pytest.mark.slow
def test_embedding_forecasts_only_fitted_series(panel, fitted, embedded):
    assert embedded.series_index_ == {"BTC-USD": 0, "IDX": 1, "STK": 2}
    assert [type(layer).__name__ for layer in embedded.model_.layers].count("Embedding") == 1
    cuts = _cutoffs(panel, [N_TRAIN - 1, N_TRAIN + 3])
    out = embedded.predict_panel_origins(panel, cuts, H)
    assert all(isinstance(out[u], OriginForecasts) and np.isfinite(out[u].mean).all() for u in ("IDX", "STK"))
    assert isinstance(out["FXP"], DataError) and "refit including it or use embedding_dim=0" in str(out["FXP"])
    # Embedding off: the network forecasts a ticker it never saw (zero-shot).
    new = _panel(seed=99, vols={"NEW": 0.02})
    cut = _row_dates(new, [N_TRAIN + 3])
    zero_shot = fitted.predict_panel_origins(new, {"NEW": cut}, H, calendars={"NEW": "24/7"})["NEW"]
    assert isinstance(zero_shot, OriginForecasts) and np.isfinite(zero_shot.mean).all()
    assert list(zero_shot.ds[0]) == list(next_sessions("24/7", cut[0], H).values)  # its calendar, given here


@pytest.mark.slow
def test_too_short_series_is_skipped_and_all_short_is_an_error(panel, embedded):
    assert list(embedded.skipped_) == ["TINY"] and "12 rows give 0 windows" in embedded.skipped_["TINY"]
    out = embedded.predict_panel_origins(_panel(12, seed=8, vols={"TINY": 0.01}), {"TINY": _row_dates(panel, [11])}, H)
    assert isinstance(out["TINY"], DataError) and "left out of the fit: 12 rows" in str(out["TINY"])
    shorts = _panel(13, seed=2, vols={"A": 0.01, "B": 0.02})
    with pytest.raises(DataError, match=r"0 of 2 series can be trained.*A: 13 rows give 0 windows.*shorter window"):
        GlobalRecurrentForecaster(**TINY).fit_panel(shorts, horizon=H)


_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.models.test_global_rnn import H, N_TRAIN, TINY, _cutoffs, _head, _panel
from models.global_rnn import GlobalRecurrentForecaster
panel = _panel()
model = GlobalRecurrentForecaster(**TINY).fit_panel(_head(panel, N_TRAIN), horizon=H)
out = model.predict_panel_origins(panel, _cutoffs(panel, [N_TRAIN - 1, N_TRAIN + 7]), H)
print(json.dumps({{uid: [f.mean.tolist(), f.intervals[95][1].tolist()] for uid, f in out.items()}}))
"""


@pytest.mark.slow
def test_identical_forecasts_in_two_fresh_processes():
    root = str(Path(__file__).resolve().parents[2])
    script = _SCRIPT.format(root=root)
    runs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
        for _ in range(2)
    ]
    outs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr.decode()[-2000:]
        outs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    assert set(outs[0]) == set(VOLS)
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_save_load_round_trip(panel, fitted, embedded, tmp_path):
    cuts = _cutoffs(panel, [N_TRAIN - 1, N_TRAIN + 11])
    for model in (fitted, embedded):
        loaded = GlobalRecurrentForecaster.load(model.save(tmp_path / "global.model"))
        assert loaded.model_ is None  # weights + config only; rebuilt on use
        a, b = model.predict_panel_origins(panel, cuts, H), loaded.predict_panel_origins(panel, cuts, H)
        for uid in cuts:
            if isinstance(a[uid], Exception):
                assert type(a[uid]) is type(b[uid]) and str(a[uid]) == str(b[uid])
                continue
            np.testing.assert_array_equal(a[uid].mean, b[uid].mean)
            np.testing.assert_array_equal(a[uid].intervals[80][0], b[uid].intervals[80][0])
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.series_index_ == fitted.series_index_ and restored.scales_ == fitted.scales_


@pytest.mark.slow
def test_warm_start_same_architecture_only():
    small = _panel(200, seed=4, vols={"A": 0.01, "B": 0.03})
    model = GlobalRecurrentForecaster(warm_epochs=1, **TINY).fit_panel(_head(small, 150), horizon=H)
    assert model.warm_started_ is False
    first_net = model.model_
    model.fit_panel(_head(small, 180), horizon=H)  # a later refit: same series, same architecture
    assert model.warm_started_ is True and model.epochs_run_ == 1 and model.model_ is first_net
    wider = pickle.loads(pickle.dumps(model))
    wider.window = 12  # as a differently configured instance would be; weights of window 10 do not fit
    wider.fit_panel(_head(small, 180), horizon=H)
    assert wider.warm_started_ is False
    longer = pickle.loads(pickle.dumps(model)).fit_panel(_head(small, 180), horizon=H + 1)
    assert longer.warm_started_ is False and longer.horizon_ == H + 1


@pytest.mark.slow
def test_one_series_contract_is_the_degenerate_panel(panel):
    one = panel[panel[ID] == "STK"].reset_index(drop=True)
    a = GlobalRecurrentForecaster(**TINY).fit(one.iloc[:N_TRAIN], horizon=H)
    b = GlobalRecurrentForecaster(**TINY).fit_panel(one.iloc[:N_TRAIN], horizon=H)
    cuts = list(one[DS].iloc[[N_TRAIN - 1, N_TRAIN + 4, N_TRAIN + 17]])
    via_contract = a.predict_origins(one, cuts, H)
    via_panel = b.predict_panel_origins(one, {"STK": cuts}, H)["STK"]
    np.testing.assert_allclose(via_contract.mean, via_panel.mean, rtol=1e-6)
    assert (via_contract.ds == via_panel.ds).all()
    assert a.ds_[-1] == cuts[-1]  # the contract path ends conditioned on the last cutoff
    with pytest.raises(DataError, match=f"{H + 1} steps"):
        a.predict(H + 1)
    with pytest.raises(NotFittedError, match="predict_panel_origins"):
        b.predict(H)
    with pytest.raises(DataError, match="needs the horizon at fit"):
        GlobalRecurrentForecaster(**TINY).fit(one.iloc[:N_TRAIN])
    with pytest.raises(DataError, match="constructed with horizon=3 but fitted for 5"):
        GlobalRecurrentForecaster(**TINY, horizon=3).fit_panel(one.iloc[:N_TRAIN], horizon=H)
