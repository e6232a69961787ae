"""The kubelet's HTTPS endpoint, as far as logs go: ``/containerLogs`` and ``/healthz``.

``kubectl logs``, ``argo logs`` and the Argo UI ask the API server for ``pods/<name>/log``; the API
server forwards that to ``https://<Node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/
containerLogs/<namespace>/<pod>/<container>?...`` with its kubelet client certificate. This module
answers those requests from the node agent's container logs, with the kubelet's semantics
(``pkg/kubelet/server/server.go``, ``getContainerLogs``):

- query: ``follow``, ``previous``, ``timestamps``, ``tailLines`` (and the legacy ``tail``),
  ``limitBytes``, ``sinceSeconds``, ``sinceTime``; undecodable values are 400, invalid ones 422;
- an unknown Pod or container is 404; a container with nothing to show (still waiting, or no
  previous instance) is 400 with the kubelet's message, which ``kubectl`` prints as is;
- the body is streamed in chunks and flushed as records arrive; ``follow`` ends when the
  container has exited and its output has been sent.

Authentication is TLS client certificates signed by the cluster CA; authorisation is a
SubjectAccessReview for ``get nodes/proxy`` on this Node, as the kubelet's webhook authorizer
does for this path. ``/healthz`` answers anyone, like the kubelet's health port.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testenv.node.container_logs import LogOptions, parse_timestamp, stream_log
from testenv.node.kubeapi import ApiError, KubeApi
from testenv.node.lifecycle import LogUnavailable

if TYPE_CHECKING:
    from testenv.node.lifecycle import PodWorker

log = logging.getLogger("testenv.node")

KUBELET_PORT = 10250
AUTHORIZATION_CACHE_SECONDS = 30.0
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class QueryError(Exception):
    """The query cannot be used; ``status`` is 400 (undecodable) or 422 (invalid)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LogQuery:
    """A ``/containerLogs`` query, decoded and validated."""

    previous: bool
    options: LogOptions


def _bool(value: str) -> bool:
    # Go's strconv.ParseBool, which decodes the kubelet's query parameters.
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(value)


def parse_log_query(query: dict[str, list[str]], now_ns: int) -> LogQuery:
    """Decode and validate ``PodLogOptions`` from a query string (each key's last value counts)."""
    values = {key: items[-1] for key, items in query.items() if items}
    if "tail" in values:  # the legacy name; "all" means no limit
        tail = values.pop("tail")
        if tail != "all":
            values["tailLines"] = tail
    try:
        follow = _bool(values.get("follow", "false"))
        previous = _bool(values.get("previous", "false"))
        timestamps = _bool(values.get("timestamps", "false"))
        tail_lines = int(values["tailLines"]) if "tailLines" in values else None
        limit_bytes = int(values["limitBytes"]) if "limitBytes" in values else None
        since_seconds = int(values["sinceSeconds"]) if "sinceSeconds" in values else None
        since_time = parse_timestamp(values["sinceTime"]) if "sinceTime" in values else None
    except ValueError as exc:
        raise QueryError(400, '{"message": "Unable to decode query."}') from exc
    invalid = (
        (tail_lines is not None and tail_lines < 0)
        or (limit_bytes is not None and limit_bytes < 1)
        or (since_seconds is not None and since_seconds < 1)
        or (since_seconds is not None and since_time is not None)
    )
    if invalid:
        raise QueryError(422, '{"message": "Invalid request."}')
    since = now_ns - since_seconds * 1_000_000_000 if since_seconds is not None else since_time
    return LogQuery(
        previous=previous,
        options=LogOptions(
            follow=follow,
            tail_lines=tail_lines,
            limit_bytes=limit_bytes,
            since_unix_ns=since,
            timestamps=timestamps,
        ),
    )


class NodeAuthorizer:
    """Decides whether a client certificate's user may read this Node's logs (nodes/proxy get)."""

    def __init__(self, api: KubeApi, node_name: str) -> None:
        self._api = api
        self._node_name = node_name
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[bool, float]] = {}

    def allowed(self, user: str, groups: tuple[str, ...]) -> bool:
        """The API server's SubjectAccessReview answer, cached for a short while."""
        key = (user, groups)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": list(groups),
                "resourceAttributes": {
                    "verb": "get",
                    "resource": "nodes",
                    "subresource": "proxy",
                    "name": self._node_name,
                },
            },
        }
        answer = self._api.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        allowed = bool((answer.get("status") or {}).get("allowed"))
        with self._lock:
            self._cache[key] = (allowed, time.monotonic() + AUTHORIZATION_CACHE_SECONDS)
        return allowed


def certificate_identity(peer: dict[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) from a verified client certificate: its CN and Os, as the API server reads them."""
    names = [attr for rdn in peer.get("subject", ()) for attr in rdn]
    user = next((value for key, value in names if key == "commonName"), "")
    if not user:
        return None
    groups = tuple(value for key, value in names if key == "organizationName")
    return user, groups


class _Server(http.server.ThreadingHTTPServer):
    """One thread per connection; TLS is negotiated in that thread, not in the accepting one."""

    daemon_threads = True

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext, kubelet: KubeletServer) -> None:
        super().__init__(listener.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.tls = tls
        self.kubelet = kubelet

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls_request = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("kubelet server: TLS handshake failed", extra={"client": str(client_address), "error": str(exc)})
            return
        try:
            super().finish_request(tls_request, client_address)
        finally:
            tls_request.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet server: " + format % args)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
        if url.path == "/healthz":
            self._plain(200, "ok")
            return
        if len(parts) == 5 and parts[1] == "containerLogs":
            identity = self._authorized()
            if identity is not None:
                self._container_logs(parts[2], parts[3], parts[4], urllib.parse.parse_qs(url.query))
            return
        self._plain(404, "404 page not found")

    def _authorized(self) -> tuple[str, tuple[str, ...]] | None:
        connection = self.connection
        peer = connection.getpeercert() if isinstance(connection, ssl.SSLSocket) else None
        identity = certificate_identity(peer or {})
        if identity is None:
            self._plain(401, "Unauthorized")
            return None
        try:
            allowed = self.server.kubelet.authorizer.allowed(*identity)
        except (ApiError, OSError) as exc:
            self._plain(500, f"authorization failed: {exc}")
            return None
        if not allowed:
            user, groups = identity
            self._plain(
                403,
                f"Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[proxy]) groups={list(groups)}",
            )
            return None
        return identity

    def _container_logs(self, namespace: str, pod: str, container: str, query: dict[str, list[str]]) -> None:
        if not namespace or not pod or not container:
            self._plain(400, '{"message": "Missing podNamespace, podID or container name."}')
            return
        try:
            request = parse_log_query(query, time.time_ns())
        except QueryError as exc:
            self._plain(exc.status, str(exc))
            return
        worker: PodWorker | None = self.server.kubelet.find_pod(namespace, pod)
        if worker is None:
            self._plain(404, f"pod {json.dumps(pod)} does not exist")
            return
        try:
            container_log = worker.log_of(container, request.previous)
        except LogUnavailable as exc:
            self._plain(exc.status, str(exc))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            stream_log(container_log, request.options, self._chunk, self._cancelled)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _cancelled(self) -> bool:
        """The agent stops, or the client closed the connection (a log request sends nothing more)."""
        if self.server.kubelet.stopping.is_set():
            return True
        with contextlib.suppress(OSError, ValueError):
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable)
        return True

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class KubeletServer:
    """Serves ``/containerLogs`` and ``/healthz`` over HTTPS on ``listener``.

    Args:
        listener: A bound, listening TCP socket (see :func:`testenv.node.network.listen_in_node`).
        serving_cert: PEM certificate for the Node's address, signed by the cluster CA.
        serving_key: Its private key.
        client_ca_pem: The CA whose client certificates are accepted.
        authorizer: Who may read logs.
        find_pod: The worker running ``(namespace, name)``, or None.
    """

    def __init__(
        self,
        listener: socket.socket,
        serving_cert: Path,
        serving_key: Path,
        client_ca_pem: bytes,
        authorizer: NodeAuthorizer,
        find_pod: Callable[[str, str], PodWorker | None],
    ) -> None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(serving_cert, serving_key)
        tls.load_verify_locations(cadata=client_ca_pem.decode())
        # Optional at the TLS layer so /healthz needs none; /containerLogs answers 401 without one.
        tls.verify_mode = ssl.CERT_OPTIONAL
        self.authorizer = authorizer
        self.find_pod = find_pod
        self.stopping = threading.Event()
        self.port: int = listener.getsockname()[1]
        self._server = _Server(listener, tls, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubelet-server", daemon=True)

    def start(self) -> None:
        """Begin accepting connections."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end followers, close the socket."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
