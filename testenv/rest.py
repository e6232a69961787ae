"""Raw REST calls through a ``kubernetes.client.ApiClient``.

The generated typed API cannot express what the tests need most: server-side apply
(``application/apply-patch+yaml``), status-subresource merge patches of arbitrary kinds, watches
that can be interrupted from another thread, and several values of one request header (for
``Impersonate-Group``). Going through the ApiClient's own serializer and connection pool keeps
its TLS, token and proxy handling, so the same code works for the local control plane and for
an existing cluster.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client

from steps.kube import apply_patch

JsonObj = dict[str, Any]


class KubeApiError(Exception):
    """A non-2xx answer, carrying the server's own Status message."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = ""
        self.message = body.decode("utf-8", "replace").strip()
        self.details: JsonObj = {}
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            self.reason = str(parsed.get("reason", ""))
            self.message = str(parsed.get("message", self.message))
            self.details = parsed.get("details") or {}
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class ImpersonatingApiClient(client.ApiClient):
    """An ApiClient that adds impersonation headers to every request.

    The user goes into the default headers like any other; groups need one header line each,
    which a plain ``dict`` of headers cannot hold, so they are added as a multi-valued
    ``HTTPHeaderDict`` just before the request leaves.
    """

    def __init__(self, configuration: client.Configuration, user: str, groups: Sequence[str]) -> None:
        super().__init__(configuration)
        self.default_headers["Impersonate-User"] = user
        self.impersonate_groups = list(groups)

    def call_api(  # noqa: D102
        self,
        method: str,
        url: str,
        header_params: Mapping[str, str] | None = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        headers = urllib3.HTTPHeaderDict(dict(header_params or {}))
        for group in self.impersonate_groups:
            headers.add("Impersonate-Group", group)
        return super().call_api(
            method, url, header_params=headers, body=body, post_params=post_params, _request_timeout=_request_timeout
        )

    @classmethod
    def as_service_account(
        cls, configuration: client.Configuration, namespace: str, service_account: str
    ) -> ImpersonatingApiClient:
        """A client acting as ``system:serviceaccount:<namespace>:<service_account>``.

        With the groups the API server gives a ServiceAccount's token, so RBAC decides exactly as it would for a pod.
        """
        return cls(
            configuration,
            user=f"system:serviceaccount:{namespace}:{service_account}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        )


def _send(
    api: client.ApiClient,
    method: str,
    path: str,
    query: Mapping[str, str | int | bool] | None,
    body: Any,
    content_type: str | None,
    timeout: float | tuple[float, float] | None,
) -> Any:
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    if body is not None and content_type and "json" not in content_type:
        # The REST layer only serializes bodies it recognises as JSON; YAML apply patches are sent
        # as pre-encoded JSON, which is valid YAML.
        body = apply_patch(body)
    params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
    _method, url, hdrs, ser_body, _post = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=params,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    return api.call_api(_method, url, header_params=hdrs, body=ser_body, _request_timeout=timeout)


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, str | int | bool] | None = None,
    body: Any = None,
    content_type: str | None = None,
    timeout: float = 60.0,
) -> JsonObj:
    """Send one request and return the decoded JSON answer; raise :class:`KubeApiError` otherwise."""
    if body is not None and content_type is None:
        content_type = "application/json"
    resp = _send(api, method, path, query, body, content_type, timeout)
    data = resp.read()
    if not 200 <= resp.status <= 299:
        raise KubeApiError(method, path, resp.status, data)
    decoded = json.loads(data) if data else {}
    return decoded if isinstance(decoded, dict) else {"items": decoded}


def list_items(
    api: client.ApiClient, path: str, *, query: Mapping[str, str | int | bool] | None = None
) -> list[JsonObj]:
    """GET a collection (``.../pods``, with a label or field selector in ``query``) and return its items."""
    return list(request(api, "GET", path, query=query)["items"])


def request_text(
    api: client.ApiClient, path: str, *, query: Mapping[str, str | int | bool] | None = None, timeout: float = 60.0
) -> str:
    """GET a plain-text answer (a container's log, say); raise :class:`KubeApiError` otherwise."""
    resp = _send(api, "GET", path, query, None, None, timeout)
    data = resp.read()
    if not 200 <= resp.status <= 299:
        raise KubeApiError("GET", path, resp.status, data)
    return bytes(data).decode(errors="replace")


class WatchStream:
    """One watch request whose events can be iterated, and which another thread can cut short."""

    def __init__(self, api: client.ApiClient, path: str, query: Mapping[str, str | int | bool], read_timeout: float):
        merged = dict(query)
        merged["watch"] = True
        resp = _send(api, "GET", path, merged, None, None, (10.0, read_timeout))
        if not 200 <= resp.status <= 299:
            raise KubeApiError("GET", path, resp.status, resp.read())
        self._raw: urllib3.BaseHTTPResponse = resp.response

    def events(self) -> Iterator[JsonObj]:
        """Yield decoded watch events until the server ends the request or :meth:`close` is called."""
        buf = b""
        try:
            for chunk in self._raw.stream(amt=65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            # A closed or shut-down connection surfaces as one of these; either way the watch is over.
            return

    def close(self) -> None:
        """Unblock a reader stuck waiting for the next event, then release the connection."""
        shutdown = getattr(self._raw, "shutdown", None)
        if callable(shutdown):
            # Raises if the response already finished or was closed: then nothing is left to unblock.
            with contextlib.suppress(RuntimeError, ValueError):
                shutdown()
        self._raw.close()
