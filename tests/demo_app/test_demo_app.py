"""The demo application: the real program as a subprocess, over real HTTP, and its settings as plain functions.

Every wait is bounded: the tests read the app's lifecycle events as it prints them, and poll with a deadline where
they wait for its state to change.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "images" / "demo-app"
LOOPBACK = "127.0.0.1"
# Generous bounds for a loaded 2-core machine; the waits end as soon as the awaited thing happens.
EVENT_TIMEOUT = 10.0
HTTP_TIMEOUT = 5.0
POLL_INTERVAL = 0.02


def load_demo_app() -> ModuleType:
    """The app as a module: its directory name has a hyphen, so it is loaded from its path."""
    spec = importlib.util.spec_from_file_location("demo_app", APP_DIR / "demo_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


demo_app = load_demo_app()
Mode = demo_app.Mode
FAILURE_MODES = [mode for mode in Mode if mode is not Mode.NORMAL]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: Any


def ask(connection: http.client.HTTPConnection, path: str, method: str = "GET", body: bytes | None = None) -> Answer:
    connection.request(method, path, body=body)
    response = connection.getresponse()
    data = response.read()
    return Answer(response.status, response.headers, json.loads(data) if data else None)


class RunningApp:
    """The app as a subprocess on a port the system chose, with its lifecycle events collected as they arrive."""

    def __init__(self, **environment: str) -> None:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("DEMO_APP_") and name not in {"PORT", "POD_NAME", "HOSTNAME"}
        }
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, str(APP_DIR / "demo_app.py")],
            env={**inherited, "PORT": "0", **environment},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def event(self, name: str, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """The first event called ``name``, waiting for it until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self._events:
                if event["event"] == name:
                    return event
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                pytest.fail(f"no {name!r} event within {timeout}s; output so far:\n{''.join(self.output)}")
            if line is None:
                self._lines.put(None)  # stay at end of output for later calls
                pytest.fail(f"the app ended without a {name!r} event; output:\n{''.join(self.output)}")
            self.output.append(line)
            # A line that is not JSON (a traceback) stays in the output, for the failure message.
            with contextlib.suppress(json.JSONDecodeError):
                self._events.append(json.loads(line))

    @property
    def port(self) -> int:
        return int(self.event("listening")["port"])

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(LOOPBACK, self.port, timeout=HTTP_TIMEOUT)

    def get(self, path: str) -> Answer:
        """One request on a connection of its own."""
        connection = self.connect()
        try:
            return ask(connection, path)
        finally:
            connection.close()

    def wait_exit(self, timeout: float = EVENT_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=EVENT_TIMEOUT)
        self._reader.join(timeout=EVENT_TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


Launch = Callable[..., RunningApp]


@pytest.fixture
def launch() -> Iterator[Launch]:
    started: list[RunningApp] = []

    def start(**environment: str) -> RunningApp:
        app = RunningApp(**environment)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


def poll_until(check: Callable[[], bool], timeout: float) -> float:
    """Call ``check`` until it holds, pausing between calls; return when it first held, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(POLL_INTERVAL)
    pytest.fail(f"still not so after {timeout}s")


# Settings, tags and readiness as functions: the cases too many or too slow to run through a process.

release_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,60}", fullmatch=True)


@given(release=release_tags, mode=st.sampled_from(FAILURE_MODES))
def test_a_mode_suffix_splits_off_the_tag(release: str, mode: Any) -> None:
    assert demo_app.parse_tag(f"{release}-{mode}") == (release, mode)


@given(tag=release_tags.filter(lambda tag: not any(tag.endswith(f"-{mode}") for mode in FAILURE_MODES)))
def test_a_tag_without_a_mode_suffix_is_normal_and_whole(tag: str) -> None:
    assert demo_app.parse_tag(tag) == (tag, Mode.NORMAL)


@pytest.mark.parametrize("tag", ["crash", "fail-db", "v1-CRASH", "v1_crash", "v1-crash.2", "v1-failsmoke"])
def test_only_an_exact_suffix_after_a_release_names_a_mode(tag: str) -> None:
    assert demo_app.parse_tag(tag) == (tag, Mode.NORMAL)


@given(tag=release_tags, override=st.none() | st.sampled_from(list(Mode)))
def test_the_version_is_the_tag_unchanged_whatever_the_mode(tag: str, override: Any) -> None:
    environ = {"DEMO_APP_VERSION": tag} | ({} if override is None else {"DEMO_APP_MODE": str(override)})
    settings = demo_app.Settings.from_environment(environ)
    assert settings.version == tag == settings.identity()["version"]
    assert settings.mode == (demo_app.parse_tag(tag)[1] if override is None else override)


def test_defaults() -> None:
    settings = demo_app.Settings.from_environment({})
    assert (settings.version, settings.release, settings.mode, settings.pod) == ("dev", "dev", Mode.NORMAL, None)
    assert (settings.port, settings.start_seconds, settings.crash_seconds, settings.drain_seconds) == (8080, 10, 1, 2)


@pytest.mark.parametrize(
    ("environ", "pod"),
    [({"POD_NAME": "a", "HOSTNAME": "b"}, "a"), ({"HOSTNAME": "b"}, "b"), ({"POD_NAME": "", "HOSTNAME": ""}, None)],
)
def test_the_pod_name_is_POD_NAME_then_HOSTNAME(environ: dict[str, str], pod: str | None) -> None:
    assert demo_app.Settings.from_environment(environ).pod == pod


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("DEMO_APP_MODE", "explode"),
        ("DEMO_APP_MODE", "Crash"),
        ("DEMO_APP_DRAIN_SECONDS", "-1"),
        ("DEMO_APP_START_SECONDS", "nan"),
        ("DEMO_APP_CRASH_SECONDS", "inf"),
        ("DEMO_APP_DRAIN_SECONDS", "soon"),
    ],
)
def test_a_bad_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(demo_app.ConfigError, match=name):
        demo_app.Settings.from_environment({name: value})


@given(
    start_seconds=st.floats(0, 1000, allow_nan=False),
    elapsed=st.floats(0, 2000, allow_nan=False),
    mode=st.sampled_from(list(Mode)),
)
def test_readiness_by_mode_and_time(start_seconds: float, elapsed: float, mode: Any) -> None:
    settings = demo_app.Settings.from_environment({"DEMO_APP_MODE": str(mode)})
    # Started at 0: no rounding from adding a start time, so the flip is exactly at start_seconds.
    app = demo_app.DemoApp(replace(settings, start_seconds=start_seconds), started_at=0.0)
    ready, _ = app.readiness(elapsed)
    unready_modes = {Mode.NEVER_READY, Mode.CRASH}
    assert ready == (mode not in unready_modes and (mode is not Mode.SLOW_START or elapsed >= start_seconds))
    app.draining.set()
    assert app.readiness(elapsed) == (False, "draining")


def test_the_readme_and_the_docstring_list_every_mode() -> None:
    readme = (APP_DIR / "README.md").read_text()
    for mode in Mode:
        assert f"| `{mode}` |" in readme
        assert f"``{mode}``" in (demo_app.__doc__ or "")


def test_the_dockerfile_bakes_the_version_and_runs_unprivileged_on_the_default_port() -> None:
    instructions = [line.split(maxsplit=1) for line in (APP_DIR / "Dockerfile").read_text().splitlines()]
    by_name: dict[str, list[str]] = {}
    for name, *argument in (parts for parts in instructions if parts and not parts[0].startswith("#")):
        by_name.setdefault(name, []).extend(argument)
    # The base is an argument whose default is the upstream image pinned by digest (images/build.py may pass another).
    base = next(argument for argument in by_name["ARG"] if argument.startswith("BASE="))
    assert re.fullmatch(r"BASE=docker\.io/library/python:3\.11-slim@sha256:[0-9a-f]{64}", base), base
    assert by_name["FROM"] == ["${BASE}"]
    assert "VERSION=dev" in by_name["ARG"]
    assert "DEMO_APP_VERSION=$VERSION" in by_name["ENV"][0].split()
    assert by_name["USER"][0].split(":")[0] not in {"0", "root"}
    assert by_name["EXPOSE"] == [str(demo_app.DEFAULT_PORT)]
    assert by_name["COPY"][0].split()[0] == "demo_app.py"


# The real program.


def test_identity_endpoints_report_the_tag_release_mode_and_pod(launch: Launch) -> None:
    app = launch(DEMO_APP_VERSION="v3-fail-db", POD_NAME="user-service-green-0")
    assert app.event("listening")["host"] == "0.0.0.0"
    for path in ("/", "/version"):
        answer = app.get(path)
        assert answer.status == 200
        assert answer.headers[demo_app.VERSION_HEADER] == "v3-fail-db"
        assert answer.body == {
            "service": "demo-app",
            "version": "v3-fail-db",
            "release": "v3",
            "mode": "fail-db",
            "pod": "user-service-green-0",
        }


def test_one_kept_alive_connection_serves_every_method_and_each_answer_names_the_version(launch: Launch) -> None:
    app = launch(DEMO_APP_VERSION="v1")
    connection = app.connect()
    try:
        first = ask(connection, "/version")
        kept = connection.sock
        answers = [
            ask(connection, "/api/users/health", "POST", b'{"a body": "the app reads past"}'),
            ask(connection, "/no/such/endpoint"),
            ask(connection, "/health", "HEAD"),
            ask(connection, "/api/health/db", "DELETE"),
        ]
        assert connection.sock is kept, "the app closed a keep-alive connection"
    finally:
        connection.close()
    assert [answer.status for answer in [first, *answers]] == [200, 200, 404, 200, 200]
    assert answers[2].body is None  # HEAD
    for answer in [first, *answers]:
        assert answer.headers[demo_app.VERSION_HEADER] == "v1"
        assert answer.headers.get("Connection") != "close"


def test_the_port_comes_from_PORT(launch: Launch) -> None:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    app = launch(PORT=str(port))
    assert app.port == port
    assert app.get("/health").status == 200


@pytest.mark.parametrize(
    ("environment", "health", "users", "db"),
    [
        ({"DEMO_APP_VERSION": "v1"}, 200, 200, 200),
        ({"DEMO_APP_VERSION": "v2-never-ready"}, 503, 200, 200),
        ({"DEMO_APP_VERSION": "v3-fail-smoke"}, 200, 500, 500),
        ({"DEMO_APP_VERSION": "v4-fail-db"}, 200, 200, 500),
        ({"DEMO_APP_VERSION": "v5-fail-smoke", "DEMO_APP_MODE": "normal"}, 200, 200, 200),
        ({"DEMO_APP_VERSION": "v6", "DEMO_APP_MODE": "fail-db"}, 200, 200, 500),
    ],
)
def test_each_mode_answers_health_and_smoke_endpoints(
    launch: Launch, environment: dict[str, str], health: int, users: int, db: int
) -> None:
    app = launch(**environment)
    answers = [app.get(path) for path in ("/health", "/api/users/health", "/api/health/db", "/version")]
    assert [answer.status for answer in answers] == [health, users, db, 200]
    assert {answer.headers[demo_app.VERSION_HEADER] for answer in answers} == {environment["DEMO_APP_VERSION"]}


def test_slow_start_turns_ready_after_its_start_seconds(launch: Launch) -> None:
    start_seconds = 0.8
    app = launch(DEMO_APP_VERSION="v7-slow-start", DEMO_APP_START_SECONDS=str(start_seconds))
    first = app.get("/health")
    assert (first.status, first.body) == (503, {"status": "starting"})
    assert app.get("/api/users/health").status == 200

    ready_at = poll_until(lambda: app.get("/health").status == 200, timeout=start_seconds + EVENT_TIMEOUT)

    # The app started after it was spawned, so it cannot have turned ready sooner than this.
    assert ready_at - app.started >= start_seconds
    assert ready_at - app.started < start_seconds + 3
    assert app.event("ready")["after_seconds"] >= start_seconds


def test_crash_exits_with_code_1_shortly_after_start_without_turning_ready(launch: Launch) -> None:
    crash_seconds = 0.5
    app = launch(DEMO_APP_VERSION="v8-crash", DEMO_APP_CRASH_SECONDS=str(crash_seconds))
    app.event("listening")
    assert app.get("/health").status == 503

    assert app.wait_exit() == 1
    assert time.monotonic() - app.started >= crash_seconds
    assert app.event("crashing")["exit_code"] == 1
    assert not any(line for line in app.output if '"ready"' in line)


def test_sigterm_drains_until_its_deadline_then_closes_kept_alive_connections_and_exits_0(launch: Launch) -> None:
    drain_seconds = 1.0
    app = launch(DEMO_APP_VERSION="v9", DEMO_APP_DRAIN_SECONDS=str(drain_seconds))
    kept_alive = app.connect()
    assert ask(kept_alive, "/version").status == 200
    kept_socket = kept_alive.sock
    assert kept_socket is not None

    signalled = time.monotonic()
    app.process.send_signal(signal.SIGTERM)
    assert app.event("draining")["drain_seconds"] == drain_seconds

    # Out of rotation at once, yet still answering, on new connections and on the kept-alive one.
    health = app.get("/health")
    assert (health.status, health.body) == (503, {"status": "draining"})
    assert app.get("/api/health/db").status == 200
    during_drain = ask(kept_alive, "/api/users/health")
    assert during_drain.status == 200 and during_drain.headers.get("Connection") != "close"
    assert kept_alive.sock is kept_socket

    # New requests are answered until the deadline, counted from the signal, and no longer after it.
    def refused() -> bool:
        try:
            return app.get("/version").status != 200
        except (OSError, http.client.HTTPException):
            return True

    refused_at = poll_until(refused, timeout=drain_seconds + EVENT_TIMEOUT)
    assert refused_at - signalled >= drain_seconds

    # The idle kept-alive connection is closed by the app: end of stream, not a timeout.
    kept_socket.settimeout(HTTP_TIMEOUT)
    assert kept_socket.recv(1) == b""
    kept_alive.close()

    assert app.wait_exit() == 0
    # It exits soon after the drain deadline, not at some later timeout of its own; generous, for a loaded machine.
    assert time.monotonic() - signalled < drain_seconds + 15
    stopped = app.event("stopped")
    assert stopped["closed_idle_connections"] >= 1 and stopped["still_open_connections"] == 0


def test_a_second_signal_cuts_the_drain_short(launch: Launch) -> None:
    app = launch(DEMO_APP_VERSION="v10", DEMO_APP_DRAIN_SECONDS="60")
    app.event("ready")
    app.process.send_signal(signal.SIGTERM)
    app.event("draining")
    app.process.send_signal(signal.SIGINT)

    assert app.wait_exit(timeout=EVENT_TIMEOUT) == 0
    assert app.event("drain_cut_short")["signal"] == "SIGINT"


def test_never_ready_still_drains_and_exits_0(launch: Launch) -> None:
    app = launch(DEMO_APP_VERSION="v11-never-ready", DEMO_APP_DRAIN_SECONDS="0")
    app.event("listening")
    app.process.send_signal(signal.SIGTERM)
    assert app.wait_exit() == 0
    assert app.event("stopped")["exit_code"] == 0


def test_a_bad_setting_stops_the_app_with_exit_code_2(launch: Launch) -> None:
    app = launch(DEMO_APP_MODE="explode")
    assert app.wait_exit() == 2
    assert "DEMO_APP_MODE" in app.event("config_error")["error"]
