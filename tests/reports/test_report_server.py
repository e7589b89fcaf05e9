"""The report server: runs' reports over http on loopback, nothing outside its root, and the http report links of
the backtest and event artifacts (a Markdown note where the report is when no report server runs)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.errors import PortInUseError
from common.settings import REPORTS_ROOT_ENV, REPORTS_URL_ENV, report_server_file, runs_dir
from reports.html import render_html
from reports.server import report_url, start_report_server

try:  # the browser test's Chromium fixture, reused; importing it skips (or, under CI=true, fails) without Chromium
    from tests.reports.test_report_browser import browser  # noqa: F401
except pytest.skip.Exception as missing:
    _NO_BROWSER = str(missing)

    @pytest.fixture(scope="module")
    def browser():
        pytest.skip(_NO_BROWSER)


RUN = "20250102T030405-tiny run #1"  # a space and a '#': the URL must quote them


def _get(url: str, *, method: str = "GET", path: str | None = None, headers: dict | None = None):
    """(status, lowercased headers, body) of one request sent as-is: no client-side normalisation of `..`, no proxy."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path if path is not None else parts.path or "/", headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def report(report_input) -> Path:
    """The synthetic run's report.html (+ plotly.min.js) rendered into a run directory under PRICECAST_HOME/runs."""
    return render_html(report_input, runs_dir() / RUN / "report.html")


@pytest.fixture
def server(report):
    with start_report_server(runs_dir(), port=0) as running:
        yield running


# ---------------------------------------------------------------------------------------------- serving


def test_report_url_serves_the_rendered_report_and_the_discovery_file_names_the_server(server, report):
    url = report_url(report)
    assert url == f"{server.url}20250102T030405-tiny%20run%20%231/report.html"
    status, headers, body = _get(url)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == report.read_bytes() and b"pricecast backtest report" in body
    status, _, script = _get(url.replace("report.html", "plotly.min.js"))  # the report's script, served beside it
    assert status == 200 and script == (report.parent / "plotly.min.js").read_bytes()

    record = json.loads(report_server_file().read_text())
    assert record == {"url": server.url, "root": str(runs_dir().resolve()), "pid": os.getpid()}
    assert server.root == runs_dir().resolve() and urlsplit(server.url).hostname == "127.0.0.1"
    server.stop()
    assert not report_server_file().exists() and report_url(report) is None


@pytest.mark.slow
def test_the_served_report_renders_its_charts_in_chromium(server, report, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(report_url(report))
    assert browser.current_url.startswith("http://127.0.0.1:")

    def all_drawn(driver) -> bool:  # plotly draws each chart into an <svg> (or a <canvas> for WebGL traces)
        figures = driver.find_elements(By.CSS_SELECTOR, "div.fig")
        return len(figures) >= 4 and all(f.find_elements(By.CSS_SELECTOR, "svg, canvas") for f in figures)

    WebDriverWait(browser, 30).until(all_drawn)  # plotly.min.js came over http from the server
    board = browser.find_element(By.CSS_SELECTOR, "#leaderboard table").text
    assert all(model in board for model in ("naive", "ets", "prophet"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] if hasattr(browser, "get_log") else []
    assert not errors, errors


def test_the_root_listing_shows_runs_escaped_and_hides_dotfiles(server, report):
    (runs_dir() / "<img src=x onerror=alert(1)>").mkdir()  # no "/" in a directory name
    (runs_dir() / ".report.html.tmp").write_text("half-written")
    status, _, body = _get(server.url)
    page = body.decode()
    assert status == 200
    assert 'href="20250102T030405-tiny%20run%20%231/report.html">report</a>' in page  # a run links to its report
    assert "&lt;img src=x onerror=alert(1)&gt;/" in page and "<img" not in page
    assert ".report.html.tmp" not in page
    status, headers, _ = _get(server.url, path=f"/{RUN.replace(' ', '%20').replace('#', '%23')}")
    assert status == 301 and headers["location"].endswith("%231/")  # a directory without its slash


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/20250102T030405-tiny%20run%20%231/../../secret.txt",
        "/20250102T030405-tiny%20run%20%231/%2e%2e/%2e%2e/secret.txt",
        "/../20250102T030405-tiny%20run%20%231/report.html",  # refused, not silently dropped to a served file
        "/./20250102T030405-tiny%20run%20%231/report.html",
        "/link-out",  # a symlink inside the root that leads out of it
        "/.report.html.tmp",
        "/20250102T030405-tiny%20run%20%231/report.html/",
        "/missing.html",
    ],
)
def test_nothing_outside_the_root_is_served(server, report, path):
    secret = runs_dir().parent / "secret.txt"
    secret.write_text("outside the root")
    (runs_dir() / "link-out").symlink_to(secret)
    (runs_dir() / ".report.html.tmp").write_text("hidden")
    status, _, body = _get(server.url, path=path)
    assert status == 404, (path, body[:200])
    assert b"outside the root" not in body and b"hidden" not in body


def test_read_only_and_loopback_host_names_only(server, report):
    url = report_url(report)
    assert _get(url, method="POST")[0] == 501
    assert _get(url, method="PUT")[0] == 501
    assert _get(url, headers={"Host": "attacker.example:4210"})[0] == 403  # DNS rebinding
    assert _get(url, headers={"Host": f"localhost:{urlsplit(url).port}"})[0] == 200
    status, headers, body = _get(url, method="HEAD")
    assert status == 200 and body == b"" and headers["cache-control"] == "no-cache"


def test_the_server_logs_requests_quietly(server, report, capfd, caplog):
    caplog.set_level("DEBUG", logger="reports.server")
    _get(report_url(report))
    _get(server.url, path="/../secret.txt")
    captured = capfd.readouterr()
    assert "GET" not in captured.err and "404" not in captured.err  # nothing on stderr per request
    assert any("GET /" in record.getMessage() for record in caplog.records)  # debug records instead


def test_only_loopback_hosts():
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="not loopback"):
        start_report_server(runs_dir(), port=0, host="0.0.0.0")


# ---------------------------------------------------------------------------------------------- report_url


def test_report_url_is_none_without_a_live_server_serving_the_path(server, report, tmp_path):
    outside = tmp_path / "elsewhere" / "report.html"
    outside.parent.mkdir()
    outside.write_text("<html></html>")
    assert report_url(outside) is None  # not under the served root
    assert report_url(runs_dir() / RUN / "missing.html") is None  # the server does not answer 200 for it

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"url": server.url, "root": str(runs_dir().resolve()), "pid": int(dead.stdout)}
    report_server_file().write_text(json.dumps(stale))
    assert report_url(report) is None  # a dead pid: stale, even though the URL happens to answer
    server.stop()
    assert json.loads(report_server_file().read_text()) == stale  # not ours any more: left alone

    report_server_file().write_text("{not json")
    assert report_url(report) is None
    report_server_file().unlink()
    assert report_url(report) is None


def test_a_discovery_file_whose_server_does_not_answer_gives_none(report):
    record = {"url": f"http://127.0.0.1:{_free_port()}/", "root": str(runs_dir().resolve()), "pid": os.getpid()}
    report_server_file().write_text(json.dumps(record))
    started = time.monotonic()
    assert report_url(report) is None
    assert time.monotonic() - started < 3  # a quick check: publishing artifacts is not held up


def test_an_external_report_server_url_is_used_as_configured(monkeypatch, tmp_path):
    root = tmp_path / "shared runs"
    report = root / "w1 ü" / "report.html"
    monkeypatch.setenv(REPORTS_URL_ENV, "https://bob:hunter2@reports.example.com/pricecast/")
    monkeypatch.setenv(REPORTS_ROOT_ENV, str(root))
    assert report_url(report) == "https://reports.example.com/pricecast/w1%20%C3%BC/report.html"  # no password
    assert report_url(tmp_path / "other" / "report.html") is None
    monkeypatch.delenv(REPORTS_ROOT_ENV)  # the root defaults to PRICECAST_HOME/runs
    assert report_url(runs_dir() / "a" / "report.html") == "https://reports.example.com/pricecast/a/report.html"


def test_a_port_in_use_is_one_line_naming_the_port_and_the_fix(server):
    from typer.testing import CliRunner

    from pricecast.cli import app

    port = urlsplit(server.url).port
    with pytest.raises(PortInUseError) as info:
        start_report_server(runs_dir(), port=port)
    message = str(info.value)
    assert "\n" not in message and f"port {port} " in message and "--port" in message
    assert f"by the pricecast report server at {server.url}" in message

    with socket.socket() as other:  # any other program on the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(PortInUseError, match=rf"^port {other.getsockname()[1]} on 127\.0\.0\.1 is already in use;"):
            start_report_server(runs_dir(), port=other.getsockname()[1])

    result = CliRunner().invoke(app, ["reports", "--port", str(port)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: port {port} on 127.0.0.1 is already in use"), lines
    assert "--port" in lines[0] and "Traceback" not in result.output + result.stderr


# ---------------------------------------------------------------------------------------------- artifacts


@pytest.fixture(scope="module")
def backtest_run(tmp_path_factory):
    """A tiny real backtest (AAPL, naive + drift, 2 folds) written as the flow writes it."""
    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan
    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from tasks.backtest import save_run

    panel, quality = load_panel(SourceSpec(tickers=("AAPL",), start="2012-01-01"))
    result = run_backtest(panel, models=["naive", "drift"], plan=FoldPlan(horizon=3, step=3, windows=2))
    evaluation, table = evaluate(result), quality.to_frame()
    out = tmp_path_factory.mktemp("backtest-run") / "run"
    save_run(result, evaluation, table, out)
    return result, evaluation, table, out


@pytest.fixture(scope="module")
def event_run(tmp_path_factory):
    """A tiny event backtest (one series, base_rate + logistic) with its report."""
    from backtest.event_task import evaluate_events, run_event_backtest
    from outputs.write import event_report_input
    from reports.event_report import render_event_html
    from tests.events.event_helpers import SMALL_FEATURES, panel, plan

    result = run_event_backtest(
        panel(n_series=1, seed=3),
        threshold=0.05,
        lookahead=5,
        plan=plan(windows=3),
        models=["base_rate", "logistic"],
        feature_config=SMALL_FEATURES,
    )
    evaluation = evaluate_events(result)
    out = tmp_path_factory.mktemp("event-run") / "run"
    render_event_html(event_report_input(result, evaluation), out / "report.html")
    return result, evaluation, out


def _in_runs(run_dir: Path, name: str = RUN) -> Path:
    """The run directory copied under this test's PRICECAST_HOME/runs; its report.html."""
    shutil.copytree(run_dir, runs_dir() / name)
    return runs_dir() / name / "report.html"


def _publish(kind: str, backtest_run, event_run, report: Path):
    """Call the artifact task's function inside a flow run (as the flows do); the latest artifact under its key."""
    from prefect import flow

    from tasks.backtest import publish_artifacts
    from tasks.event_backtest import REPORT_KEY, publish_event_artifacts
    from tests.flows.helpers import latest_artifacts

    @flow(name="publish-report-artifact")
    def publish() -> str:
        if kind == "backtest":
            result, evaluation, quality, _ = backtest_run
            return publish_artifacts.fn(result, evaluation, report, quality)
        result, evaluation, _ = event_run
        return publish_event_artifacts.fn(result, evaluation, report)

    assert publish()  # the verdict sentence
    return latest_artifacts()["backtest-report" if kind == "backtest" else REPORT_KEY]


@pytest.fixture(params=["backtest", "event"])
def kind(request) -> str:
    return request.param


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_with_a_report_server_the_artifact_links_to_the_http_report(prefect_server, kind, backtest_run, event_run):
    run_dir = backtest_run[3] if kind == "backtest" else event_run[2]
    report = _in_runs(run_dir)
    with start_report_server(runs_dir(), port=0) as server:
        artifact = _publish(kind, backtest_run, event_run, report)
        (link,) = re.findall(r"\]\((\S+)\)$", artifact.data)  # a link artifact's data is "[text](link)"
        assert link == report_url(report) and link.startswith(server.url)
        status, _, body = _get(link)
        assert status == 200 and body == report.read_bytes()
    assert "file://" not in artifact.data
    assert artifact.description.startswith("The run's HTML") and str(report.resolve()) in artifact.description


@pytest.mark.server
@pytest.mark.xdist_group("prefect")
def test_without_a_report_server_the_artifact_says_where_the_report_is(prefect_server, kind, backtest_run, event_run):
    run_dir = backtest_run[3] if kind == "backtest" else event_run[2]
    report = _in_runs(run_dir)
    artifact = _publish(kind, backtest_run, event_run, report)
    assert artifact.type == "markdown" and "](" not in artifact.data  # no dead file:// link
    assert f"`{report.resolve()}`" in artifact.data
    assert "`pricecast reports`" in artifact.data and "`pricecast serve`" in artifact.data
    assert "next run publishes a link" in artifact.data

    # a run written outside PRICECAST_HOME/runs (--out DIR): the note says which --dir serves it
    artifact = _publish(kind, backtest_run, event_run, run_dir / "report.html")
    assert f"`pricecast reports --dir {run_dir.parent.resolve()}`" in artifact.data


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_pricecast_reports_serves_until_terminated_and_removes_its_discovery_file(tmp_path, report):
    port = _free_port()
    env = {**os.environ, "PRICECAST_HOME": os.environ["PRICECAST_HOME"]}
    command = [str(Path(sys.executable).with_name("pricecast")), "reports", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not (urls := re.findall(r"http://127\.0\.0\.1:\d+/", "".join(lines))):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, f"no URL on stdout: {lines}"
            time.sleep(0.1)
        assert urls == [f"http://127.0.0.1:{port}/"]
        status, _, body = _get(urls[0])
        assert status == 200 and "tiny run #1" in body.decode()
        assert json.loads(report_server_file().read_text())["pid"] == proc.pid
        assert report_url(report) == f"{urls[0]}20250102T030405-tiny%20run%20%231/report.html"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    reader.join(timeout=5)
    assert proc.returncode == 0, proc.stderr.read()
    assert not report_server_file().exists()
    assert "GET" not in proc.stderr.read()  # quiet: no line per request
