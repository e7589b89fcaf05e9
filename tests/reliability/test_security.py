"""Security: user text is escaped in the reports, credentials never reach logs, errors or artifacts, and every
server pricecast starts or documents listens on the loopback interface only."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from common.errors import ConfigError, SourceError
from common.redact import MASK, redact
from common.schema import ID
from ingest.sources.yahoo import fetch_yahoo
from ingest.spec import SourceSpec
from pricecast.cli import app
from reports.html import render_html
from reports.markdown import summary_markdown
from tests.reports.conftest import make_report_input

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-secret"
TOKEN = "tok-9f8e7d6c5b4a"
SECRETS = (PASSWORD, TOKEN)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------------------------------------- redact()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://bob:hunter2@example.com/prices.csv", "https://bob:***@example.com/prices.csv"),
        ("https:/bob:hunter2@example.com/p.csv", "https:/bob:***@example.com/p.csv"),  # a URL after pathlib
        ("proxy http://bob:pa55@proxy.corp:3128 refused", "proxy http://bob:***@proxy.corp:3128 refused"),
        (
            "/v8/finance/chart/AAPL?period1=1&crumb=AbC123&interval=1d",
            "/v8/finance/chart/AAPL?period1=1&crumb=***&interval=1d",
        ),
        ("GET /x?apikey=XYZ&access_token=abc", "GET /x?apikey=***&access_token=***"),
        ("Authorization: Bearer eyJhbGciOi.x-y", "Authorization: Bearer ***"),
        ("FDR_TOKEN=abcdef rest", "FDR_TOKEN=*** rest"),
        ('{"api_key": "abc123", "password": "pw"}', '{"api_key": "***", "password": "***"}'),
        # ordinary messages are left alone
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
        ("KeyError: 'close'", "KeyError: 'close'"),
        ("unexpected token in JSON at position 3", "unexpected token in JSON at position 3"),
        ("C:/data/prices.csv", "C:/data/prices.csv"),
    ],
)
def test_redact(text, expected):
    assert redact(text, environ={}) == expected


def test_redact_masks_values_of_secret_environment_variables():
    env = {"PRICECAST_FDR_TOKEN": TOKEN, "HOME": "/home/someone", "DEBUG": "1"}
    assert redact(f"failed with {TOKEN} for /home/someone", environ=env) == f"failed with {MASK} for /home/someone"


# ---------------------------------------------------------------------------------------------- reports


@pytest.fixture
def hostile_input():
    """Report tables whose tickers, source path, failure messages and quality details carry HTML and credentials."""
    tickers = ("<script>alert('ticker')</script>", '"><img src=x onerror=alert(1)>')
    data = make_report_input(
        1,
        tickers=tickers,
        failure_message=f"fit failed: GET https://bob:{PASSWORD}@api.example.com/x?token={TOKEN} <b>boom</b>",
    )
    quality = pd.DataFrame(
        {
            ID: [tickers[0], "*"],
            "check": ["warning", "ignored_files"],
            "count": [1, 1],
            "detail": [f"from https://bob:{PASSWORD}@host/p.csv", "<img src=y onerror=alert(3)>.txt"],
        }
    )
    meta = {
        **dict(data.meta or {}),
        "source": f"csv https://bob:{PASSWORD}@host/<script>alert('source')</script>.csv",
        "path": f"/data/<script>alert('path')</script>/https:/bob:{PASSWORD}@host/prices.csv?apikey={TOKEN}",
    }
    return dataclasses.replace(data, quality=quality, meta=meta)


def test_html_report_escapes_tickers_and_paths_and_masks_credentials(hostile_input, tmp_path):
    html = render_html(hostile_input, tmp_path / "report.html").read_text()
    for raw in ("<script>alert(", "<img src=x", "<img src=y", "<b>boom", '"><img'):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#39;path&#39;)&lt;/script&gt;" in html  # the path is shown, as text
    assert "&lt;script&gt;alert(&#39;ticker&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=y onerror=alert(3)&gt;.txt" in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html and f"token={MASK}" in html  # the failure message, masked
    for secret in SECRETS:
        assert secret not in html, secret
    assert f"bob:{MASK}@host" in html


def test_markdown_summary_escapes_and_masks(hostile_input):
    md = summary_markdown(hostile_input)
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert PASSWORD not in md and f"bob:{MASK}@host" in md


# ---------------------------------------------------------------------------------------------- logs and errors


def test_network_error_with_credentials_is_masked_in_logs_and_the_error(yahoo_http, caplog, monkeypatch):
    from curl_cffi.requests.exceptions import ProxyError

    monkeypatch.setenv("PRICECAST_FDR_TOKEN", TOKEN)
    yahoo_http.down["AAPL"] = ProxyError(f"Failed to connect to proxy http://bob:{PASSWORD}@proxy.corp:3128 ({TOKEN})")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        fetch_yahoo("AAPL", start=date(2024, 1, 3), end=None, attempts=2, sleep=lambda s: None)
    assert "yfinance: could not fetch AAPL after 2 attempts (ProxyError" in str(info.value)
    assert "proxy.corp" in caplog.text  # the retry was logged, with the secrets masked
    for secret in SECRETS:
        assert secret not in str(info.value) and secret not in caplog.text


def test_cli_error_naming_a_url_with_a_password_masks_it(tmp_path):
    url = f"https://bob:{PASSWORD}@example.com/prices.csv"
    result = CliRunner().invoke(app, ["ingest", "--source", "csv", "--path", url])
    assert result.exit_code == 2
    assert PASSWORD not in result.output and f"bob:{MASK}@example.com" in result.stderr


def test_spec_errors_mask_what_they_quote():
    with pytest.raises(ConfigError) as info:
        SourceSpec(source="csv", path="prices.csv", colour=f"https://bob:{PASSWORD}@host/x")
    assert "colour" in str(info.value) and PASSWORD not in str(info.value)


# ---------------------------------------------------------------------------------------------- loopback only


def test_documented_server_commands_bind_to_loopback():
    docs = {name: (ROOT / name).read_text() for name in ("README.md", "prefect.yaml", "Makefile")}
    starts = [line for text in docs.values() for line in text.splitlines() if "prefect server start" in line]
    assert starts, "the README documents how to start the Prefect server"
    for line in starts:
        assert re.search(r"--host\s+127\.0\.0\.1\b", line), line
    urls = re.findall(r"https?://([\w.\-]+):\d+", "\n".join(docs.values()))
    assert urls and set(urls) <= LOOPBACK, urls
    for name, text in docs.items():
        assert "0.0.0.0" not in text and "SERVER_API_HOST" not in text, name


def test_prefect_defaults_bind_to_loopback(monkeypatch):
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import Settings

    for var in ("PREFECT_SERVER_API_HOST", "PREFECT_RUNNER_SERVER_HOST", "PREFECT_RUNNER_SERVER_ENABLE"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert settings.server.api.host == "127.0.0.1"  # `prefect server start` without --host
    assert settings.runner.server.enable is False and settings.runner.server.host in LOOPBACK  # `serve`'s webserver
    assert SubprocessASGIServer().address.startswith("http://127.0.0.1:")  # the temporary server of a CLI run


def test_pricecast_serve_starts_no_webserver_and_sets_no_host(monkeypatch):
    import flows.serve

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(flows.serve, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(flows.serve, "check_names", lambda decls: [])  # no API server in this test
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    ((deployments, kwargs),) = calls
    assert {d.name for d in deployments} >= {"daily-forecast-served", "weekly-backtest-served"}
    assert not kwargs.get("webserver") and not {k for k in kwargs if "host" in k}
    source = Path(flows.serve.__file__).read_text()
    assert "0.0.0.0" not in source and "webserver" not in source
