"""Real HTTP servers on 127.0.0.1 for the step tests, so the steps' HTTP code runs unmocked, end to end.

Each server listens on an ephemeral loopback port in a thread of its own and is used as a context manager from a
fixture in the test module. Replies are scripted per server (a sequence, then a reply that repeats), every request
is recorded, and a reply may be delayed; a delayed reply wakes up when the server stops, so a test that gave up on
a slow reply does not wait for it at teardown.

:class:`SkippingClock` lives here too: it is the time the step code sees while it talks to these servers.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What a server answers to one request."""

    status: int = 200
    body: str | bytes = b""
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"
    #: Hold the reply until this many requests wait together: proof of concurrency that no clock can fake. A barrier
    #: that breaks (its timeout) answers 503.
    meet: threading.Barrier | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, **kwargs: Any) -> Reply:
        """A reply whose body is ``payload`` as JSON."""
        return cls(status, json.dumps(payload), content_type="application/json", **kwargs)


@dataclass(frozen=True)
class Request:
    """One request a server received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query."""
        return urlsplit(self.target).path

    def json(self) -> Any:
        """The body, decoded as JSON."""
        return json.loads(self.body)


class LocalServer:
    """A threaded HTTP(S) server on an ephemeral loopback port; subclasses decide each reply."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ssl_context = ssl_context
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval: shutdown() waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def reply(self, request: Request) -> Reply:
        raise NotImplementedError

    def received(self, path: str | None = None) -> list[Request]:
        """Requests so far, optionally only those to ``path``."""
        with self._lock:
            return [request for request in self.requests if path is None or request.path == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(handler.command, handler.path, dict(handler.headers.items()), handler.rfile.read(length))
        with self._lock:
            self.requests.append(request)
            answer = self.reply(request)
        if answer.delay and self._stopping.wait(answer.delay):
            return
        if answer.meet is not None:
            try:
                answer.meet.wait()
            except threading.BrokenBarrierError:
                answer = Reply(503, "the other requests never came while this one waited")
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up first (its timeout), which is what some tests are about

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                server._respond(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output to what the tests say

        return Handler


class _Script:
    """Replies in order, then ``then`` for every further request."""

    def __init__(self, replies: tuple[Reply, ...], then: Reply) -> None:
        self._replies = list(replies)
        self._then = then

    def next(self) -> Reply:
        return self._replies.pop(0) if self._replies else self._then


class AppServer(LocalServer):
    """The service under test: per path, a scripted sequence of replies; unknown paths answer 404."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self._routes: dict[str, _Script] = {}

    def route(self, path: str, *replies: Reply | int, then: Reply | int | None = None) -> None:
        """Answer ``path`` with ``replies`` in order (an int is a bare status), then ``then`` (default: the last)."""
        script = tuple(Reply(item) if isinstance(item, int) else item for item in replies) or (Reply(),)
        final = script[-1] if then is None else Reply(then) if isinstance(then, int) else then
        with self._lock:
            self._routes[path] = _Script(script, final)

    def reply(self, request: Request) -> Reply:
        script = self._routes.get(request.path)
        return script.next() if script is not None else Reply(404, f"no route for {request.path}")


def vector(*values: float | str, metric: str = "up") -> dict[str, Any]:
    """An instant-vector answer: one series per value, told apart by an ``instance`` label."""
    result = [
        {"metric": {"__name__": metric, "instance": f"pod-{index}"}, "value": [1_700_000_000.0, str(value)]}
        for index, value in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def scalar(value: float | str) -> dict[str, Any]:
    """A scalar answer."""
    return {"status": "success", "data": {"resultType": "scalar", "result": [1_700_000_000.0, str(value)]}}


def prometheus_error(error_type: str, message: str) -> dict[str, Any]:
    """An error answer, as Prometheus sends with 400 (bad_data), 422 (execution) or 503 (timeout)."""
    return {"status": "error", "errorType": error_type, "error": message}


class FakePrometheus(LocalServer):
    """Prometheus' instant-query API: per query, a scripted sequence of answers, the last one repeating."""

    def __init__(self) -> None:
        super().__init__()
        self._answers: dict[str, _Script] = {}

    def answer(self, query: str, *answers: dict[str, Any] | Reply) -> None:
        """Answer ``query`` with ``answers`` in order (a dict is a 200 JSON body), then the last one again."""
        script = tuple(Reply.json(item) if isinstance(item, dict) else item for item in answers)
        with self._lock:
            self._answers[query] = _Script(script, script[-1])

    def queries(self) -> list[str]:
        """The query of every request so far, in order."""
        return [parse_qs(urlsplit(request.target).query).get("query", [""])[0] for request in self.received()]

    def reply(self, request: Request) -> Reply:
        if request.path != "/api/v1/query":
            return Reply(404, "404 page not found")
        query = parse_qs(urlsplit(request.target).query).get("query", [""])[0]
        script = self._answers.get(query)
        if script is None:
            return Reply.json(prometheus_error("bad_data", f"the fake has no answer for {query!r}"), 400)
        return script.next()


class RecordingWebhook(LocalServer):
    """A receiver that records every request and answers a scripted sequence, then 200 ``ok`` for ever."""

    def __init__(self) -> None:
        super().__init__()
        self._script = _Script((), Reply(200, "ok"))

    def script(self, *replies: Reply | int) -> None:
        """Answer the next requests with ``replies`` (an int is a bare status), then 200 ``ok``."""
        with self._lock:
            self._script = _Script(tuple(Reply(item) if isinstance(item, int) else item for item in replies), Reply())

    def bodies(self) -> list[Any]:
        """Every request body so far, decoded as JSON."""
        return [request.json() for request in self.received()]

    def reply(self, request: Request) -> Reply:
        return self._script.next()


def unused_port() -> int:
    """A loopback port nothing listens on (just released by the OS), for connection-refused cases."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(ip: str = "127.0.0.1", common_name: str = "bluegreen-test") -> tuple[bytes, bytes]:
    """A throwaway self-signed certificate for ``ip`` and its key, both PEM; only a client told to trust it will."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context serving ``cert_pem`` with ``key_pem``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def self_signed_server_context() -> ssl.SSLContext:
    """A TLS server context with a throwaway self-signed certificate for 127.0.0.1, which no client trusts."""
    return server_context(*self_signed_certificate())


class SkippingClock:
    """Real monotonic time, except that ``sleep`` jumps the clock forward instead of blocking.

    Step code schedules with it (periods, initial delays, backoff) while its requests to the local servers take
    real time: the waits are skipped, but latencies and timeouts stay real, so a test is fast and still honest.
    Every requested pause is kept in ``sleeps`` for tests about the schedule itself.
    """

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._skipped = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + self._skipped

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._skipped += max(seconds, 0.0)


__all__ = [
    "AppServer",
    "FakePrometheus",
    "LocalServer",
    "RecordingWebhook",
    "Reply",
    "Request",
    "SkippingClock",
    "prometheus_error",
    "scalar",
    "self_signed_certificate",
    "self_signed_server_context",
    "server_context",
    "unused_port",
    "vector",
]
