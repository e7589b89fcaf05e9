"""The CLI's Prefect API: an explicit PREFECT_API_URL as-is, else one pricecast-managed background server.

Prefect's default for a process without an API is a temporary server that boots with the command and dies with
it (10-20 s per command, and the runs vanish with it). The CLI instead starts one local server on first use,
detached, in PREFECT_HOME, and every later command reuses it, so each CLI run is visible in the UI afterwards.

- An explicit API (PREFECT_API_URL in the environment or the active Prefect profile: a user's own server,
  Prefect Cloud, the test harness) is always used as-is; nothing is spawned.
- PRICECAST_SERVER=temporary keeps Prefect's temporary server (the old behaviour); the default is `background`.
  The test suite sets `temporary` (tests/conftest.py), so a test never leaves a server behind unless it asks.
- PRICECAST_SERVER_PORT (default 4200) is the port on 127.0.0.1; a healthy Prefect API already listening there
  is used; anything else holding it is one PortInUseError line.
- PRICECAST_SERVER_TIMEOUT (seconds, default 120) bounds the wait for a starting server's health.

The managed server is recorded in PREFECT_HOME/pricecast-server.json (and server.pid, so `prefect server stop`
stops it too); its output goes to PREFECT_HOME/pricecast-server.log. `begin()` spawns it without waiting, so the
CLI's own imports overlap the server's boot; `api_for_flows()` waits for health and points Prefect at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from common.errors import ConfigError, PortInUseError, PricecastError

MODE_ENV = "PRICECAST_SERVER"  # background (default) | temporary
PORT_ENV = "PRICECAST_SERVER_PORT"
TIMEOUT_ENV = "PRICECAST_SERVER_TIMEOUT"
DEFAULT_PORT = 4200
DEFAULT_TIMEOUT = 120.0
HOST = "127.0.0.1"
STATE_FILE = "pricecast-server.json"
LOG_FILE = "pricecast-server.log"
PREFECT_PID_FILE = "server.pid"  # prefect's own name: `prefect server stop` finds our server through it

_resolved: dict[str, Target | None] = {}  # the process's API, resolved once (a CLI run may call run_flow twice)
_spawned: list[subprocess.Popen[bytes]] = []  # kept referenced: this process may poll the child while it boots


@dataclass(frozen=True)
class Target:
    """The API flows of this process report to; `managed` when it is pricecast's background server."""

    api_url: str
    managed: bool


@dataclass(frozen=True)
class ServerState:
    """What pricecast-server.json records about the managed server."""

    pid: int
    port: int
    api_url: str
    started_at: float
    log: str

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


# ---- settings --------------------------------------------------------------------------------------------------
def mode() -> str:
    """`background` (the default) or `temporary` (PRICECAST_SERVER)."""
    value = (os.environ.get(MODE_ENV) or "background").strip().lower()
    if value not in ("background", "temporary"):
        raise ConfigError(f"{MODE_ENV}={value!r} is not a server mode; use background or temporary")
    return value


def port() -> int:
    """The managed server's port (PRICECAST_SERVER_PORT, default 4200)."""
    raw = os.environ.get(PORT_ENV) or str(DEFAULT_PORT)
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise ConfigError(f"{PORT_ENV}={raw!r} is not a TCP port; use a number in 1-65535, e.g. {DEFAULT_PORT}")
    return value


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV) or str(DEFAULT_TIMEOUT)
    try:
        return max(1.0, float(raw))
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; e.g. {DEFAULT_TIMEOUT:g}") from None


def prefect_home() -> Path:
    """PREFECT_HOME as Prefect resolves it (default ~/.prefect); the server's database lives there."""
    raw = os.environ.get("PREFECT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".prefect"


def explicit_api_url() -> str | None:
    """PREFECT_API_URL as configured by the user or a harness, or None (then pricecast may manage a server).

    Once prefect.settings is imported its current settings are the truth (environment, profile, the test
    harness's temporary settings); before, the environment and the active profile are read directly, because
    importing prefect.settings costs ~0.8 s that the server's boot should overlap.
    """
    if "prefect.settings" in sys.modules:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
        return str(url) if url else None
    return os.environ.get("PREFECT_API_URL") or _profile_api_url()


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active profile in PREFECT_HOME/profiles.toml (PREFECT_PROFILES_PATH), if any."""
    import tomllib

    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return None
    name = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(name, {}).get("PREFECT_API_URL")
    return str(url) if url else None


# ---- the managed server ------------------------------------------------------------------------------------
def read_state(home: Path | None = None) -> ServerState | None:
    """The recorded managed server of PREFECT_HOME, or None (no file, or a file this version cannot read)."""
    path = (home or prefect_home()) / STATE_FILE
    try:
        return ServerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _clear_state(home: Path) -> None:
    for name in (STATE_FILE, PREFECT_PID_FILE):
        (home / name).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Whether `pid` is a running server process (not a zombie, not a reused pid of another program)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for child in _spawned:  # our own child: reap it if it exited, or it lingers as a zombie that os.kill finds
        if child.pid == pid and child.poll() is not None:
            return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # not Linux: os.kill is all we can know
        return True
    try:
        status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return status != "Z" and b"uvicorn" in cmdline


def health(api_url: str, *, wait: float = 1.0) -> str:
    """`ok` for a healthy Prefect API, `down` when nothing listens, else what answered instead (one phrase)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=wait) as response:  # noqa: S310 - http on localhost
            body = response.read(200).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        return f"GET /api/health answered HTTP {exc.code}"
    except (ConnectionError, TimeoutError) as exc:
        return "down" if isinstance(exc, ConnectionRefusedError) else f"no answer to GET /api/health ({exc})"
    except urllib.error.URLError as exc:
        return "down" if isinstance(exc.reason, ConnectionRefusedError) else f"GET /api/health failed ({exc.reason})"
    except OSError as exc:  # a listener that is not HTTP at all (reset, bad status line)
        return f"GET /api/health failed ({type(exc).__name__})"
    return "ok" if body == "true" else f"GET /api/health answered {body[:40]!r}, not a Prefect API"


def version(api_url: str) -> str | None:
    """The Prefect server's version (GET /api/admin/version), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{api_url}/admin/version", timeout=2) as response:  # noqa: S310
            return str(json.loads(response.read(200)))
    except (OSError, ValueError):
        return None


def _spawn(home: Path, chosen_port: int) -> ServerState:
    """Start uvicorn on Prefect's server app, detached (own session, output to the log file), and record it."""
    log = home / LOG_FILE
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED=env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        PREFECT__SERVER_FINAL="1",  # what `prefect server start` sets: this process is the server, not a client
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app"]
    command += ["--host", HOST, "--port", str(chosen_port), "--timeout-keep-alive", "5", "--log-level", "warning"]
    with log.open("ab") as out:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed module
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    _spawned.append(child)
    state = ServerState(child.pid, chosen_port, f"http://{HOST}:{chosen_port}/api", time.time(), str(log))
    (home / STATE_FILE).write_text(json.dumps(asdict(state)))
    (home / PREFECT_PID_FILE).write_text(str(child.pid))
    return state


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One process at a time decides whether to spawn: two commands started together share one server."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with (home / "pricecast-server.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_or_spawned(home: Path, chosen_port: int) -> Target:
    """The managed server of `home` (starting or up), an unmanaged Prefect API on the port, or a new spawn."""
    with _locked(home):
        state = read_state(home)
        if state is not None and state.port == chosen_port and alive(state.pid):
            return Target(state.api_url, managed=True)
        if state is not None:
            _clear_state(home)
        api_url = f"http://{HOST}:{chosen_port}/api"
        status = health(api_url)
        if status == "ok":  # e.g. the user's own `prefect server start`: use it, it is not ours to stop
            return Target(api_url, managed=False)
        if status == "down" and not _port_free(chosen_port):
            status = "bound, but nothing answers HTTP"
        if status != "down":
            raise PortInUseError(
                f"port {chosen_port} on {HOST} is held by something that is not a Prefect API ({status}); "
                f"stop it or set {PORT_ENV} to a free port"
            )
        return Target(_spawn(home, chosen_port).api_url, managed=True)


def _port_free(chosen_port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            s.bind((HOST, chosen_port))
        except OSError:
            return False
    return True


def begin() -> Target | None:
    """Resolve the API and start the managed server if it is needed and absent, without waiting for it.

    Called first thing by flow commands so the server boots while the CLI imports its flow; None means Prefect's
    own choice (temporary server) applies.
    """
    if "target" in _resolved:
        return _resolved["target"]
    if mode() == "temporary":
        target = None
    elif url := explicit_api_url():
        target = Target(url, managed=False)
    else:
        target = _running_or_spawned(prefect_home(), port())
    _resolved["target"] = target
    return target


def wait_healthy(target: Target, *, limit: float | None = None) -> None:
    """Block until the managed server answers /api/health; a dead or slow server is one clear error."""
    limit = timeout() if limit is None else limit
    deadline = time.monotonic() + limit
    state = read_state()
    while True:
        status = health(target.api_url, wait=2.0)
        if status == "ok":
            return
        if state is not None and not alive(state.pid):
            _clear_state(prefect_home())
            raise PricecastError(
                f"the Prefect server (pid {state.pid}) exited while starting: {_last_log_line(Path(state.log))}; "
                f"see {state.log}, or set {MODE_ENV}=temporary"
            )
        if time.monotonic() > deadline:
            raise PricecastError(
                f"the Prefect server at {target.api_url} was not healthy after {limit:g} s ({status}); "
                f"see {state.log if state else 'its log'}, raise {TIMEOUT_ENV}, or set {MODE_ENV}=temporary"
            )
        time.sleep(0.1)


def _last_log_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


@contextlib.contextmanager
def api_for_flows() -> Iterator[Target | None]:
    """Flows run in this block report to the resolved API: the explicit one, or the managed server once healthy.

    The URL goes into the environment too, so processes the flow starts (Dask workers) report to it as well.
    """
    target = begin()
    if target is None or not target.managed:
        yield target
        return
    wait_healthy(target)
    os.environ["PREFECT_API_URL"] = target.api_url
    if "prefect.settings" not in sys.modules:
        yield target
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect read its settings when it was imported, before the URL was known: override them for the run.
    with temporary_settings(updates={PREFECT_API_URL: target.api_url}):
        yield target


def stop(home: Path | None = None, *, grace: float = 10.0) -> ServerState | None:
    """Stop the managed server of PREFECT_HOME (SIGTERM to its session, SIGKILL after `grace` s); None if none ran."""
    home = home or prefect_home()
    with _locked(home):
        state = read_state(home)
        if state is None:
            return None
        if alive(state.pid):
            _signal_group(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(state.pid):
                _signal_group(state.pid, signal.SIGKILL)
        _clear_state(home)
        return state


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the server leads its own session: its group is the server and nothing else
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
