"""How :class:`steps.kube.Kube` sends one HTTP request to the API server: in a Pod, or through a kubeconfig.

A step in a Pod needs three things to reach the API server: its address from the service-link variables, the
cluster's CA and the ServiceAccount token, both mounted at :data:`SERVICE_ACCOUNT_DIR`. :class:`InClusterTransport`
uses just those and urllib3. The ``kubernetes`` package would do the same, but importing it loads every generated
model class and every kubeconfig auth plugin: about half of a step's start-up, paid again by each of the release
Pod's steps, which all load at once on the same node. Everything else (a kubeconfig with its contexts and auth
plugins, impersonation in tests) goes through :class:`ApiClientTransport`, around the ``kubernetes`` package's
``ApiClient``, which is imported only then.

Both hand back urllib3's own response, not yet read, so :class:`~steps.kube.Kube` reads, streams and retries the same
way whichever sent it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import urllib3

if TYPE_CHECKING:
    from kubernetes import client

#: Where the kubelet mounts the Pod's ServiceAccount token, the cluster's CA and the namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class TransportError(Exception):
    """The request did not get an answer: no connection, a TLS failure, a timeout. Worth retrying."""


@runtime_checkable
class Transport(Protocol):
    """Sends one request; every answer, whatever its status, comes back as an unread urllib3 response."""

    #: ``https://host:port`` of the API server, without a trailing slash.
    host: str

    def send(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float | None
    ) -> urllib3.BaseHTTPResponse:
        """Send ``body`` (JSON-encoded unless already bytes) with ``headers`` and the credentials."""


def encode_body(body: Any) -> bytes | None:
    """The request body as sent: bytes as they are, anything else as JSON, as the ``kubernetes`` client does."""
    if body is None or isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


class InClusterTransport:
    """A Pod's own ServiceAccount, as the kubelet mounts it; the token is read again for every request.

    Kubernetes rotates a projected token well before it expires and rewrites the file, so reading it each time (a
    few microseconds) is always current without a refresh timer.
    """

    def __init__(self, host: str, ca_file: Path, token_file: Path) -> None:
        self.host = host
        self.token_file = token_file
        # urllib3's own Retry would retry 429/503 behind Kube's back and outlive its deadline: Kube alone retries.
        self._pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(ca_file), retries=False)

    @classmethod
    def from_environment(cls, directory: Path = SERVICE_ACCOUNT_DIR) -> InClusterTransport | None:
        """The transport a Pod's service-link variables and mounted ServiceAccount give, or None outside a Pod."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
        token, ca = directory / "token", directory / "ca.crt"
        if not (host and port and token.is_file() and ca.is_file()):
            return None
        if ":" in host:  # an IPv6 address needs its brackets in a URL
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", ca, token)

    def send(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float | None
    ) -> urllib3.BaseHTTPResponse:
        """One request with the current token."""
        try:
            token = self.token_file.read_text().strip()
        except OSError as error:
            raise TransportError(f"cannot read the ServiceAccount token {self.token_file}: {error}") from None
        try:
            return self._pool.request(
                method,
                url,
                body=encode_body(body),
                headers={**headers, "Authorization": f"Bearer {token}"},
                timeout=urllib3.Timeout(total=timeout) if timeout else None,
                preload_content=False,
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransportError(str(error)) from None


class ApiClientTransport:
    """A ``kubernetes`` ``ApiClient``: a kubeconfig's credentials and auth plugins, or a test's impersonation."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.host = str(api.configuration.host)
        # The same reason as InClusterTransport's retries=False: Kube is the only place that retries.
        pool = api.rest_client.pool_manager
        pool.connection_pool_kw["retries"] = False
        pool.clear()

    def send(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float | None
    ) -> urllib3.BaseHTTPResponse:
        """One request through the client, which adds its default headers and refreshes its credentials."""
        from kubernetes.client import ApiException

        sent = {**self.api.default_headers, **headers}
        path = url[len(self.host) :].split("?", 1)[0]
        self.api.update_params_for_auth(sent, [], ["BearerToken"], path, method, body)
        try:
            answer = self.api.call_api(method, url, header_params=sent, body=body, _request_timeout=timeout)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise TransportError(str(error)) from None
        response: urllib3.BaseHTTPResponse = answer.response
        return response


__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ApiClientTransport",
    "InClusterTransport",
    "Transport",
    "TransportError",
    "encode_body",
]
