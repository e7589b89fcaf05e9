"""The catalogue of bad inputs: each fixture, the command it is given to, and the exact outcome.

An outcome is either a refusal - exit code 2 and ONE stderr line naming the ticker, the column and the first
offending rows, no traceback - or an allowed cleaning step, counted in the data-quality summary (ingest.quality).
Every ingest case is checked twice: through the console command (`pricecast ingest`, typer's CliRunner) and
through `ingest.load.load_panel`, the pure function behind `ingest_flow`; a bad file must leave the store empty.
A handful run through the Prefect flows and a real subprocess (`test_*_flow*`, `test_*_subprocess*`); the
million-row file is measured in `test_a_million_rows_ingest_with_bounded_memory`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.errors import PricecastError
from common.schema import ADJ_CLOSE, CLOSE, DS, HIGH, ID, LOW, OPEN, VOLUME
from common.settings import store_path
from ingest.load import load_panel
from ingest.price_store import PriceStore
from ingest.quality import LABELS, QualityReport
from ingest.spec import SourceSpec
from pricecast.cli import app
from tests.ingest.ingest_helpers import bars

EXIT_BAD_INPUT = 2
PRICES = [OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE]
ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- the case type


@dataclass(frozen=True)
class Counted:
    """An allowed cleaning step: `check` (a QualityReport counter) of `ticker` is `count`; '*' is the source."""

    ticker: str
    check: str
    count: int


@dataclass(frozen=True)
class Case:
    """One bad input: `make_fixture(tmp_path)` writes it and returns the options that point at it."""

    id: str
    make_fixture: Callable[[Path], list[str]]
    command_args: tuple[str, ...]
    expected_exit: int
    expected: str | tuple[Counted, ...]  # the stderr line's regex, or the counters of the quality report
    pure: bool = True  # also run through load_panel (False for options the CLI checks before any ingest)
    extra: Mapping[str, object] = field(default_factory=dict)


INGEST = ("ingest", "--source", "csv")


def no_fixture(tmp_path: Path) -> list[str]:
    return []


def _write(path: Path, content: pd.DataFrame | str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def csv(name: str, make: Callable[[], pd.DataFrame | str | bytes]) -> Callable[[Path], list[str]]:
    """Fixture maker: one file `name` (a frame, text or raw bytes) passed as --path."""

    def fixture(tmp_path: Path) -> list[str]:
        return ["--path", str(_write(tmp_path / "in" / name, make()))]

    return fixture


def folder(files: Mapping[str, Callable[[], pd.DataFrame | str | bytes]]) -> Callable[[Path], list[str]]:
    """Fixture maker: a directory of files passed as --path."""

    def fixture(tmp_path: Path) -> list[str]:
        for name, make in files.items():
            content = make()
            if name.endswith(".parquet") and isinstance(content, pd.DataFrame):
                (tmp_path / "in").mkdir(parents=True, exist_ok=True)
                content.to_parquet(tmp_path / "in" / name)
            else:
                _write(tmp_path / "in" / name, content)
        return ["--path", str(tmp_path / "in")]

    return fixture


# ---------------------------------------------------------------------------------------------- the fixtures


def clean(ticker: str = "AAPL", n: int = 10, **kw) -> pd.DataFrame:
    """Ten clean weekday bars from 2024-01-02 as a one-ticker file spells them (ticker = file stem)."""
    return bars(ticker, n, **kw).drop(columns=[ID])


def with_cells(column: str, cells: Mapping[int, object], frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Bars with some cells (1-based row numbers, as messages quote them) replaced."""
    out = (clean() if frame is None else frame).astype({column: object})
    for row, value in cells.items():
        out.loc[row, column] = value
    return out


def text_in_price() -> pd.DataFrame:
    return with_cells(CLOSE, {3: "abc", 7: "79,600"})


def mixed_dates() -> pd.DataFrame:
    return with_cells(DS, {5: "01/09/2024"})


def tz_aware() -> pd.DataFrame:
    out = clean()
    stamps = pd.to_datetime(out[DS]) + pd.Timedelta(hours=21)  # the New York close, written in UTC
    return out.assign(**{DS: stamps.dt.tz_localize("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%z")})


def exact_duplicates() -> pd.DataFrame:
    out = clean()
    return pd.concat([out, out.loc[[2, 4]]])


def conflicting_duplicates() -> pd.DataFrame:
    out = clean()
    return pd.concat([out, out.loc[[3]].assign(**{CLOSE: 1.0})])


def nan_run(rows: list[int]) -> Callable[[], pd.DataFrame]:
    return lambda: with_cells(ADJ_CLOSE, dict.fromkeys(rows, np.nan))


def zero_volume_holiday() -> pd.DataFrame:
    """A KRX feed's row for a closed day: the previous bar repeated with no trades."""
    out = clean("005930", price=70000)
    out.loc[6, PRICES] = out.loc[5, PRICES].to_numpy()
    out.loc[6, VOLUME] = 0.0
    return out


def unadjusted_split() -> pd.DataFrame:
    out = clean()
    out.loc[7:, PRICES] = out.loc[7:, PRICES] / 10  # a 1:10 split on the 7th session, prices left unadjusted
    return out


def constant() -> pd.DataFrame:
    return clean().assign(**dict.fromkeys(PRICES, 5.0))


def long_file(*tickers: str, n: int = 10, ticker_column: str = "Ticker") -> Callable[[], pd.DataFrame]:
    """One long file with a ticker column (written as text, the way a spreadsheet would keep or drop zeros)."""
    return lambda: pd.concat([bars(t, n) for t in tickers]).rename(columns={ID: ticker_column})


CP949 = "날짜,종가\n2024-01-02,79600\n".encode("cp949")
SHORT_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


# ---------------------------------------------------------------------------------------------- the catalogue

CASES: list[Case] = [
    # files
    Case("empty file", csv("AAPL.csv", lambda: ""), INGEST, 2, r"AAPL\.csv: empty file \(no header, no rows\)"),
    Case("header without rows", csv("AAPL.csv", lambda: SHORT_HEADER), INGEST, 2, r"AAPL\.csv: no data rows"),
    Case(
        "not UTF-8 (CP949 export)",
        csv("005930.csv", lambda: CP949),
        INGEST,
        2,
        r"005930\.csv: not UTF-8 \(invalid start byte at byte 0\); re-encode it as UTF-8, e\.g\. iconv -f cp949",
    ),
    Case(
        "semicolon-separated file",
        csv("AAPL.csv", lambda: "Date;Close\n2024-01-02;1.5\n"),
        INGEST,
        2,
        r"AAPL\.csv: tickers \['AAPL'\]: missing required column\(s\) \['Date', 'Close'\]; the file has columns "
        r"\['Date;Close'\]; the file looks semicolon-separated: save it comma-separated",
    ),
    Case(
        "directory with mixed file types",
        folder({"AAPL.csv": clean, "IBM.parquet": lambda: clean("IBM"), "notes.txt": lambda: "downloaded"}),
        INGEST,
        0,
        (Counted("*", "ignored_files", 2), Counted("AAPL", "rows_out", 10)),
    ),
    Case(
        "directory without csv files",
        folder({"notes.txt": lambda: "downloaded"}),
        INGEST,
        2,
        r"in: no csv files \(\.csv, .*\); it has \['notes\.txt'\]; pick the source matching those files",
    ),
    Case(
        "path that does not exist",
        lambda tmp_path: ["--path", str(tmp_path / "nope")],
        INGEST,
        2,
        r"nope does not exist; pass an existing csv file or a directory of them",
    ),
    # columns
    Case(
        "no Close column",
        csv("AAPL.csv", lambda: clean().drop(columns=[CLOSE])),
        INGEST,
        2,
        r"AAPL\.csv: tickers \['AAPL'\]: missing required column\(s\) \['Close'\]; the file has columns \['ds', "
        r"'open', 'high', 'low', 'adj_close', 'volume'\]; add Close",
    ),
    Case(
        "no Date column",
        csv("AAPL.csv", lambda: clean().drop(columns=[DS])),
        INGEST,
        2,
        r"AAPL\.csv: tickers \['AAPL'\]: missing required column\(s\) \['Date'\]; .*; add Date",
    ),
    Case(
        "no Adj Close column, --target adj_close",
        csv("AAPL.csv", lambda: clean().drop(columns=[ADJ_CLOSE])),
        (*INGEST, "--target", "adj_close"),
        2,
        r"AAPL: target='adj_close' but column 'adj_close' is empty for AAPL \(2024-01-02 \.\. 2024-01-15\) or "
        r"absent from the source; use target='close' or 'auto'",
    ),
    # values
    Case(
        "text in a price column",
        csv("AAPL.csv", text_in_price),
        INGEST,
        2,
        r"AAPL: column 'close' has 2 non-numeric values: row 3 \(2024-01-04\): close='abc'; "
        r"row 7 \(2024-01-10\): close='79,600'; fix the source \(plain numbers",
    ),
    Case(
        "zero price",
        csv("AAPL.csv", lambda: with_cells(ADJ_CLOSE, {3: 0.0})),
        INGEST,
        2,
        r"AAPL: column 'adj_close' has 1 values not > 0: row 3 \(2024-01-04\): adj_close=0; fix or delete",
    ),
    Case(
        "negative price",
        csv("AAPL.csv", lambda: with_cells(CLOSE, {5: -4.5})),
        INGEST,
        2,
        r"AAPL: column 'close' has 1 values not > 0: row 5 \(2024-01-08\): close=-4\.5",
    ),
    Case(
        "NaN run longer than the fill limit",
        csv("AAPL.csv", nan_run([3, 4, 5, 6])),
        INGEST,
        2,
        r"AAPL: column 'adj_close' has a gap of 4 sessions from 2024-01-04 to 2024-01-09 \(rows 3\.\.6\), longer "
        r"than max_ffill=3; fix the source, raise max_ffill",
    ),
    Case(
        "NaN run within the fill limit", csv("AAPL.csv", nan_run([3, 4])), INGEST, 0, (Counted("AAPL", "ffilled", 2),)
    ),
    Case(
        "missing-value markers (null, N/A) in the target",
        csv("AAPL.csv", lambda: with_cells(ADJ_CLOSE, {3: "null", 8: "N/A"})),
        INGEST,
        0,
        (Counted("AAPL", "ffilled", 2),),
    ),
    Case(
        "gaps refused with --gap-policy error",
        csv("AAPL.csv", nan_run([3])),
        (*INGEST, "--gap-policy", "error"),
        2,
        r"AAPL: column 'adj_close' is empty in 1 rows: row 3 \(2024-01-04\): adj_close=nan; fill them",
    ),
    Case(
        "zero-volume holiday row",
        csv("005930.csv", zero_volume_holiday),
        INGEST,
        0,
        (Counted("005930", "zero_volume_dropped", 1), Counted("005930", "rows_out", 9)),
    ),
    Case(
        "1:10 split left unadjusted",
        csv("AAPL.csv", unadjusted_split),
        INGEST,
        0,
        (Counted("AAPL", "jumps_flagged", 1), Counted("AAPL", "rows_out", 10)),
        extra={
            "warning": r"suspicious jump on 2024-01-10: adj_close .* \(x0\.1\d*\); left as is - an unadjusted split"
        },
    ),
    Case(
        "constant series",
        csv("AAPL.csv", constant),
        INGEST,
        0,
        (Counted("AAPL", "flat_target", 10),),
        extra={"warning": r"adj_close is constant \(5 in all 10 sessions, 2024-01-02 \.\. 2024-01-15\)"},
    ),
    # dates
    Case(
        "dates in mixed formats",
        csv("AAPL.csv", mixed_dates),
        INGEST,
        2,
        r"AAPL: column 'ds' \(Date\) mixes date formats: row 1 is '2024-01-02' \(%Y-%m-%d\) but row 5 "
        r"\(01/09/2024\); write every date in one format",
    ),
    Case(
        "a date that does not exist",
        csv("AAPL.csv", lambda: with_cells(DS, {4: "2024-02-30"})),
        INGEST,
        2,
        r"AAPL: column 'ds' \(Date\) has 1 unparseable dates: row 4 \(2024-02-30\)",
    ),
    Case(
        "timezone-aware timestamps",
        csv("AAPL.csv", tz_aware),
        INGEST,
        0,
        (Counted("AAPL", "tz_converted", 10), Counted("AAPL", "times_normalised", 10), Counted("AAPL", "rows_out", 10)),
    ),
    Case(
        "duplicate dates, identical",
        csv("AAPL.csv", exact_duplicates),
        INGEST,
        0,
        (Counted("AAPL", "exact_duplicates_dropped", 2), Counted("AAPL", "rows_out", 10)),
    ),
    Case(
        "duplicate dates, conflicting",
        csv("AAPL.csv", conflicting_duplicates),
        INGEST,
        2,
        r"AAPL: 1 dates appear more than once with different \['close'\], first 2024-01-04: "
        r"row 3 \(2024-01-04\): close=101\.117; row 11 \(2024-01-04\): close=1; deduplicate the source",
    ),
    Case(
        "unsorted dates",
        csv("AAPL.csv", lambda: clean().iloc[::-1]),
        INGEST,
        0,
        (Counted("AAPL", "rows_sorted", 10),),
    ),
    Case(
        "start date after end date",
        csv("AAPL.csv", clean),
        (*INGEST, "--start", "2024-02-01", "--end", "2024-01-01"),
        2,
        r"invalid SourceSpec: start 2024-02-01 is after end 2024-01-01; swap them or drop one",
    ),
    Case(
        "no rows between start and end",
        csv("AAPL.csv", clean),
        (*INGEST, "--start", "2025-01-01"),
        2,
        r"AAPL: no rows between start=2025-01-01 and end=None; its data runs 2024-01-02 \.\. 2024-01-15",
    ),
    Case(
        "a start date that is no date",
        csv("AAPL.csv", clean),
        (*INGEST, "--start", "2024/02/01"),
        2,
        r"--start '2024/02/01' is not a date; use YYYY-MM-DD",
        pure=False,
    ),
    # tickers
    Case(
        "tickers with leading zeros",
        folder({"005930.csv": lambda: clean("005930", price=70000), "long.csv": long_file("000660")}),
        INGEST,
        0,
        (Counted("005930", "rows_out", 10), Counted("000660", "rows_out", 10)),
        extra={"stored": ["000660", "005930"]},
    ),
    Case(
        "leading zeros lost upstream",
        csv("long.csv", long_file("5930")),
        (*INGEST, "--tickers", "005930"),
        2,
        r"unknown ticker\(s\) \['005930'\] in csv .*long\.csv \(did you mean '5930'\? its leading zeros were lost",
    ),
    Case(
        "unknown ticker",
        csv("AAPL.csv", clean),
        (*INGEST, "--tickers", "MSFT"),
        2,
        r"unknown ticker\(s\) \['MSFT'\] in csv .*AAPL\.csv; available: \['AAPL'\]; check the spelling",
    ),
    Case(
        "ticker spelled like a missing value (NA)",
        csv("long.csv", long_file("NA", "NULL", n=5)),
        INGEST,
        0,
        (Counted("NA", "rows_out", 5), Counted("NULL", "rows_out", 5)),
    ),
    Case(
        "unknown source",
        no_fixture,
        ("ingest", "--source", "bloomberg"),
        2,
        r"invalid SourceSpec: source: Input should be 'sample', 'csv', 'parquet', 'yfinance' or 'fdr' "
        r"\(got 'bloomberg'\)",
    ),
    # options
    Case(
        "unknown model name",
        no_fixture,
        ("backtest", "--models", "naive,lsmt"),
        2,
        r"unknown model 'lsmt' \(did you mean lstm\?\); registered models: naive, ",
        pure=False,
    ),
    Case(
        "horizon <= 0",
        no_fixture,
        ("backtest", "--horizon", "0"),
        2,
        r"--horizon 0: Input should be greater than 0",
        pure=False,
    ),
    Case(
        "windows <= 0",
        no_fixture,
        ("backtest", "--windows", "0"),
        2,
        r"--windows 0: Input should be greater than 0",
        pure=False,
    ),
    Case(
        "step <= 0",
        no_fixture,
        ("backtest", "--step", "-1"),
        2,
        r"--step -1: Input should be greater than 0",
        pure=False,
    ),
    Case(
        "forecast horizon <= 0",
        no_fixture,
        ("forecast", "--horizon", "0"),
        2,
        r"--horizon 0: Input should be greater than 0",
        pure=False,
    ),
    Case(
        "refit-every < 0",
        no_fixture,
        ("backtest", "--refit-every", "-1"),
        2,
        r"--refit-every -1: must be an integer >= 0 \(0 = fit once, 1 = every fold, k = every k-th fold\)",
        pure=False,
    ),
]


def test_the_catalogue_has_at_least_25_cases_with_unique_ids():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------------- through the CLI


def one_error_line(stderr: str) -> str:
    """The refusal: exactly one 'error:' line on stderr and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0].removeprefix("error: ")


def summary_fragment(c: Counted) -> str:
    """What the CLI's data-quality summary prints for one counter."""
    if c.ticker == "*":
        return f"ignored {c.count} file(s) of another type"
    if c.check == "rows_out":
        return f"{c.ticker}: {c.count} sessions"
    return f"{c.count} {LABELS[c.check]}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case: Case, tmp_path):
    args = [*case.command_args, *case.make_fixture(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == case.expected_exit, (result.output, result.exception)
    if isinstance(case.expected, str):
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        message = one_error_line(result.stderr)
        assert re.search(case.expected, message), message
        if case.command_args[0] == "ingest":  # a refused input stores nothing
            assert PriceStore(store_path()).read("csv").empty
        return
    printed = " ".join(result.stdout.split())  # rich wraps long lines at the console width
    for counted in case.expected:
        assert summary_fragment(counted) in printed, result.stdout
    if "warning" in case.extra:
        assert re.search(str(case.extra["warning"]), printed), result.stdout
    if "stored" in case.extra:
        stored = PriceStore(store_path()).read("csv")
        assert sorted(stored[ID].unique()) == case.extra["stored"] and stored[ID].map(type).eq(str).all()


# ---------------------------------------------------------------------------------------------- through load_panel


def spec_from_args(args: list[str]) -> SourceSpec:
    """The SourceSpec the ingest command builds from these options (ingest_flow takes the same fields)."""
    options = dict(zip(args[1::2], args[2::2], strict=False))
    names = {"--source": "source", "--path": "path", "--tickers": "tickers", "--start": "start", "--end": "end"}
    names |= {"--target": "target", "--gap-policy": "gap_policy", "--max-ffill": "max_ffill"}
    return SourceSpec(**{names[k]: v for k, v in options.items()})


def counter(report: QualityReport, c: Counted) -> int:
    return len(report.ignored_files) if c.ticker == "*" else getattr(report.tickers[c.ticker], c.check)


@pytest.mark.parametrize("case", [c for c in CASES if c.pure], ids=[c.id for c in CASES if c.pure])
def test_load_panel(case: Case, tmp_path):
    store = PriceStore(tmp_path / "store.duckdb")
    if isinstance(case.expected, str):
        with pytest.raises(PricecastError) as info:
            load_panel(spec_from_args([*case.command_args, *case.make_fixture(tmp_path)]), store=store)
        assert re.search(case.expected, str(info.value)), str(info.value)
        assert store.read("csv").empty
        return
    panel, report = load_panel(spec_from_args([*case.command_args, *case.make_fixture(tmp_path)]), store=store)
    assert {c: counter(report, c) for c in case.expected} == {c: c.count for c in case.expected}
    assert len(store.read("csv")) == len(panel)  # what was validated is what was stored
    if "warning" in case.extra:
        assert any(re.search(str(case.extra["warning"]), w) for w in report.warnings), report.warnings
    assert report.to_frame()["count"].ge(0).all()  # every counter reaches the artifact table


# ---------------------------------------------------------------------------------------------- real processes


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pricecast.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_subprocess_bad_input_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path):
    path = _write(tmp_path / "AAPL.csv", text_in_price())
    plain = run_cli("ingest", "--source", "csv", "--path", str(path))
    assert plain.returncode == EXIT_BAD_INPUT
    assert re.search(r"AAPL: column 'close' has 2 non-numeric values: row 3", one_error_line(plain.stderr))
    debug = run_cli("--debug", "ingest", "--source", "csv", "--path", str(path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataError" in debug.stderr


# ---------------------------------------------------------------------------------------------- through the flows


def _flow_state(flow, **parameters):
    state = flow(**parameters, return_state=True)
    return state, state.result(raise_on_failure=False)


@pytest.mark.parametrize(
    "case_id",
    ["duplicate dates, conflicting", "text in a price column", "duplicate dates, identical", "unsorted dates"],
)
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_ingest_flow(case_id, tmp_path):
    from flows.ingest import ingest_flow

    case = next(c for c in CASES if c.id == case_id)
    spec = spec_from_args([*case.command_args, *case.make_fixture(tmp_path)])
    state, outcome = _flow_state(ingest_flow, source=spec)
    if isinstance(case.expected, str):
        assert state.is_failed() and isinstance(outcome, PricecastError)
        assert re.search(case.expected, str(outcome)), outcome
        assert PriceStore(store_path()).read("csv").empty
        return
    assert state.is_completed() and outcome == {"AAPL": 10}
    from tests.flows.helpers import latest_artifacts

    table = latest_artifacts()["data-quality"].data
    rows = {(r[ID], r["check"]): int(r["count"]) for r in (json.loads(table) if isinstance(table, str) else table)}
    for c in case.expected:
        assert rows[(c.ticker, c.check)] == c.count


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_backtest_flow_refuses_unknown_models_and_bad_fold_options():
    from flows.backtest import backtest_flow

    # As a deployment or the UI's run form passes parameters: JSON, validated by Prefect before the body runs.
    state, outcome = _flow_state(backtest_flow, params={"models": ["naive", "lsmt"], "windows": 2})
    assert state.is_failed() and re.search(r"unknown model 'lsmt' \(did you mean lstm\?\)", str(outcome))
    with pytest.raises(Exception, match=r"horizon[\s\S]*greater than 0"):
        backtest_flow(params={"horizon": 0})


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_backtest_subprocess_series_shorter_than_the_fold_plan(tmp_path):
    from prefect.settings import PREFECT_API_URL

    short = _write(tmp_path / "SHORT.csv", clean("SHORT", 12))
    args = ["backtest", "--source", "csv", "--path", str(short), "--models", "naive", "--start", "2000-01-01"]
    result = run_cli(
        *args, "--horizon", "5", "--windows", "3", "--step", "5", env={"PREFECT_API_URL": PREFECT_API_URL.value()}
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    message = one_error_line(result.stderr)
    assert re.search(
        r"series too short for these cross-validation settings \(1 series\): \['SHORT' \(12 sessions\)\]; each needs "
        r"16 sessions; reduce the horizon or windows, or drop these series",
        message,
    )


# ---------------------------------------------------------------------------------------------- a million rows

MILLION_TICKERS, MILLION_SESSIONS = 200, 5_000  # 1,000,000 rows: 200 KRX-style codes x 20 years of sessions
PEAK_RSS_LIMIT_MB = 700  # measured 490 MB (the process imports pandas, pyarrow and duckdb: ~140 MB of it)
WALL_LIMIT_S = 30


def write_million_rows(path: Path) -> int:
    """One long CSV (ticker column first) of MILLION_TICKERS x MILLION_SESSIONS seeded random-walk bars."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(0)
    days = pd.bdate_range("2000-01-03", periods=MILLION_SESSIONS).strftime("%Y-%m-%d").to_numpy()
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (MILLION_TICKERS, MILLION_SESSIONS)), axis=1)).ravel()
    close = np.round(close, 4)
    table = pa.table(
        {
            "Ticker": np.repeat([f"{i:06d}" for i in range(MILLION_TICKERS)], MILLION_SESSIONS),
            "Date": np.tile(days, MILLION_TICKERS),
            "Open": close,
            "High": np.round(close * 1.01, 4),
            "Low": np.round(close * 0.99, 4),
            "Close": close,
            "Adj Close": close,
            "Volume": rng.integers(1, 10**6, close.size),
        }
    )
    pa_csv.write_csv(table, path)
    return table.num_rows


@pytest.mark.slow
def test_a_million_rows_ingest_with_bounded_memory(tmp_path):
    path = tmp_path / "prices.csv"
    rows = write_million_rows(path)
    assert rows >= 1_000_000
    # A fresh Python runs the CLI and reports its only child's peak RSS (ru_maxrss of RUSAGE_CHILDREN is a max
    # over every child a process ever waited for, so pytest's own would include other tests' subprocesses).
    probe = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.stderr.write(p.stderr[-2000:])"
    )
    env = {**os.environ, "PRICECAST_HOME": str(tmp_path / "home")}
    cli = [sys.executable, "-m", "pricecast.cli", "ingest", "--source", "csv", "--path", str(path)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe, *cli], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - started
    code, max_rss_kb = map(int, done.stdout.split())
    peak_mb = max_rss_kb / 1024  # Linux reports kilobytes
    print(f"1M-row ingest: {wall:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert code == 0, done.stderr
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
    assert wall < WALL_LIMIT_S
    stored = PriceStore(tmp_path / "home" / "pricecast.duckdb").read("csv", ["000000", "000199"])
    assert len(stored) == 2 * MILLION_SESSIONS and sorted(stored[ID].unique()) == ["000000", "000199"]
