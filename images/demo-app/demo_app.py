#!/usr/bin/env python3
"""The demo application of ``make demo`` and the end-to-end tests: a small HTTP service whose image tag is its version.

It is one file on the Python 3.11 standard library, because the test node agent runs "containers" as local processes
with the host's Python. A deploy changes nothing but the image, so the image tag carries everything a scenario needs:
the version, and optionally a failure mode as a suffix.

Environment:

``DEMO_APP_VERSION``
    The image tag (the node agent passes it; the Dockerfile bakes it from the ``VERSION`` build argument). It is
    reported unchanged as the version. Default ``dev``.
``DEMO_APP_MODE``
    Overrides the mode the tag names; ``normal`` turns a tag's failure mode off. An unknown mode stops the app.
``PORT``
    The port to listen on, on all interfaces. Default 8080; with 0 the system chooses and ``listening`` names it.
``POD_NAME``, then ``HOSTNAME``
    The pod name reported by ``/`` and ``/version`` (null when neither is set).
``DEMO_APP_START_SECONDS``
    How long ``slow-start`` stays unready after start. Default 10.
``DEMO_APP_CRASH_SECONDS``
    How long ``crash`` runs before it exits with code 1. Default 1.
``DEMO_APP_DRAIN_SECONDS``
    How long the app keeps serving after SIGTERM, counted from the signal. Default 2.

Endpoints (any method; every response is JSON and carries ``X-Demo-Version: <version>``):

``/health``
    Readiness and liveness: 200 when ready, 503 otherwise.
``/api/users/health``, ``/api/health/db``
    The smoke test endpoints of ``examples/user-service.yaml``.
``/``, ``/version``
    ``{"service", "version", "release", "mode", "pod"}``.

Modes, chosen by a tag that ends in ``-<mode>`` (``v3-fail-smoke``: release ``v3``, mode ``fail-smoke``):

=============== ================================================================================================
``normal``      everything answers 200 (any tag without a mode suffix)
``never-ready`` ``/health`` always 503; the other endpoints answer 200
``fail-smoke``  both smoke endpoints 500; ``/health`` 200
``fail-db``     ``/api/health/db`` 500; everything else 200
``slow-start``  ``/health`` 503 for ``DEMO_APP_START_SECONDS`` after start, then 200
``crash``       ``/health`` 503, then exit code 1 after ``DEMO_APP_CRASH_SECONDS``: a crash loop under a restart policy
=============== ================================================================================================

Shutdown, as a well-behaved service does it: on SIGTERM (or SIGINT) ``/health`` turns 503 at once so the endpoint is
taken out of rotation, while every endpoint, on new and on kept-alive connections, goes on answering until the drain
deadline. Then the app stops accepting, closes idle keep-alive connections (a request in flight is answered with
``Connection: close``) and exits 0. A second signal ends the drain early.

Each lifecycle event is one JSON line on stdout: ``listening``, ``ready``, ``draining``, ``drain_cut_short``,
``stopped``, ``crashing``, ``config_error``, ``listen_failed``. Requests are not logged.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import math
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SERVICE = "demo-app"
VERSION_HEADER = "X-Demo-Version"
LISTEN_HOST = "0.0.0.0"
DEFAULT_VERSION = "dev"
DEFAULT_PORT = 8080
DEFAULT_START_SECONDS = 10.0
DEFAULT_CRASH_SECONDS = 1.0
DEFAULT_DRAIN_SECONDS = 2.0
# A client that keeps a connection open and silent holds a thread; this bounds how long.
IDLE_CONNECTION_TIMEOUT_SECONDS = 60.0
# After the drain deadline, how long requests already in flight get to finish before the process exits anyway.
CLOSE_GRACE_SECONDS = 1.0
# How often the accept loop checks for shutdown, which bounds how long stopping to accept takes.
ACCEPT_POLL_SECONDS = 0.05
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
CONFIG_ERROR_EXIT_CODE = 2
CRASH_EXIT_CODE = 1


class Mode(enum.StrEnum):
    """How the app misbehaves, if at all."""

    NORMAL = "normal"
    NEVER_READY = "never-ready"
    FAIL_SMOKE = "fail-smoke"
    FAIL_DB = "fail-db"
    SLOW_START = "slow-start"
    CRASH = "crash"


# Which smoke endpoints fail in which modes.
SMOKE_ENDPOINTS: Mapping[str, frozenset[Mode]] = {
    "/api/users/health": frozenset({Mode.FAIL_SMOKE}),
    "/api/health/db": frozenset({Mode.FAIL_SMOKE, Mode.FAIL_DB}),
}
IDENTITY_ENDPOINTS = frozenset({"/", "/version"})
HEALTH_ENDPOINT = "/health"


class ConfigError(ValueError):
    """An environment variable the app cannot work with."""


def parse_tag(tag: str) -> tuple[str, Mode]:
    """Split an image tag into its release and the mode its ``-<mode>`` suffix names (``normal`` without one)."""
    for mode in Mode:
        suffix = f"-{mode}"
        if mode is not Mode.NORMAL and tag.endswith(suffix) and len(tag) > len(suffix):
            return tag[: -len(suffix)], mode
    return tag, Mode.NORMAL


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={raw!r} must be a finite, non-negative number of seconds")
    return value


def _port(environ: Mapping[str, str]) -> int:
    raw = environ.get("PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdecimal() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"PORT={raw!r} is not a port number (0 to 65535)")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Everything the environment decides."""

    version: str
    release: str
    mode: Mode
    pod: str | None
    port: int
    start_seconds: float
    crash_seconds: float
    drain_seconds: float

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings, or raise :class:`ConfigError` naming the variable at fault."""
        version = environ.get("DEMO_APP_VERSION", "").strip() or DEFAULT_VERSION
        release, mode = parse_tag(version)
        override = environ.get("DEMO_APP_MODE", "").strip()
        if override:
            try:
                mode = Mode(override)
            except ValueError:
                known = ", ".join(Mode)
                raise ConfigError(f"DEMO_APP_MODE={override!r} is not a mode; the modes are {known}") from None
        return cls(
            version=version,
            release=release,
            mode=mode,
            pod=environ.get("POD_NAME") or environ.get("HOSTNAME") or None,
            port=_port(environ),
            start_seconds=_seconds(environ, "DEMO_APP_START_SECONDS", DEFAULT_START_SECONDS),
            crash_seconds=_seconds(environ, "DEMO_APP_CRASH_SECONDS", DEFAULT_CRASH_SECONDS),
            drain_seconds=_seconds(environ, "DEMO_APP_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS),
        )

    def identity(self) -> dict[str, Any]:
        """What ``/`` and ``/version`` answer."""
        return {
            "service": SERVICE,
            "version": self.version,
            "release": self.release,
            "mode": self.mode,
            "pod": self.pod,
        }


class DemoApp:
    """What each endpoint answers, given the mode, the time since start and whether the app is draining."""

    def __init__(self, settings: Settings, started_at: float) -> None:
        self.settings = settings
        self.started_at = started_at
        self.ready_at = started_at + (settings.start_seconds if settings.mode is Mode.SLOW_START else 0.0)
        self.draining = threading.Event()

    def readiness(self, now: float) -> tuple[bool, str]:
        """Whether ``/health`` passes at monotonic time ``now``, and the state it reports."""
        if self.draining.is_set():
            return False, "draining"
        if self.settings.mode is Mode.NEVER_READY:
            return False, "never ready"
        if self.settings.mode is Mode.CRASH or now < self.ready_at:
            return False, "starting"
        return True, "ready"

    def respond(self, path: str, now: float) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a request to ``path`` at monotonic time ``now``."""
        if path == HEALTH_ENDPOINT:
            ready, state = self.readiness(now)
            return (200 if ready else 503), {"status": state}
        if path in SMOKE_ENDPOINTS:
            if self.settings.mode in SMOKE_ENDPOINTS[path]:
                return 500, {"status": "failing", "reason": f"mode {self.settings.mode}"}
            return 200, {"status": "ok"}
        if path in IDENTITY_ENDPOINTS:
            return 200, self.settings.identity()
        return 404, {"error": f"no endpoint {path}"}


class ConnectionTracker:
    """The open client connections and whether each is between requests, so that shutdown closes the idle ones."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy: dict[socket.socket, bool] = {}
        self._closing = False

    @property
    def closing(self) -> bool:
        """Whether every connection is to close after its current request."""
        return self._closing

    def opened(self, connection: socket.socket) -> bool:
        """Track a new connection; False when the server is closing and the connection should be dropped."""
        with self._changed:
            if self._closing:
                return False
            self._busy[connection] = False
            return True

    def request_started(self, connection: socket.socket) -> None:
        """The connection has a request in flight: closing idle connections leaves it alone."""
        with self._changed:
            if connection in self._busy:
                self._busy[connection] = True

    def request_finished(self, connection: socket.socket) -> bool:
        """The connection is idle again; False when the server is closing and the connection must close now."""
        with self._changed:
            if connection in self._busy:
                self._busy[connection] = False
            return not self._closing

    def closed(self, connection: socket.socket) -> None:
        """Forget a connection its handler has finished with."""
        with self._changed:
            self._busy.pop(connection, None)
            self._changed.notify_all()

    def close_idle(self) -> int:
        """Close every idle connection now and every busy one after its request; return how many were idle."""
        with self._changed:
            self._closing = True
            idle = [connection for connection, busy in self._busy.items() if not busy]
            for connection in idle:
                # Wakes the handler thread blocked reading the next request: it sees end of stream and finishes.
                # OSError: the client closed the connection first.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            return len(idle)

    def wait_closed(self, deadline: float) -> int:
        """Wait until every connection has closed or the monotonic ``deadline`` passes; return how many are open."""
        with self._changed:
            self._changed.wait_for(lambda: not self._busy, timeout=max(0.0, deadline - time.monotonic()))
            return len(self._busy)


class DemoServer(ThreadingHTTPServer):
    """A thread per connection, answering from one :class:`DemoApp`."""

    # socketserver's default backlog is 5: a burst of new connections on a busy machine overflowed it, and each dropped
    # SYN cost its client a one-second retransmission (or, on a Pod about to stop, a connection that never came up).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: DemoApp) -> None:
        self.app = app
        self.connections = ConnectionTracker()
        super().__init__(address, DemoRequestHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's lookup of the host's qualified name, which can wait on DNS and is never used."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away mid-reply; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class DemoRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every method on every path goes to :meth:`DemoApp.respond`."""

    server: DemoServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_TIMEOUT_SECONDS
    # Headers and body leave in two writes; with Nagle's algorithm the body would wait for the client's delayed ACK
    # (40 ms on Linux) on every kept-alive connection.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        """Serve the connection's requests, tracked so that shutdown can close it."""
        if not self.server.connections.opened(self.connection):
            return
        try:
            super().handle()
        finally:
            self.server.connections.closed(self.connection)

    def parse_request(self) -> bool:
        """Mark the connection busy as soon as a request line has arrived."""
        self.server.connections.request_started(self.connection)
        return super().parse_request()

    def handle_one_request(self) -> None:
        """Serve one request; close the connection after it if the server has started closing meanwhile."""
        super().handle_one_request()
        if not self.server.connections.request_finished(self.connection):
            self.close_connection = True

    def version_string(self) -> str:
        """The ``Server`` header: the service, without the Python version."""
        return SERVICE

    def send_response(self, code: int, message: str | None = None) -> None:
        """Start a response; every response, errors included, names the version that sent it."""
        super().send_response(code, message)
        self.send_header(VERSION_HEADER, self.server.app.settings.version)

    def answer(self) -> None:
        """Reply to the request with what the app says about its path."""
        if not self._discard_body():
            return
        status, payload = self.server.app.respond(urlsplit(self.path).path, time.monotonic())
        body = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.server.connections.closing:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer

    def _discard_body(self) -> bool:
        """Read past a request body so the next request on the connection parses; False after an error reply."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Not worth decoding for a body nobody reads: answer, then close instead of reusing the connection.
            self.close_connection = True
            return True
        raw = self.headers.get("Content-Length", "0").strip()
        if not raw.isdecimal():
            self.send_error(400, f"Content-Length {raw!r} is not a length")
            return False
        remaining = int(raw)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                self.close_connection = True
                return False
            remaining -= len(chunk)
        return True

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request: stdout is for lifecycle events, and load tests send many requests."""


class EventLog:
    """One JSON line per lifecycle event on stdout, each with the fields that identify this instance."""

    def __init__(self, **identity: Any) -> None:
        self._identity = identity

    def __call__(self, event: str, **fields: Any) -> None:
        """Write ``event`` with ``fields``."""
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = {"time": now, "event": event, **self._identity, **fields}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def next_stop_signal() -> signal.Signals:
    """Wait for a stop signal, however long it takes."""
    return signal.Signals(signal.sigwait(STOP_SIGNALS))


def stop_signal_before(deadline: float) -> signal.Signals | None:
    """The stop signal received before the monotonic ``deadline``, or None if none came."""
    received = signal.sigtimedwait(STOP_SIGNALS, max(0.0, deadline - time.monotonic()))
    return None if received is None else signal.Signals(received.si_signo)


def drain_and_stop(server: DemoServer, app: DemoApp, received: signal.Signals, log: EventLog) -> int:
    """Serve as unready until the drain deadline, then stop accepting, close the connections and return 0."""
    deadline = time.monotonic() + app.settings.drain_seconds
    app.draining.set()
    log("draining", signal=received.name, drain_seconds=app.settings.drain_seconds)
    again = stop_signal_before(deadline)
    if again is not None:
        log("drain_cut_short", signal=again.name)
    server.shutdown()
    server.server_close()
    closed_idle = server.connections.close_idle()
    still_open = server.connections.wait_closed(time.monotonic() + CLOSE_GRACE_SECONDS)
    log("stopped", exit_code=0, closed_idle_connections=closed_idle, still_open_connections=still_open)
    return 0


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Run the app until a stop signal (exit 0), a crash (``crash`` mode, exit 1) or a bad setting (exit 2)."""
    # Stop signals are blocked in every thread (request threads inherit the mask) and taken synchronously by the main
    # thread below, so no handler ever interrupts code that holds a lock.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    started_at = time.monotonic()
    try:
        settings = Settings.from_environment(environ)
    except ConfigError as error:
        EventLog(service=SERVICE, pid=os.getpid())("config_error", error=str(error))
        return CONFIG_ERROR_EXIT_CODE
    log = EventLog(service=SERVICE, version=settings.version, mode=settings.mode, pod=settings.pod, pid=os.getpid())
    app = DemoApp(settings, started_at)
    try:
        server = DemoServer((LISTEN_HOST, settings.port), app)
    except OSError as error:
        log("listen_failed", port=settings.port, error=str(error))
        return 1
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": ACCEPT_POLL_SECONDS}, name="accept", daemon=True
    ).start()
    log("listening", host=LISTEN_HOST, port=server.server_port)

    received: signal.Signals | None = None
    if settings.mode is Mode.CRASH:
        received = stop_signal_before(started_at + settings.crash_seconds)
        if received is None:
            log("crashing", exit_code=CRASH_EXIT_CODE, after_seconds=settings.crash_seconds)
            return CRASH_EXIT_CODE
    elif settings.mode is not Mode.NEVER_READY:
        received = stop_signal_before(app.ready_at)
        if received is None:
            log("ready", after_seconds=round(time.monotonic() - started_at, 3))
    return drain_and_stop(server, app, received if received is not None else next_stop_signal(), log)


if __name__ == "__main__":
    sys.exit(main())
