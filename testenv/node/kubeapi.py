"""The node agent's API access: JSON over HTTPS with the kubeconfig's credentials, and watches.

The agent needs a handful of verbs on a few kinds (Nodes, Leases, Pods and their status,
Secrets, ConfigMaps, Services, TokenRequests) and long-running watches it can stop from another
thread, so a small typed client over httpx fits better than the generated one. See
https://kubernetes.io/docs/reference/using-api/api-concepts/ for the watch protocol.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

JsonObj = dict[str, Any]
# Short windows so a stopping agent is never stuck for long inside a quiet watch.
WATCH_WINDOW_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """A non-2xx answer, with the server's Status reason and message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.reason = ""
        self.message = body.strip()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            self.reason = str(parsed.get("reason", ""))
            self.message = str(parsed.get("message", self.message))
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone); list again."""


def _material(user: Mapping[str, Any], cluster: Mapping[str, Any], key: str, directory: Path) -> str | None:
    """A credential file path for kubeconfig field ``key`` (``*-data`` fields written to ``directory``)."""
    source = user if key != "certificate-authority" else cluster
    if source.get(f"{key}-data"):
        path = directory / key
        path.write_bytes(base64.b64decode(source[f"{key}-data"]))
        path.chmod(0o600)
        return str(path)
    value = source.get(key)
    return str(value) if value else None


class KubeApi:
    """Admin access to one API server, configured from a kubeconfig's current context."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next(
            (u["user"] for u in config.get("users", []) if u["name"] == context.get("user")), {}
        )
        self.server: str = cluster["server"].rstrip("/")
        # The SSL context reads the decoded files at once, so they are removed right away: an agent stopped by a
        # signal, which never reaches close(), leaves no key material behind.
        with tempfile.TemporaryDirectory(prefix="bluegreen-node-creds-") as directory:
            creds = Path(directory)
            ca = _material(user, cluster, "certificate-authority", creds)
            self.ssl_context = ssl.create_default_context(cafile=ca)
            cert = _material(user, cluster, "client-certificate", creds)
            key = _material(user, cluster, "client-key", creds)
            if cert and key:
                self.ssl_context.load_cert_chain(cert, key)
            self.ca_pem = Path(ca).read_bytes() if ca else b""
        self._headers = {"Accept": "application/json"}
        if user.get("token"):
            self._headers["Authorization"] = f"Bearer {user['token']}"
        self._client = httpx.Client(
            base_url=self.server, verify=self.ssl_context, headers=self._headers, timeout=REQUEST_TIMEOUT_SECONDS
        )

    def close(self) -> None:
        """Close connections."""
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str | int] | None = None,
        content_type: str = "application/json",
    ) -> JsonObj:
        """One call; returns the decoded JSON answer or raises :class:`ApiError`."""
        headers = {"Content-Type": content_type} if body is not None else {}
        response = self._client.request(
            method,
            path,
            content=json.dumps(body).encode() if body is not None else None,
            params=dict(params or {}),
            headers=headers,
        )
        if response.status_code >= 300:
            raise ApiError(method, path, response.status_code, response.text)
        result: JsonObj = response.json() if response.content else {}
        return result

    def get(self, path: str, **params: str | int) -> JsonObj:
        """GET ``path``."""
        return self.request("GET", path, params=params)

    def get_or_none(self, path: str) -> JsonObj | None:
        """GET ``path``, or None when it does not exist."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: JsonObj) -> JsonObj:
        """POST ``body`` to collection ``path``."""
        return self.request("POST", path, body)

    def merge_patch(self, path: str, patch: JsonObj) -> JsonObj:
        """JSON merge patch (RFC 7386): lists in ``patch`` replace the stored ones whole."""
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, body: JsonObj | None = None) -> JsonObj:
        """DELETE ``path`` with optional DeleteOptions."""
        return self.request("DELETE", path, body)

    def watch(
        self, path: str, resource_version: str, stop: threading.Event, **params: str | int
    ) -> Iterator[tuple[str, JsonObj]]:
        """Yield ``(type, object)`` events from ``resource_version`` until ``stop`` is set.

        Each request asks the server to end the watch after a window, so ``stop`` is noticed
        within it; BOOKMARK events move the resume point without being yielded.
        """
        version = resource_version
        while not stop.is_set():
            query: dict[str, str | int] = {
                **params,
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": WATCH_WINDOW_SECONDS,
            }
            timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, read=WATCH_WINDOW_SECONDS + 15)
            with self._client.stream("GET", path, params=query, timeout=timeout) as response:
                if response.status_code == 410:
                    raise WatchExpired(path)
                if response.status_code >= 300:
                    raise ApiError("WATCH", path, response.status_code, response.read().decode(errors="replace"))
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj: JsonObj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpired(path)
                        raise ApiError("WATCH", path, int(obj.get("code", 500)), json.dumps(obj))
                    version = str(obj.get("metadata", {}).get("resourceVersion", version))
                    if event.get("type") != "BOOKMARK":
                        yield str(event["type"]), obj
