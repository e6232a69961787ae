"""A fault-injecting reverse proxy in front of the test API server.

The steps promise to survive what a busy real cluster does to them: throttling (429 with ``Retry-After``),
failing writes (500/503), optimistic-concurrency conflicts (409) and replies lost after the write happened. A real
kube-apiserver does none of that on demand, so tests put this proxy between the steps and the server: it listens on
plain HTTP on 127.0.0.1, forwards every request unchanged (impersonation headers included, each
``Impersonate-Group`` line kept) to the API server over TLS as the admin, and answers chosen requests with a
Kubernetes ``Status`` of the test's choosing, either instead of forwarding them or after forwarding them (the write
happened, the reply was lost). Watch responses are relayed chunk by chunk as the server sends them, so the steps'
watches behave as they do against the server itself. Every request is logged, so a test can prove that the fault it
injected actually fired.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

import urllib3
from kubernetes import client

from testenv.rest import ImpersonatingApiClient

#: The ``reason`` of a Kubernetes ``Status`` for the codes tests inject (``metav1.StatusReason``).
STATUS_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

# Headers that describe one connection, not the message, and so are never relayed (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_NO_BODY_STATUSES = frozenset({204, 304})
_JOIN_TIMEOUT_SECONDS = 5.0


@dataclass
class FaultRule:
    """One injected fault: the next ``times`` requests that match get ``status``.

    Attributes:
        method: HTTP method to match (case-insensitive), or None for any.
        path_contains: Substring of the request target (path and query) to match.
        status: HTTP status of the injected answer.
        times: How many matching requests get the fault; later ones pass through.
        retry_after: Value of the ``Retry-After`` header on the injected answer, if any.
        after_forward: Forward the request first and replace the server's answer ("the reply was lost").
        hits: How many requests this rule has answered so far.
    """

    method: str | None
    path_contains: str
    status: int
    times: int = 1
    retry_after: str | None = None
    after_forward: bool = False
    hits: int = 0

    @property
    def remaining(self) -> int:
        """Matching requests still to be answered with the fault."""
        return max(0, self.times - self.hits)

    def matches(self, method: str, target: str) -> bool:
        """Whether a request with this method and target is one this rule is aimed at."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains in target


@dataclass(frozen=True)
class LoggedRequest:
    """One request the proxy handled.

    Attributes:
        method: The HTTP method.
        path: The request target as the client sent it: path and query.
        status: The status the client got.
        injected: Whether ``status`` came from a fault rule rather than the API server.
        forwarded: Whether the request reached the API server (also true for ``after_forward`` faults).
        upstream_status: The API server's status when it was asked, else None.
        user: The ``Impersonate-User`` header, if any.
        at: ``time.monotonic()`` when the request arrived.
        rule: The fault rule that answered it, if any.
    """

    method: str
    path: str
    status: int
    injected: bool
    forwarded: bool
    upstream_status: int | None
    user: str | None
    at: float
    rule: FaultRule | None = None


def status_body(status: int, message: str, retry_after: str | None = None) -> bytes:
    """A ``Status`` object as the API server writes it for a failed request."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": STATUS_REASONS.get(status, "Unknown"),
        "code": status,
    }
    if retry_after is not None and retry_after.isdigit():
        body["details"] = {"retryAfterSeconds": int(retry_after)}
    return json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FaultProxy.stop joins the handler threads itself, with a deadline

    def __init__(self, proxy: FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.proxy._handler_failed()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the kubernetes client's connection pool expects
    timeout = 300  # an idle client connection is dropped after this many seconds

    @property
    def proxy(self) -> FaultProxy:
        return cast(_Server, self.server).proxy

    def setup(self) -> None:
        super().setup()
        self.proxy._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.proxy._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is FaultProxy.log

    def _handle(self) -> None:
        arrived = time.monotonic()
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send_plain(400, status_body(400, "fault proxy: malformed request body"))
            return
        self.proxy._serve(self, arrived, body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def _send_plain(self, status: int, body: bytes, extra: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        for key, value in extra:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _relay(self, upstream: urllib3.BaseHTTPResponse) -> bool:
        """Send the API server's answer on, chunk by chunk when it is streamed (watches); False if cut short."""
        self.send_response_only(upstream.status)
        for key, value in upstream.headers.iteritems():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD" or upstream.status in _NO_BODY_STATUSES:
            length = upstream.headers.get("Content-Length", "0") if self.command == "HEAD" else "0"
            self.send_header("Content-Length", length)
            self.end_headers()
            self.wfile.flush()
            upstream.drain_conn()
            return True
        if not cast(Any, upstream).chunked:
            body = upstream.read(decode_content=False)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in cast(Any, upstream).read_chunked(decode_content=False):
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
        except (urllib3.exceptions.HTTPError, OSError):
            # The server (or FaultProxy.stop) cut the stream: end it for the client the same abrupt way.
            self.close_connection = True
            return False
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return True


class FaultProxy:
    """A reverse proxy to the API server that can answer chosen requests with errors.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Clients from
    :meth:`client_configuration`, :meth:`api_client` and :meth:`impersonating_api_client` talk plain HTTP to
    ``127.0.0.1``; the proxy talks TLS to the API server with the credentials of ``upstream``.
    """

    def __init__(self, upstream: client.Configuration, *, read_timeout_seconds: float = 300.0) -> None:
        """Prepare (not start) a proxy to the API server of ``upstream``.

        Args:
            upstream: Configuration of an admin client of the API server: its host, CA and client certificate
                (or bearer token) are used for every forwarded request.
            read_timeout_seconds: Longest wait for the API server's next bytes on a forwarded request.
        """
        self.upstream_host = str(upstream.host).rstrip("/")
        self._timeout = urllib3.Timeout(connect=10.0, read=read_timeout_seconds)
        pool_args: dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED if upstream.verify_ssl else ssl.CERT_NONE,
            "ca_certs": upstream.ssl_ca_cert,
            "cert_file": upstream.cert_file,
            "key_file": upstream.key_file,
            "maxsize": 32,
            "retries": False,
        }
        if upstream.assert_hostname is not None:
            pool_args["assert_hostname"] = upstream.assert_hostname
        if getattr(upstream, "tls_server_name", None):
            pool_args["server_hostname"] = upstream.tls_server_name
        self._pool = urllib3.PoolManager(**pool_args)
        self._auth_headers: dict[str, str] = {}
        settings = cast(dict[str, dict[str, Any]], upstream.auth_settings() or {})
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                self._auth_headers[str(setting["key"])] = str(setting["value"])
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._log: list[LoggedRequest] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._streams: set[urllib3.BaseHTTPResponse] = set()
        self._clients: list[client.ApiClient] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Unexpected exceptions in request handlers (a test should find this empty).
        self.errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on; only valid once started."""
        if self._server is None:
            raise RuntimeError("fault proxy is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the proxy's address for clients."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Listen on an ephemeral loopback port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("fault proxy already started")
        self._stopping = False
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut open connections and streams, join the handler threads and close every client."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.shutdown()
        assert self._thread is not None
        self._thread.join(_JOIN_TIMEOUT_SECONDS)
        for api in self._clients:
            api.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        deadline = time.monotonic() + _JOIN_TIMEOUT_SECONDS
        while True:
            with self._lock:
                connections = dict(self._connections)
                streams = set(self._streams)
            if not connections or time.monotonic() >= deadline:
                break
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.shutdown()
            for sock in connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for thread in connections.values():
                thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        server.server_close()
        self._pool.clear()
        if connections:
            self.errors.append(f"{len(connections)} handler thread(s) still running after stop")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults and the log ------------------------------------------------------------------------------------

    def inject(
        self,
        method: str | None,
        path_contains: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        *,
        after_forward: bool = False,
    ) -> FaultRule:
        """Answer the next ``times`` requests matching ``method`` and ``path_contains`` with ``status``.

        Rules are consulted in the order they were added; the first one with faults left answers.

        Args:
            method: HTTP method to match, or None for any.
            path_contains: Substring of the request target (path and query), e.g. ``"/deploymentrecords/x/status"``.
            status: HTTP status to answer with; the body is a Kubernetes ``Status`` with the matching reason.
            times: How many matching requests get the fault.
            retry_after: ``Retry-After`` header value to send with it (seconds).
            after_forward: Forward the request and let the server act on it, then answer with ``status`` instead
                of the server's reply: "the write happened, the reply was lost".

        Returns:
            The rule; its ``hits`` count how often it fired.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        rule = FaultRule(method, path_contains, status, times, retry_after, after_forward)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every rule; requests pass through again."""
        with self._lock:
            self._rules.clear()

    @property
    def log(self) -> list[LoggedRequest]:
        """Every request handled so far, in the order their answers began (a copy)."""
        with self._lock:
            return list(self._log)

    def injected(self, rule: FaultRule | None = None) -> list[LoggedRequest]:
        """The requests answered by a fault (by ``rule`` only, if given)."""
        return [entry for entry in self.log if entry.injected and (rule is None or entry.rule is rule)]

    # -- clients -----------------------------------------------------------------------------------------------

    def client_configuration(self) -> client.Configuration:
        """A client configuration that sends everything through the proxy (plain HTTP, no credentials)."""
        cfg = client.Configuration()
        cfg.host = self.url
        cfg.proxy = None
        return cfg

    def api_client(self) -> client.ApiClient:
        """An ApiClient through the proxy acting as the admin; closed by :meth:`stop`."""
        api = client.ApiClient(self.client_configuration())
        self._clients.append(api)
        return api

    def impersonating_api_client(self, namespace: str, service_account: str) -> client.ApiClient:
        """An ApiClient through the proxy acting as ``system:serviceaccount:<namespace>:<service_account>``.

        The same identity as ``KubeCluster.impersonating_api_client``; closed by :meth:`stop`.
        """
        api = ImpersonatingApiClient.as_service_account(self.client_configuration(), namespace, service_account)
        self._clients.append(api)
        return api

    # -- called by the handler threads -------------------------------------------------------------------------

    def _register(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def _handler_failed(self) -> None:
        error = sys.exc_info()[1]
        if self._stopping or isinstance(error, ConnectionError | TimeoutError):
            return  # a client went away, or stop() cut the connection
        self.errors.append("".join(traceback.format_exception(error)).strip())

    def _take_rule(self, method: str, target: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining and rule.matches(method, target):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _serve(self, handler: _Handler, arrived: float, body: bytes | None) -> None:
        method, target = handler.command, handler.path
        user = handler.headers.get("Impersonate-User")
        rule = self._take_rule(method, target)

        def record(status: int, *, forwarded: bool, upstream_status: int | None) -> None:
            self._record(
                LoggedRequest(
                    method, target, status, rule is not None, forwarded, upstream_status, user, arrived, rule
                )
            )

        def answer_fault(fault: FaultRule, upstream_status: int | None) -> None:
            message = f"injected {fault.status} {STATUS_REASONS.get(fault.status, '')} for {method} {target}"
            if fault.after_forward:
                message += f" (the server answered {upstream_status}; the reply was lost)"
            extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
            record(fault.status, forwarded=fault.after_forward, upstream_status=upstream_status)
            handler._send_plain(fault.status, status_body(fault.status, message, fault.retry_after), extra)

        if rule is not None and not rule.after_forward:
            answer_fault(rule, None)
            return
        try:
            upstream = self._forward(handler, body)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            record(502, forwarded=False, upstream_status=None)
            handler.close_connection = True
            handler._send_plain(502, status_body(502, f"fault proxy: API server unreachable: {error}"))
            return
        complete = False
        try:
            if rule is not None:
                upstream.read(decode_content=False)  # let the server finish the write, then lose its reply
                complete = True
                answer_fault(rule, upstream.status)
                return
            record(upstream.status, forwarded=True, upstream_status=upstream.status)
            with self._lock:
                self._streams.add(upstream)
            try:
                complete = handler._relay(upstream)
            finally:
                with self._lock:
                    self._streams.discard(upstream)
        finally:
            if not complete:
                upstream.close()  # a half-read answer must not go back into the pool
            upstream.release_conn()

    def _forward(self, handler: _Handler, body: bytes | None) -> urllib3.BaseHTTPResponse:
        headers = urllib3.HTTPHeaderDict()
        for key, value in handler.headers.items():
            if key.lower() not in _HOP_BY_HOP and key.lower() not in {"host", "content-length"}:
                headers.add(key, value)
        for key, value in self._auth_headers.items():
            if key not in headers:
                headers[key] = value
        return self._pool.urlopen(
            handler.command,
            self.upstream_host + handler.path,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            preload_content=False,
            decode_content=False,
            timeout=self._timeout,
        )


__all__ = ["STATUS_REASONS", "FaultProxy", "FaultRule", "LoggedRequest", "status_body"]
