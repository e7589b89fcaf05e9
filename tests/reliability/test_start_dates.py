"""Start dates (issue #14 item 4): no silent default start, rows cut by --start/--end said on the terminal, the cut
after the holiday check, and the data-quality summary printed by backtest and forecast, not only ingest.

The files are made here: a long csv of two tickers on real XNYS sessions from 2004 (before the old silent default
start 2005-03-01), with one zero-volume holiday row and one exact duplicate row so the summary has counts to show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.schema import ADJ_CLOSE, CLOSE, DS, HIGH, LOW, OPEN, VOLUME
from features.calendar import sessions
from ingest.sources.sample import SAMPLE_START, default_start
from ingest.spec import SourceSpec
from ingest.validate import validate
from pricecast.cli import app
from tests.ingest.ingest_helpers import bars

FIRST, LAST = "2004-10-01", "2005-06-30"  # straddles 2005-03-01
HOLIDAY = "2005-01-17"  # Martin Luther King Jr. Day: no XNYS session; feeds repeat the previous bar with volume 0


def prices_csv(path: Path, *, tickers: tuple[str, ...] = ("AAA", "BBB"), holiday: bool = True) -> Path:
    """A Yahoo-style long csv on XNYS sessions FIRST..LAST: gently rising seeded prices, volume > 0; optionally a
    zero-volume row on HOLIDAY repeating the previous session's prices; AAA's first row appears twice."""
    rng = np.random.default_rng(0)
    frames = []
    for i, ticker in enumerate(tickers):
        ds = sessions("XNYS", FIRST, LAST)
        close = 50.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0.0005, 0.01, len(ds))))
        frame = pd.DataFrame(
            {
                "Ticker": ticker,
                "Date": ds.strftime("%Y-%m-%d"),
                "Open": close,
                "High": close * 1.01,
                "Low": close * 0.99,
                "Close": close,
                "Adj Close": close,
                "Volume": rng.integers(1_000, 5_000, len(ds)).astype(float),
            }
        )
        if holiday:
            before = frame[frame["Date"] < HOLIDAY].iloc[[-1]].assign(Date=HOLIDAY, Volume=0.0)
            frame = pd.concat([frame, before]).sort_values("Date", kind="stable")
        if i == 0:
            frame = pd.concat([frame.iloc[[0]], frame])  # an exact duplicate: dropped, counted
        frames.append(frame)
    pd.concat(frames).to_csv(path, index=False)
    return path


def shown(result) -> str:
    """Everything the terminal showed (stdout and stderr), with rich's line wrapping undone."""
    return " ".join(result.output.split())


def n_sessions(start: str, end: str) -> int:
    return len(sessions("XNYS", start, end))


class TestNoSilentDefaultStart:
    """File sources keep all their history; only the bundled sample has a default start, and says so."""

    @pytest.mark.server
    @pytest.mark.xdist_group("prefect")
    def test_backtest_of_a_file_keeps_rows_before_2005_and_prints_the_quality_summary(self, prefect_server, tmp_path):
        path = prices_csv(tmp_path / "prices.csv")
        args = ["backtest", "--source", "csv", "--path", str(path), "--models", "naive", "--windows", "2"]
        result = CliRunner().invoke(app, [*args, "--horizon", "2", "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        text = shown(result)
        every = n_sessions(FIRST, LAST)
        assert f"AAA: {every} sessions {FIRST} .. {LAST}" in text, text  # not from 2005-03-01
        assert f"BBB: {every} sessions {FIRST} .. {LAST}" in text, text
        assert "rows before it" not in text and "sample:" not in text  # nothing was cut, so nothing is said about it
        # The data-quality paragraph, with the cleaning counts, as `ingest` prints it
        assert "Data quality" in text
        assert "1 exact duplicates dropped" in text and "1 zero-volume unchanged-price rows dropped" in text, text
        assert "Leaderboard" in text

    @pytest.mark.server
    @pytest.mark.xdist_group("prefect")
    def test_forecast_of_a_file_keeps_rows_before_2005_and_prints_the_quality_summary(self, prefect_server, tmp_path):
        path = prices_csv(tmp_path / "prices.csv", tickers=("AAA",))
        args = ["forecast", "--source", "csv", "--path", str(path), "--models", "naive", "--horizon", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        text = shown(result)
        assert "Data quality" in text and f"AAA: {n_sessions(FIRST, LAST)} sessions {FIRST} .. {LAST}" in text, text
        assert "1 zero-volume unchanged-price rows dropped" in text, text

    @pytest.mark.server
    @pytest.mark.xdist_group("prefect")
    def test_backtest_of_the_sample_says_its_default_start_and_what_it_cut(self, prefect_server, tmp_path):
        args = ["backtest", "--tickers", "IBM", "--models", "naive", "--windows", "2", "--horizon", "2"]
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        text = shown(result)
        assert f"sample: using sessions from {SAMPLE_START} (--start to change)" in text, text
        assert f"--start {SAMPLE_START} cut " in text and "rows before it (IBM " in text, text

    def test_the_flows_and_the_cli_share_one_default(self):
        from flows.params import BacktestParams, EventBacktestParams, ForecastParams

        for model in (BacktestParams, ForecastParams, EventBacktestParams):
            assert model().source.start is None, model  # as given: nothing assumed
            assert model().run_source.start == SAMPLE_START, model  # what the run reads: the sample's default
            assert model(source={"source": "csv", "path": "x.csv"}).run_source.start is None, model
        assert default_start("sample", None) == SAMPLE_START
        for source in ("csv", "parquet", "yfinance", "fdr"):
            assert default_start(source, None) is None
        assert default_start("sample", SAMPLE_START.replace(year=2001)).year == 2001
        for command in ("backtest", "forecast"):  # the --help a user reads names the same date
            assert SAMPLE_START.isoformat() in shown(CliRunner().invoke(app, [command, "--help"]))


class TestRowsCutBySayOnTheTerminal:
    def test_ingest_with_start_says_how_many_rows_it_cut_per_ticker(self, tmp_path):
        path = prices_csv(tmp_path / "prices.csv", holiday=False)
        start = "2005-03-01"
        result = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", str(path), "--start", start])
        assert result.exit_code == 0, result.output
        before = n_sessions(FIRST, "2005-02-28")
        total = 2 * before + 1  # AAA's duplicate of its first row is before start too
        expected = f"--start {start} cut {total:,} rows before it (AAA {before + 1:,}, BBB {before:,})"
        lines = [line.strip() for line in result.output.splitlines()]
        assert sum(line.startswith(expected) for line in lines) == 1, result.output  # one line, said once

    def test_ingest_with_start_and_end_says_both(self, tmp_path):
        path = prices_csv(tmp_path / "prices.csv", tickers=("AAA",), holiday=False)
        args = ["ingest", "--source", "csv", "--path", str(path), "--start", "2005-01-03", "--end", "2005-05-31"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        cut = n_sessions(FIRST, LAST) + 1 - n_sessions("2005-01-03", "2005-05-31")
        assert f"--start 2005-01-03 and --end 2005-05-31 cut {cut:,} rows outside them (AAA {cut:,})" in shown(result)


class TestTheCutRunsAfterTheHolidayCheck:
    """A zero-volume holiday row dated on --start is a non-session: dropped and counted, not kept as the first
    session because its predecessor (the row it repeats) was cut before the zero-volume rule saw it."""

    def test_holiday_row_on_the_start_date_is_dropped_not_kept(self):
        raw = bars("AAPL", 10, start="2023-12-22")  # 2023-12-22 .. 2024-01-04 on weekdays: 2023-12-25, 2024-01-01
        holidays = raw[DS].isin(["2023-12-25", "2024-01-01"])
        prices = [OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE]
        raw.loc[holidays, prices] = raw.shift().loc[holidays, prices]  # the feed repeats the previous bar
        raw.loc[holidays, VOLUME] = 0.0
        panel, report = validate(raw, SourceSpec(source="csv", path=Path("x.csv"), start="2024-01-01"))
        q = report.tickers["AAPL"]
        assert panel[DS].min() == pd.Timestamp("2024-01-02")  # the holiday row on the start date is gone
        assert q.zero_volume_dropped == 1 and q.non_session_rows == 0
        assert q.outside_range_dropped == 6  # 12-22, 12-25 (holiday), 12-26 .. 12-29: every row before start
        assert q.rows_out == 3 and q.rows_in == q.rows_out + q.zero_volume_dropped + q.outside_range_dropped

    def test_a_start_after_all_the_data_still_names_the_tickers_span(self):
        from common.errors import DataError

        with pytest.raises(DataError, match=r"AAPL: no rows between start=2025-01-01.*runs 2024-01-02 \.\. 2024-01-15"):
            validate(bars("AAPL", 10), SourceSpec(source="csv", path=Path("x.csv"), start="2025-01-01"))

    def test_the_cli_counts_the_holiday_row_on_the_start_date(self, tmp_path):
        path = prices_csv(tmp_path / "prices.csv", tickers=("BBB",))
        args = ["ingest", "--source", "csv", "--path", str(path), "--start", HOLIDAY]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        text = shown(result)
        after = n_sessions("2005-01-18", LAST)
        assert f"BBB: {after} sessions 2005-01-18 .. {LAST}" in text, text
        assert "1 zero-volume unchanged-price rows dropped" in text and "non-sessions" in text, text
