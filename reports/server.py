"""Serve run directories (report.html, plotly.min.js, tables) read-only over HTTP on loopback.

Browsers refuse `file://` links from a page served over http ("Not allowed to load local resource"), so a Prefect
UI link to a local report.html is dead. While a report server runs, the runs' artifacts link to its http URL
instead (`report_url`); it announces itself in PRICECAST_HOME/report-server.json, which it removes on stop.

Why the standard library and no web framework or static-file package: a read-only file server for one user on
127.0.0.1 is what `http.server` already does, and a new dependency would add more code than the few lines that
close what `SimpleHTTPRequestHandler` leaves open here: `..` and hidden segments are refused (404) instead of
silently dropped, symlinks may not lead out of the root, listings hide dotfiles, and only loopback Host headers
are answered (a web page cannot read the reports through DNS rebinding).
"""

from __future__ import annotations

import errno
import html
import http.client
import io
import json
import logging
import os
import re
import shlex
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from common.errors import ConfigError, PortInUseError
from common.fileio import atomic_write_text
from common.redact import redact
from common.settings import report_server_file, reports_root, reports_url, runs_dir

log = logging.getLogger(__name__)

# 4210: beside Prefect's UI (4200) and clear of its other defaults; `pricecast reports --port N` changes it.
DEFAULT_PORT = 4210
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CHECK_TIMEOUT_SECONDS = 3.0  # report_url runs in a flow's artifact task: a dead server must not hold it up


class ReportServer:
    """A running report server: `url` serves `root`; `stop()` (or leaving the `with` block) shuts it down."""

    def __init__(self, httpd: ThreadingHTTPServer, root: Path, url: str):
        self.root = root
        self.url = url
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="pricecast-reports", daemon=True
        )
        self._stopped = threading.Event()
        self._discovery = report_server_file()
        self._record = {"url": url, "root": str(root), "pid": os.getpid()}

    def _start(self) -> ReportServer:
        self._thread.start()
        try:
            atomic_write_text(self._discovery, json.dumps(self._record, indent=2) + "\n")
        except BaseException:
            self.stop()
            raise
        log.info("serving %s at %s", self.root, self.url)
        return self

    def wait(self) -> None:
        """Block until stop() is called (Ctrl-C raises KeyboardInterrupt here)."""
        self._stopped.wait()

    def stop(self) -> None:
        """Stop serving and remove the discovery file if it still describes this server (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if _read_discovery(self._discovery) == self._record:
            self._discovery.unlink(missing_ok=True)

    def __enter__(self) -> ReportServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_report_server(root: Path, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> ReportServer:
    """Serve `root` (a directory of run directories) on http://host:port in a daemon thread.

    Args:
        port: 0 picks any free port (`ReportServer.url` has the one chosen).
        host: a loopback address only; the reports are one user's local files.
    """
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(f"report server host {host!r} is not loopback; it serves on 127.0.0.1, localhost or ::1")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"report directory {root} does not exist; pass --dir with a directory of run directories")
    server_class = _IPv6Server if host == "::1" else _Server
    try:
        httpd = server_class((host, port), _handler_for(root))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use{_holder(port)}; "
                "pass --port N with a free port (--port 0 picks one)"
            ) from None
        raise
    bound = httpd.server_address[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
    return ReportServer(httpd, root, url)._start()


def report_url(path: Path) -> str | None:
    """The http URL of the report file `path`, when a report server serves a root containing it; else None.

    PRICECAST_REPORTS_URL (a server elsewhere or behind a proxy, serving PRICECAST_REPORTS_ROOT) is trusted as
    configured; the local server's discovery file counts only while its process lives and its URL answers.
    """
    path = Path(path).expanduser().resolve()
    external = reports_url()
    if external and (url := _url_under(_without_credentials(external), reports_root(), path)):
        return url
    record = _read_discovery(report_server_file())
    if not record or not _alive(record.get("pid")):
        return None
    url = _url_under(str(record.get("url") or ""), str(record.get("root") or ""), path)
    return url if url and _answers(url) else None


def unserved_report_markdown(report: Path, *, title: str) -> str:
    """The artifact published instead of a dead file:// link: where the report is and which command serves it."""
    report = Path(report).expanduser().resolve()
    default_root = runs_dir().resolve()
    if report.is_relative_to(default_root):
        serve = f"Run {_code('pricecast reports')} there to serve it over http (`pricecast serve` serves it too)."
    else:  # serve the folder holding this run directory, so its listing shows the neighbouring runs as well
        command = _code(f"pricecast reports --dir {shlex.quote(str(report.parent.parent))}")
        serve = (
            f"Run {command} there to serve it over http (`pricecast reports` and `pricecast serve` serve "
            f"{_code(str(default_root))} by default)."
        )
    return "\n".join(
        [
            f"# {html.escape(title)}",
            "",
            f"The report is at {_code(str(report))} on the machine that ran this flow.",
            "",
            "No report server was running, so there is no link: browsers do not open `file://` links from the "
            "Prefect UI. " + serve,
            "",
            "While a report server runs, the next run publishes a link to its report here.",
        ]
    )


# ---------------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's own also calls getfqdn(): a DNS lookup per start
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        # A client that hangs up is no traceback on stderr.
        log.debug("report server: error while serving %s", client_address, exc_info=True)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _handler_for(root: Path) -> type[SimpleHTTPRequestHandler]:
    return type("ReportHandler", (_ReportHandler,), {"root": root})


class _ReportHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of files under `root` (other methods get 501 from BaseHTTPRequestHandler)."""

    root: Path
    server_version = "pricecast-reports"
    sys_version = ""
    _target: Path

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        if not _loopback_host(self.headers.get("Host")):
            self.send_error(HTTPStatus.FORBIDDEN, "This report server answers loopback host names only")
            return None
        if urlsplit(self.path).path == "/favicon.ico":  # browsers ask on every page: no icon, and no 404 logged
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
            return None
        target = resolve_request(self.root, self.path)
        if target is None or (target.is_file() and urlsplit(self.path).path.endswith("/")):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        self._target = target
        return super().send_head()  # serves _target through translate_path; redirects "dir" to "dir/"

    def translate_path(self, path: str) -> str:
        return str(self._target)

    def end_headers(self) -> None:
        # Reports are re-rendered in place (`pricecast report runs/w1`): always revalidate.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def list_directory(self, path: str | os.PathLike[str]) -> io.BytesIO | None:
        """Visible entries, newest first; a run directory with a report links to it directly."""
        directory = Path(path)
        try:
            entries = [e for e in directory.iterdir() if not e.name.startswith(".")]
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
            return None
        entries.sort(key=lambda e: (_mtime(e), e.name), reverse=True)
        shown = "/" + "/".join(directory.relative_to(self.root).parts)
        items = []
        for entry in entries:
            name = entry.name + ("/" if entry.is_dir() else "")
            item = f'<a href="{quote(name)}">{html.escape(name)}</a>'
            if entry.is_dir() and (entry / "report.html").is_file():
                item += f' — <a href="{quote(entry.name)}/report.html">report</a>'
            items.append(f"<li>{item}</li>")
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            f"<title>pricecast reports {html.escape(shown)}</title></head>"
            f"<body><h1>pricecast reports {html.escape(shown)}</h1><ul>{''.join(items)}</ul></body></html>"
        ).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        return io.BytesIO(page)

    def log_message(self, format: str, *args: Any) -> None:  # one debug record per request, nothing on stderr
        log.debug("report server: %s %s", self.address_string(), format % args)


def resolve_request(root: Path, request_path: str) -> Path | None:
    """The existing file or directory under `root` that a request path names, or None (served as 404).

    `root` is resolved. Segments are decoded one by one, so `%2e%2e` and `%2f` cannot smuggle a `..` or a `/`;
    `.`/`..` and hidden segments are refused rather than dropped, and a symlink may not lead outside `root`.
    """
    parts = [unquote(segment) for segment in urlsplit(request_path).path.split("/") if segment]
    if any(p.startswith(".") or "/" in p or "\\" in p or "\0" in p for p in parts):
        return None
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root) or not target.exists():
        return None
    return target


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # a dangling symlink
        return 0.0


def _loopback_host(header: str | None) -> bool:
    if header is None:  # HTTP/1.0 clients may omit it
        return True
    try:
        return urlsplit(f"//{header}").hostname in LOOPBACK_HOSTS
    except ValueError:  # a malformed Host header
        return False


def _holder(port: int) -> str:
    """' by the pricecast report server at URL (pid N)' when the discovery file names a live one on `port`."""
    record = _read_discovery(report_server_file())
    if record and _alive(record.get("pid")) and urlsplit(str(record.get("url", ""))).port == port:
        return f" by the pricecast report server at {record['url']} (pid {record['pid']})"
    return ""


# ---------------------------------------------------------------------------------------------- discovery


def _read_discovery(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _url_under(base: str, root: str | Path, path: Path) -> str | None:
    """base + the quoted segments of `path` relative to `root`, when `root` contains `path`."""
    if not base or not str(root):  # an empty root would be the working directory
        return None
    resolved = Path(root).expanduser().resolve()
    if not path.is_relative_to(resolved):
        return None
    return base.rstrip("/") + "/" + "/".join(quote(part, safe="") for part in path.relative_to(resolved).parts)


def _answers(url: str) -> bool:
    """A quick HEAD of `url` answers 200 (direct connection: a loopback URL must not go through a proxy)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return False
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=CHECK_TIMEOUT_SECONDS)
    try:
        connection.request("HEAD", parts.path or "/")
        return connection.getresponse().status == HTTPStatus.OK
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _without_credentials(url: str) -> str:
    """Artifacts are shown to everyone with UI access: a user:password in the configured URL stays out of them."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _code(text: str) -> str:
    """`text` as a Markdown code span (rendered literally, so HTML in a path is shown, never interpreted)."""
    text = redact(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)  # CommonMark: longer fence
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
