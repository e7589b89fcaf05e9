"""Values that break arithmetic (issue 14, items 3 and 5): overflow, feed spikes, undefined scales, the run's horizon.

Real-data shapes, each built here: a Yahoo-format KRX file with a x100 spike for 8 sessions, a 1e308 cell, a x1000
typo for one session. Default: ingest stops with one line naming the ticker, the column and the spike's first and
last session; `spikes='repair'` (CLI --spikes repair) is the only way to change them, counted and warned. Metrics
never report MASE 0 from an overflowing scale. A recurrent model is fitted for the horizon the run asks for.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtest.engine import run_backtest
from backtest.evaluate import evaluate
from backtest.folds import FoldPlan
from common.errors import DataError
from common.schema import ADJ_CLOSE, CLOSE, DS, HIGH, ID, LOW, OPEN, VOLUME, Y
from features.calendar import sessions
from ingest.load import load_panel
from ingest.quality import LABELS
from ingest.spec import SourceSpec
from ingest.validate import validate
from pricecast.cli import app
from tests.ingest.ingest_helpers import bars

KRX = "005930.KS"
TINY_RNN = {"units": 4, "epochs": 2, "window": 10, "patience": 1}


def yahoo_krx(n: int = 80, *, seed: int = 3) -> pd.DataFrame:
    """A Yahoo download of a KRX stock: Date,Open,High,Low,Close,Adj Close,Volume on XKRX sessions, no ticker."""
    rng = np.random.default_rng(seed)
    ds = sessions("XKRX", "2023-01-02", "2023-12-29")[:n]
    close = np.round(70000 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))), -1)
    return pd.DataFrame(
        {
            "Date": ds.strftime("%Y-%m-%d"),
            "Open": close,
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Adj Close": close,
            "Volume": rng.integers(1_000_000, 9_000_000, n),
        }
    )


def _spiked(frame: pd.DataFrame, first: int, sessions_: int, factor: float) -> pd.DataFrame:
    out = frame.copy()
    rows = out.index[first : first + sessions_]
    cols = ["Open", "High", "Low", "Close", "Adj Close"]
    out.loc[rows, cols] = out.loc[rows, cols].astype(float) * factor
    return out


def _file(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / f"{KRX}.csv"
    frame.to_csv(path, index=False)
    return path


def _load(path: Path, **spec) -> tuple[pd.DataFrame, object]:
    return load_panel(SourceSpec(source="csv", path=path, **spec))


# ---------------------------------------------------------------------------------------------- ingest policy


class TestSpikesAndOverflowAtIngest:
    def test_x100_spike_for_8_sessions_stops_with_one_line_naming_ticker_column_and_dates(self, tmp_path):
        raw = yahoo_krx()
        path = _file(tmp_path, _spiked(raw, 30, 8, 100.0))
        with pytest.raises(DataError) as info:
            _load(path)
        message = str(info.value)
        assert "\n" not in message
        first, last, back = raw["Date"].iloc[30], raw["Date"].iloc[37], raw["Date"].iloc[38]
        assert message.startswith(f"{KRX}: column 'adj_close' has 1 round-trip spike")
        ratio = raw["Adj Close"].iloc[30] * 100 / raw["Adj Close"].iloc[29]
        assert f"{first} .. {last} (8 sessions)" in message and f"on {back}" in message and f"(x{ratio:.3g})" in message
        assert "spikes='repair'" in message and "--spikes repair" in message

    def test_a_1e308_cell_is_refused_not_passed_on_with_a_jump_warning(self, tmp_path):
        raw = yahoo_krx()
        raw.loc[40, ["Close", "Adj Close"]] = 1e308
        with pytest.raises(DataError, match=rf"{KRX}: column 'adj_close' has 1 round-trip spike.*1e\+308"):
            _load(_file(tmp_path, raw))

    def test_a_1e308_cell_that_never_comes_back_is_an_overflow_error(self, tmp_path):
        raw = yahoo_krx()
        raw.loc[raw.index[-1], ["Close", "Adj Close"]] = 1e308  # the last session: no return, so not a spike
        with pytest.raises(DataError, match=rf"{KRX}: column 'close' has 1 values beyond 1e\+150.*1e\+308"):
            _load(_file(tmp_path, raw))

    def test_an_overflowing_value_in_another_price_column_is_refused(self):
        raw = bars("AAPL", 12)
        raw.loc[5, HIGH] = 1e200
        with pytest.raises(DataError, match=r"AAPL: column 'high' has 1 values beyond 1e\+150.*: row 5 \(2024-01-08\)"):
            validate(raw, SourceSpec())

    def test_a_value_that_reads_as_infinite_is_an_overflow_not_non_numeric(self):
        raw = bars("AAPL", 12).astype({CLOSE: object})
        raw.loc[4, CLOSE] = "1e400"
        with pytest.raises(DataError, match=r"AAPL: column 'close' has 1 values beyond 1e\+150 or infinite"):
            validate(raw, SourceSpec())

    def test_a_x1000_typo_for_one_session_is_a_round_trip(self):
        raw = bars("AAPL", 30)
        raw.loc[12, [CLOSE, ADJ_CLOSE]] *= 1000
        with pytest.raises(DataError, match=r"2024-01-17 \.\. 2024-01-17 \(1 session\).*\(x1e\+03\)"):
            validate(raw, SourceSpec())

    def test_repair_is_explicit_counted_and_named(self, tmp_path, caplog):
        raw = yahoo_krx()
        path = _file(tmp_path, _spiked(raw, 30, 8, 100.0))
        with caplog.at_level(logging.WARNING, logger="ingest.validate"):
            panel, report = _load(path, spikes="repair")
        q = report.tickers[KRX]
        assert q.spikes_repaired == 8 and q.jumps_flagged == 0 and q.rows_out == len(raw)
        pre = float(raw["Adj Close"].iloc[29])
        repaired = panel[Y].to_numpy()[30:38]
        assert np.all(repaired == pre)  # the previous (pre-spike) session's prices, every price column
        assert np.all(
            panel[[OPEN, HIGH, LOW, CLOSE]].to_numpy()[30:38]
            == raw.iloc[[29] * 8][["Open", "High", "Low", "Close"]].to_numpy()
        )
        assert panel[VOLUME].to_numpy()[30:38].tolist() == raw["Volume"].iloc[30:38].astype(float).tolist()
        (warning,) = q.warnings
        assert f"{raw['Date'].iloc[30]} .. {raw['Date'].iloc[37]} (8 sessions)" in warning and "repair" in warning
        assert f"8 {LABELS['spikes_repaired']}" in " ".join(report.summary_lines())
        assert "round-trip spike" in caplog.text

    def test_repair_also_removes_a_1e308_cell(self):
        raw = bars("AAPL", 30)
        raw.loc[12, [CLOSE, ADJ_CLOSE]] = 1e308
        panel, report = validate(raw, SourceSpec(spikes="repair"))
        assert report.tickers["AAPL"].spikes_repaired == 1
        assert panel[Y].max() < 1e3

    def test_a_one_way_jump_keeps_its_warning(self):
        raw = bars("AAPL", 30)
        raw.loc[15:, [OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE]] /= 10  # an unadjusted 1:10 split never comes back
        panel, report = validate(raw, SourceSpec())
        q = report.tickers["AAPL"]
        assert q.jumps_flagged == 1 and q.spikes_repaired == 0
        assert any("left as is - an unadjusted split" in w for w in q.warnings)

    def test_cli_refuses_by_default_and_repairs_with_spikes_repair(self, tmp_path):
        path = _file(tmp_path, _spiked(yahoo_krx(), 30, 8, 100.0))
        refused = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(path)])
        assert refused.exit_code == 2
        errors = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith(f"error: {KRX}: column 'adj_close' has 1 round-trip spike")
        repaired = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(path), "--spikes", "repair"])
        assert repaired.exit_code == 0, repaired.output
        assert f"8 {LABELS['spikes_repaired']}" in " ".join(repaired.stdout.split())


# ---------------------------------------------------------------------------------------------- metrics


def _panel_with(value: float, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = sessions("XNYS", "2021-01-04", "2021-12-31")[:n]
    y = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    y[10] = value  # inside every fold's training window
    return pd.DataFrame({ID: "HUGE", DS: ds, Y: y})


class TestScaledMetricsNeedAValidScale:
    def test_a_series_with_a_huge_value_gives_no_mase_0(self, caplog):
        plan = FoldPlan(horizon=3, step=3, windows=3)
        result = run_backtest(_panel_with(1e308), models=["naive"], plan=plan, refit_every=1)
        assert np.isinf(result.fold_info["scale_mae"]).all()  # |diff| sums overflow: the case of issue 14
        with caplog.at_level(logging.WARNING, logger="backtest.metrics"):
            board = evaluate(result).leaderboard
        row = board.set_index("model").loc["naive"]
        assert np.isnan(row["mase"]) and np.isnan(row["rmsse"])  # undefined, not 0
        assert row["n_scale_undefined"] == 3
        assert "HUGE folds [0, 1, 2]" in caplog.text and "n_scale_undefined" in caplog.text

    def test_a_squared_scale_that_overflows_is_undefined_too(self):
        plan = FoldPlan(horizon=3, step=3, windows=2)
        result = run_backtest(_panel_with(1e200), models=["naive"], plan=plan, refit_every=1)
        board = evaluate(result).leaderboard.set_index("model")
        assert np.isfinite(board.loc["naive", "mase"]) and board.loc["naive", "mase"] > 0
        assert np.isnan(board.loc["naive", "rmsse"]) and board.loc["naive", "n_scale_undefined"] == 2


# ---------------------------------------------------------------------------------------------- horizon in fit


class TestRecurrentModelsFollowTheRunHorizon:
    def test_lstm_backtest_at_horizon_10_fails_no_fold(self):
        rng = np.random.default_rng(1)
        ds = sessions("XNYS", "2020-01-02", "2021-12-31")[:200]
        panel = pd.DataFrame({ID: "SYN", DS: ds, Y: 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))})
        plan = FoldPlan(horizon=10, step=10, windows=2)
        result = run_backtest(panel, models={"lstm": TINY_RNN}, plan=plan, refit_every=0)
        assert result.failures.empty, result.failures["message"].tolist()
        assert sorted(result.forecasts["h"].unique()) == list(range(1, 11))
        assert np.isfinite(result.forecasts["yhat"]).all()

    def test_live_fit_is_fitted_and_stored_per_horizon(self, tmp_path):
        from tasks.fitted import fit_or_update

        rng = np.random.default_rng(2)
        ds = sessions("XNYS", "2020-01-02", "2021-12-31")[:150]
        series = pd.DataFrame({ID: "SYN", DS: ds, Y: 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 150)))})
        ten = fit_or_update(series, model="gru", params=TINY_RNN, root=tmp_path, horizon=10)
        assert len(ten.model.predict(10)) == 10 and ten.path == "fit"
        five = fit_or_update(series, model="gru", params=TINY_RNN, root=tmp_path, horizon=5)
        assert five.path == "fit" and five.model.horizon_ == 5  # not the network trained for 10 steps
        again = fit_or_update(series, model="gru", params=TINY_RNN, root=tmp_path, horizon=10)
        assert again.path == "update" and again.model.horizon_ == 10
