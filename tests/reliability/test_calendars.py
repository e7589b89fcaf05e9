"""Calendars beyond the US and Korea (issue #14, item 1): real exchange sessions for every listing, checked at
ingest, chosen per ticker, kept in the store, and followed by the forecasts' dates.

Every series here is built on the exchange's own sessions (exchange-calendars), so the dates the tests expect are
the real ones: London trades on 2023-02-20 (NYSE's Presidents' Day) and closes for Good Friday and Easter Monday;
Tokyo closes for Coming of Age Day (2023-01-09).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError, DataError
from common.schema import DS, ID, Y
from features.calendar import SUFFIX_CALENDARS, infer_calendar, sessions
from ingest.load import load_panel
from ingest.price_store import PriceStore
from ingest.spec import SourceSpec
from models import make_model
from models.base import fit_model

BIN = Path(sys.executable).parent


def yahoo_csv(path: Path, dates: pd.DatetimeIndex, *, seed: int = 0) -> Path:
    """A Yahoo Finance download: Date, Open, High, Low, Close, Adj Close, Volume."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
    frame = pd.DataFrame(
        {
            "Date": pd.DatetimeIndex(dates).strftime("%Y-%m-%d"),
            "Open": close,
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Adj Close": close,
            "Volume": rng.integers(1_000, 9_000, len(dates)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def exchange_days(exchange: str, start: str, end: str) -> pd.DatetimeIndex:
    return sessions(exchange, start, end)


def forecast_dates(panel: pd.DataFrame, ticker: str, calendar: str | None, horizon: int = 5) -> list[str]:
    series = panel.loc[panel[ID] == ticker, [ID, DS, Y]]
    model = fit_model(make_model("naive"), series, horizon, calendar=calendar)
    return model.predict(horizon)[DS].dt.strftime("%Y-%m-%d").tolist()


def load(folder: Path, store: PriceStore | None = None, **spec):
    return load_panel(SourceSpec(source="csv", path=folder, **spec), store=store)


class TestSuffixesMapToRealExchanges:
    def test_every_suffix_names_an_installed_calendar(self):
        import exchange_calendars as xc

        names = set(xc.get_calendar_names(include_aliases=True))
        assert {c for c in SUFFIX_CALENDARS.values() if c not in names} == set()

    @pytest.mark.parametrize(
        ("ticker", "calendar"),
        [
            ("SEGA.L", "XLON"),
            ("7203.T", "XTKS"),
            ("0700.HK", "XHKG"),
            ("SAP.DE", "XETR"),
            ("MC.PA", "XPAR"),
            ("ASML.AS", "XAMS"),
            ("NESN.SW", "XSWX"),
            ("RY.TO", "XTSE"),
            ("BHP.AX", "XASX"),
            ("600519.SS", "XSHG"),
            ("000001.SZ", "XSHG"),
            ("RELIANCE.NS", "XBOM"),
            ("ENI.MI", "XMIL"),
            ("SAN.MC", "XMAD"),
            ("VOLV-B.ST", "XSTO"),
            ("005930.KS", "XKRX"),
            ("035720.KQ", "XKRX"),
            ("BTC-USD", "24/7"),
            ("BTCUSDT", "24/7"),
            ("EURUSD=X", "24/5"),
        ],
    )
    def test_yahoo_suffixes(self, ticker, calendar):
        assert infer_calendar(ticker)[0] == calendar

    def test_a_plain_symbol_is_xnys_and_said_to_be_assumed(self):
        assert infer_calendar("AAPL") == ("XNYS", "assumed")
        assert infer_calendar("BRK.B") == ("XNYS", "assumed")  # a share class, not an exchange

    def test_an_unknown_suffix_is_refused_with_the_fix(self, tmp_path):
        with pytest.raises(ConfigError, match=r"FOO\.ZZ: unknown exchange suffix '\.ZZ'.*--calendar FOO\.ZZ=NAME"):
            infer_calendar("FOO.ZZ")
        yahoo_csv(tmp_path / "FOO.ZZ.csv", exchange_days("XNYS", "2023-01-03", "2023-03-31"))
        with pytest.raises(DataError, match="unknown exchange suffix"):
            load(tmp_path)
        panel, quality = load(tmp_path, calendars="FOO.ZZ=XLON")
        assert quality.tickers["FOO.ZZ"].calendar == "XLON"

    def test_an_unknown_calendar_name_suggests_the_close_one(self):
        with pytest.raises(ConfigError, match=r"unknown calendar 'XLNO' \(did you mean XLON\?\)"):
            SourceSpec(calendars="XLNO")
        assert SourceSpec(calendars="xlon").calendars == {"*": "XLON"}
        assert SourceSpec(calendars="SEGA.L=XLON, COIN=24/7").calendars == {"SEGA.L": "XLON", "COIN": "24/7"}
        # Yahoo tickers that hold '=' (futures, FX) can be named too
        assert SourceSpec(calendars="CL=F=24/5,EURUSD=X=24/5").calendars == {"CL=F": "24/5", "EURUSD=X": "24/5"}


class TestForecastsFollowTheExchange:
    def test_london_trades_on_presidents_day_and_closes_for_easter(self, tmp_path):
        days = exchange_days("XLON", "2022-06-01", "2023-04-06")
        yahoo_csv(tmp_path / "early" / "SEGA.L.csv", days[days <= "2023-02-17"])
        yahoo_csv(tmp_path / "easter" / "SEGA.L.csv", days)
        early, quality = load(tmp_path / "early")
        assert (quality.tickers["SEGA.L"].calendar, quality.tickers["SEGA.L"].non_session_rows) == ("XLON", 0)
        got = forecast_dates(early, "SEGA.L", quality.tickers["SEGA.L"].calendar)
        assert got == ["2023-02-20", "2023-02-21", "2023-02-22", "2023-02-23", "2023-02-24"]
        easter, quality = load(tmp_path / "easter")
        got = forecast_dates(easter, "SEGA.L", quality.tickers["SEGA.L"].calendar, horizon=2)
        assert got == ["2023-04-11", "2023-04-12"]  # Good Friday 04-07 and Easter Monday 04-10 closed

    def test_tokyo_skips_its_own_holidays(self, tmp_path):
        yahoo_csv(tmp_path / "7203.T.csv", exchange_days("XTKS", "2022-06-01", "2023-01-06"))
        panel, quality = load(tmp_path)
        assert forecast_dates(panel, "7203.T", quality.tickers["7203.T"].calendar, horizon=2) == [
            "2023-01-10",  # 2023-01-09 is Coming of Age Day
            "2023-01-11",
        ]

    def test_a_7_day_series_stops_with_the_fix_and_24_7_labels_every_day(self, tmp_path):
        yahoo_csv(tmp_path / "MYCOIN.csv", pd.date_range("2023-01-01", "2023-03-31", freq="D"))
        with pytest.raises(
            DataError, match=r"MYCOIN: 2\d of 90 rows .* fall on Saturdays or Sundays.*--calendar MYCOIN=24/7"
        ):
            load(tmp_path)
        panel, quality = load(tmp_path, calendars="MYCOIN=24/7")
        assert forecast_dates(panel, "MYCOIN", quality.tickers["MYCOIN"].calendar) == [
            "2023-04-01",
            "2023-04-02",
            "2023-04-03",
            "2023-04-04",
            "2023-04-05",
        ]

    def test_a_chosen_calendar_is_kept_in_the_store_for_the_next_run(self, tmp_path):
        store = PriceStore(tmp_path / "store.duckdb")
        yahoo_csv(tmp_path / "f" / "MYCOIN.csv", pd.date_range("2023-01-01", "2023-03-31", freq="D"))
        load(tmp_path / "f", store, calendars="24/7")
        panel, quality = load(tmp_path / "f", store)  # no --calendar this time
        q = quality.tickers["MYCOIN"]
        assert (q.calendar, q.calendar_how) == ("24/7", "stored")
        assert "calendar 24/7 (stored by an earlier ingest)" in quality.summary_lines()[0]
        assert store.calendars("csv") == {"MYCOIN": "24/7"}

    def test_an_explicit_calendar_replaces_the_stored_one(self, tmp_path):
        store = PriceStore(tmp_path / "store.duckdb")
        yahoo_csv(tmp_path / "f" / "SEGA.L.csv", exchange_days("XLON", "2023-01-03", "2023-03-31"))
        load(tmp_path / "f", store)
        assert store.calendars("csv") == {"SEGA.L": "XLON"}
        load(tmp_path / "f", store, calendars="SEGA.L=XNYS")
        _, quality = load(tmp_path / "f", store)
        assert (quality.tickers["SEGA.L"].calendar, quality.tickers["SEGA.L"].calendar_how) == ("XNYS", "stored")


class TestRowsOnNonSessions:
    def test_weekend_and_holiday_rows_are_counted_and_named(self, tmp_path):
        days = exchange_days("XNYS", "2023-01-03", "2023-03-31")
        extra = pd.DatetimeIndex(["2023-01-16", "2023-02-04"])  # MLK Day (a holiday) and a Saturday, real prices
        yahoo_csv(tmp_path / "AAPL.csv", days.append(extra).sort_values())
        panel, quality = load(tmp_path)
        q = quality.tickers["AAPL"]
        assert q.non_session_rows == 2
        assert len(panel) == len(days) + 2  # kept, as the data's own dates
        assert any("2 rows on days that are no XNYS session (2023-01-16, 2023-02-04)" in w for w in q.warnings)

    def test_a_london_file_read_as_nyse_names_the_london_only_days(self, tmp_path):
        yahoo_csv(tmp_path / "SEGA.L.csv", exchange_days("XLON", "2023-01-03", "2023-03-31"))
        _, quality = load(tmp_path, calendars="XNYS")
        q = quality.tickers["SEGA.L"]
        assert (q.calendar, q.calendar_how, q.non_session_rows) == ("XNYS", "--calendar", 2)  # 01-16 and 02-20
        assert any("2023-01-16, 2023-02-20" in w for w in q.warnings)


def test_the_ingest_summary_shows_each_tickers_calendar(tmp_path):
    yahoo_csv(tmp_path / "f" / "SEGA.L.csv", exchange_days("XLON", "2023-01-03", "2023-03-31"))
    yahoo_csv(tmp_path / "f" / "AAPL.csv", exchange_days("XNYS", "2023-01-03", "2023-03-31"))
    env = {
        "PATH": str(BIN),
        "HOME": str(tmp_path),
        "PRICECAST_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [str(BIN / "pricecast"), "ingest", "--source", "csv", "--path", str(tmp_path / "f")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "SEGA.L: 64 sessions" in text and "calendar XLON (from the exchange suffix)" in text
    assert "calendar XNYS (no exchange suffix: US listing assumed; --calendar to change)" in text


class TestTheChoiceTravelsToEveryUnit:
    def test_backtest_units_forecast_on_the_given_calendar(self, tmp_path):
        from backtest.folds import FoldPlan, panel_folds
        from backtest.units import plan_price_units, run_unit

        # London sessions under a name without a suffix: only the run's calendar can say it trades on 2023-02-20.
        days = exchange_days("XLON", "2022-06-01", "2023-03-10")
        yahoo_csv(tmp_path / "SEGA.csv", days)
        panel, quality = load(tmp_path, calendars="SEGA=XLON")
        folds = panel_folds(panel, FoldPlan(horizon=5, step=5, windows=4))["SEGA"]
        assert any(pd.Timestamp("2023-02-20") in f.test_ds for f in folds)
        series = panel[panel[ID] == "SEGA"].reset_index(drop=True)

        def unit(calendar):
            plan = {"models": {"naive": {}}, "folds": {"SEGA": folds}, "horizon": 5, "refit_every": None}
            return plan_price_units(["SEGA"], **plan, calendars={"SEGA": calendar})[0]

        chosen = run_unit(unit(quality.tickers["SEGA"].calendar), series)
        assert chosen.date_mismatches == 0  # every model date is a real London session
        assert run_unit(unit(None), series).date_mismatches > 0  # NYSE dates: 2023-02-20 skipped

    def test_cache_keys_and_stored_fits_change_with_the_calendar(self, tmp_path):
        from tasks.fingerprint import unit_key
        from tasks.fitted import fit_or_update

        days = exchange_days("XLON", "2023-01-03", "2023-02-17")
        series = pd.DataFrame({ID: "SEGA", DS: days, Y: np.linspace(1.0, 2.0, len(days))})
        from backtest.folds import FoldPlan, panel_folds

        folds = panel_folds(series, FoldPlan(horizon=5, step=5, windows=2))["SEGA"]
        from backtest.units import PriceUnit

        unit = PriceUnit(uid="SEGA", model="naive", params={}, folds=tuple(folds), refit_every=10, horizon=5)
        keys = {unit_key("unit", unit, series, horizon=5, calendar=c) for c in ("XLON", "XNYS", None)}
        assert len(keys) == 3
        fits = {
            c: fit_or_update(series, model="naive", params={}, root=tmp_path, horizon=5, calendar=c)
            for c in ("XLON", "XNYS")
        }
        assert fits["XLON"].model.predict(1)[DS].iloc[0] == pd.Timestamp("2023-02-20")
        assert fits["XNYS"].model.predict(1)[DS].iloc[0] == pd.Timestamp("2023-02-21")  # not the XLON fit reused

    def test_timestamps_become_dates_in_the_chosen_calendars_time_zone(self, tmp_path):
        # 15:00 UTC is midnight in Tokyo: the next day there, the same day in New York.
        days = exchange_days("XTKS", "2023-01-04", "2023-03-31")
        path = yahoo_csv(tmp_path / "7203.T.csv", days - pd.Timedelta(hours=9))
        frame = pd.read_csv(path)
        frame["Date"] = (pd.DatetimeIndex(days) - pd.Timedelta(hours=9) + pd.Timedelta(minutes=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        frame.to_csv(path, index=False)
        panel, quality = load(tmp_path)
        assert quality.tickers["7203.T"].tz_converted == len(days)
        assert list(panel[DS]) == list(days)  # Tokyo dates, not the UTC (or New York) day before


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_forecast_command_dates_follow_each_tickers_calendar(prefect_server, tmp_path):
    """`pricecast forecast` on a London file and a 7-day file: London dates include Presidents' Day, the 7-day
    series (with --calendar COIN7=24/7) gets every day, weekends included; the summary names both calendars."""
    import re

    from typer.testing import CliRunner

    from common.settings import store_path
    from pricecast.cli import app
    from store.results_store import ResultStore

    days = exchange_days("XLON", "2022-09-01", "2023-02-17")
    yahoo_csv(tmp_path / "f" / "SEGA.L.csv", days)
    yahoo_csv(tmp_path / "f" / "COIN7.csv", pd.date_range("2022-12-01", "2023-03-31", freq="D"), seed=1)
    args = ["forecast", "--source", "csv", "--path", str(tmp_path / "f"), "--models", "naive", "--horizon", "5"]
    result = CliRunner().invoke(app, [*args, "--calendar", "COIN7=24/7"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "calendar XLON (from the exchange suffix)" in text and "calendar 24/7 (from --calendar)" in text, text
    run_id = re.search(r"\(run ([0-9a-f-]{36})\)", text)[1]
    table = ResultStore(store_path()).live_forecasts(run_id)
    naive = table[table["model"] == "naive"].sort_values([ID, "h"])
    got = {t: g[DS].dt.strftime("%Y-%m-%d").tolist() for t, g in naive.groupby(ID)}
    assert got["SEGA.L"] == ["2023-02-20", "2023-02-21", "2023-02-22", "2023-02-23", "2023-02-24"]
    assert got["COIN7"] == ["2023-04-01", "2023-04-02", "2023-04-03", "2023-04-04", "2023-04-05"]
