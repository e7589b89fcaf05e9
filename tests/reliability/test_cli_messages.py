"""Messages that mislead (issue #14 items 6-12) and a way in for odd headers (item 13), as a user meets them.

Subprocess tests run the installed `pricecast` with a private PRICECAST_HOME and PREFECT_HOME and count every line
the terminal shows (stdout and stderr), not only the ones that start with `error:`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pricecast.cli import EXIT_BAD_INPUT, EXIT_PARTIAL, app

PRICECAST = Path(sys.executable).with_name("pricecast")
# Lines no pricecast code prints: TensorFlow/absl/oneDNN start-up, Python warnings, Prefect's own run records.
FOREIGN = (
    "tensorflow", "absl", "oneDNN", "cuda", "Warning:", "FutureWarning", "UserWarning", "DeprecationWarning",
    "RuntimeWarning", "cmdstanpy", "statsmodels", "prefect.", "Traceback",
)  # fmt: skip


def cli(args: list[str], home: Path, *, prefect_home: Path | None = None, timeout: float = 60):
    """`pricecast ARGS` in a fresh process; (exit code, every non-blank line of stdout and stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TF_"))}
    env.update(
        PRICECAST_HOME=str(home),
        PREFECT_HOME=str(prefect_home or home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    done = subprocess.run([str(PRICECAST), *args], env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    return done.returncode, lines


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]  # stdout and stderr, as shown
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class TestPartialRunKeepsItsOwnLastWord:
    """Item 6: a partial run's exit code and `partial:` line are not turned into `failed: Exit: 1`."""

    def test_exit_passes_through_guarded(self, capsys):
        from pricecast.console import exit_if_partial, guarded

        class PartialState:
            message = "2 of 4 units failed: boom on AAPL"

            def is_completed(self) -> bool:
                return False

        with pytest.raises(typer.Exit) as raised:
            guarded(lambda: exit_if_partial(PartialState()))()
        assert raised.value.exit_code == EXIT_PARTIAL
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert lines == ["partial: 2 of 4 units failed: boom on AAPL"]  # no `failed: Exit: 1` after it


class TestOneErrorLine:
    """Items 7 and 10: an error inside a flow is the only line on the terminal, and a PREFECT_HOME that does not
    exist yet is created (the temporary server starts instead of a 2-minute wait for a timeout)."""

    def test_a_flow_error_is_the_only_line_and_a_new_prefect_home_is_created(self, tmp_path):
        bad = write(tmp_path / "bad.csv", "symbol,date,amount\nAAA,2024-01-02,1\nAAA,2024-01-03,2\n")
        prefect_home = tmp_path / "not" / "yet" / "there"
        args = ["backtest", "--source", "csv", "--path", str(bad), "--models", "naive", "--windows", "2"]
        code, lines = cli(args, tmp_path / "home", prefect_home=prefect_home, timeout=150)
        assert code == EXIT_BAD_INPUT, lines
        assert len(lines) == 1, lines  # no `ERROR prefect.task_runs` / `prefect.flow_runs` lines, no spinner
        assert lines[0].startswith("error:") and "missing required column" in lines[0] and "--columns" in lines[0]
        assert prefect_home.is_dir()

    def test_a_prefect_home_that_cannot_be_created_stops_at_once(self, tmp_path):
        blocker = write(tmp_path / "a-file", "x")
        code, lines = cli(["backtest"], tmp_path / "home", prefect_home=blocker / "prefect", timeout=30)
        assert code == EXIT_BAD_INPUT, lines
        assert len(lines) == 1 and lines[0].startswith("error:") and "PREFECT_HOME" in lines[0], lines
        assert str(blocker) in lines[0]


class TestParameterErrors:
    """Item 8: Prefect's parameter validation ends as exit 2 with the option, value and constraint on one line,
    before any flow (or the temporary server) starts."""

    def test_horizon_beyond_the_flow_limit(self, tmp_path):
        code, lines = cli(["forecast", "--horizon", "500"], tmp_path / "home", timeout=40)
        assert code == EXIT_BAD_INPUT, lines
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
        assert "--horizon 500" in lines[0] and "260" in lines[0]

    def test_nan_timeout_is_bad_input(self):
        assert "--unit-timeout" in one_error_line(invoke("backtest", "--unit-timeout", "nan"))

    def test_a_parameter_type_error_raised_later_is_exit_2_with_the_reason(self, capsys):
        from prefect.exceptions import ParameterTypeError

        from flows.forecast import forecast_flow
        from pricecast.console import guarded

        def run():
            try:
                forecast_flow.validate_parameters({"params": {"horizon": 500}})
            except ParameterTypeError as exc:
                raise exc from None

        with pytest.raises(typer.Exit) as raised:
            guarded(run)()
        assert raised.value.exit_code == EXIT_BAD_INPUT
        stderr = capsys.readouterr().err
        assert "horizon" in stderr and "less than or equal to 260" in stderr and "failed:" not in stderr


class TestOutDirectory:
    """Item 9: --out that cannot be a run directory is refused before any work, exit 2, one line."""

    def test_an_existing_file_is_refused(self, tmp_path):
        target = write(tmp_path / "report.html", "keep me")
        assert "existing file" in one_error_line(invoke("backtest", "--out", str(target)))
        assert target.read_text() == "keep me"

    def test_an_empty_string_writes_nothing_into_the_current_folder(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        assert "--out is empty" in one_error_line(invoke("backtest", "--out", ""))
        assert "--out is empty" in one_error_line(invoke("report", "--out", " "))
        assert not [p.name for p in tmp_path.iterdir() if p.name != "pricecast-home"]

    def test_a_place_under_a_file_is_refused(self, tmp_path):
        blocker = write(tmp_path / "file", "x")
        assert "is a file" in one_error_line(invoke("backtest", "--out", str(blocker / "run")))

    @pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
    def test_an_unwritable_directory_is_refused(self, tmp_path):
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        try:
            assert "not writable" in one_error_line(invoke("backtest", "--out", str(locked / "run")))
        finally:
            locked.chmod(0o700)

    def test_an_existing_directory_is_accepted(self, tmp_path):
        from pricecast.options import out_dir_option

        assert out_dir_option(str(tmp_path)) == tmp_path


class TestTerminalNoise:
    """Items 11 and 12: a backtest with a Keras model shows only pricecast's own lines; model names are
    case-insensitive and reported in their registered spelling."""

    def test_no_foreign_lines_and_case_insensitive_models(self, tmp_path):
        args = ["backtest", "--tickers", "AAPL", "--models", "NAIVE,Ses,lstm", "--windows", "2", "--horizon", "5"]
        args += ["--start", "2011-01-01", "--out", str(tmp_path / "run")]
        code, lines = cli(args, tmp_path / "home", timeout=300)
        assert code == 0, lines
        foreign = [line for line in lines if any(marker.lower() in line.lower() for marker in FOREIGN)]
        assert not foreign, foreign
        # Every warning shown is pricecast's own, one line each (`WARNING <our package>: ...`).
        ours = ("ingest", "features", "models", "backtest", "reports", "store", "tasks", "flows", "pricecast")
        warnings = [line for line in lines if line.startswith("WARNING")]
        assert all(line.split()[1].split(".")[0].rstrip(":") in ours for line in warnings), warnings
        board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
        assert set(board["model"]) == {"naive", "ses", "lstm"}


class TestNames:
    """Item 12: names a user types or points at."""

    def test_model_names_are_case_insensitive(self):
        from flows.params import BacktestParams
        from models import make_model

        assert BacktestParams(models="NAIVE,Lstm,naive").models == ["naive", "lstm"]
        assert BacktestParams(models=["NAIVE", "Lstm"]).models == ["naive", "lstm"]  # a deployment's list too
        assert make_model("Drift").name == "drift"

    def test_an_ambiguous_run_prefix_lists_the_matching_runs(self):
        from common.errors import DataError
        from store.results_store import _match_run

        runs = pd.DataFrame(
            {
                "flow_run_id": ["ab12-new", "ab34-old", "cd56"],
                "created_at": pd.to_datetime(["2026-03-02 10:00", "2026-03-01 09:00", "2026-02-01 08:00"]),
            }
        )
        with pytest.raises(DataError) as raised:
            _match_run(runs, "ab")
        message = str(raised.value)
        assert "ab12-new (2026-03-02 10:00)" in message and "ab34-old (2026-03-01 09:00)" in message
        assert "cd56" not in message

    def test_a_broken_meta_json_is_named(self, tmp_path):
        run = tmp_path / "run"
        run.mkdir()
        write(run / "meta.json", '{"tickers": ["AAPL"], ')
        line = one_error_line(invoke("report", str(run)))
        assert str(run / "meta.json") in line

    def test_non_files_are_bad_input(self, tmp_path):
        empty = tmp_path / "empty"
        empty.mkdir()
        write(empty / "notes.txt", "no prices here")
        fifo = tmp_path / "prices.csv"
        os.mkfifo(fifo)
        assert "/dev/null" in one_error_line(invoke("ingest", "--source", "csv", "--path", "/dev/null"))
        assert "pipe" in one_error_line(invoke("ingest", "--source", "csv", "--path", str(fifo)))
        assert "no csv files" in one_error_line(invoke("ingest", "--source", "csv", "--path", str(empty)))


class TestColumnMap:
    """Item 13: --columns for csv/parquet, single-value names read as close with a note, duplicated headers refused."""

    LONG = "symbol,date,price\nAAA,2024-01-02,10\nAAA,2024-01-03,11\nBBB,2024-01-02,20\nBBB,2024-01-03,21\n"

    def test_a_price_column_is_read_as_close_with_a_note(self, tmp_path):
        result = invoke("ingest", "--source", "csv", "--path", str(write(tmp_path / "long.csv", self.LONG)))
        assert result.exit_code == 0, result.output + result.stderr
        assert "AAA" in result.output and "BBB" in result.output
        assert "read column 'price' as close" in result.stderr

    def test_an_explicit_map(self, tmp_path):
        odd = write(tmp_path / "odd.csv", "sym,day,px,close\nAAA,2024-01-02,10,999\nAAA,2024-01-03,11,999\n")
        result = invoke("ingest", "--source", "csv", "--path", str(odd), "--columns", "close=px,ticker=sym,date=day")
        assert result.exit_code == 0, result.output + result.stderr
        from ingest.sources.files import read_files
        from ingest.spec import SourceSpec

        raw = read_files(SourceSpec(source="csv", path=odd, columns="close=px,ticker=sym,date=day"))
        assert raw["close"].tolist() == [10.0, 11.0] and set(raw["unique_id"]) == {"AAA"}

    def test_a_map_naming_a_missing_column_lists_the_file_columns(self, tmp_path):
        path = write(tmp_path / "long.csv", self.LONG)
        line = one_error_line(invoke("ingest", "--source", "csv", "--path", str(path), "--columns", "close=last"))
        assert "'last'" in line and "['symbol', 'date', 'price']" in line

    def test_an_unknown_name_in_the_map(self, tmp_path):
        path = write(tmp_path / "long.csv", self.LONG)
        line = one_error_line(invoke("ingest", "--source", "csv", "--path", str(path), "--columns", "closing=price"))
        assert "'closing'" in line and "adj_close" in line

    def test_a_duplicated_header_is_refused(self, tmp_path):
        path = write(tmp_path / "dup.csv", "Date,Close,Close\n2024-01-02,1,100\n2024-01-03,2,200\n")
        line = one_error_line(invoke("ingest", "--source", "csv", "--path", str(path)))
        assert "'Close'" in line and "2 times" in line and str(path) in line
