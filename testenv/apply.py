"""Server-side apply of arbitrary objects, with the server's verdict passed through verbatim.

Tests install CRDs and dry-run every rendered manifest through the same path a real deployment
uses: server-side apply. That way schema, CEL and admission errors are the API server's own
words, not a client-side approximation. Resource names are resolved through discovery, which is
re-read when a kind is unknown because CRDs installed moments ago add new resources.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from testenv.rest import JsonObj, KubeApiError, request

DEFAULT_FIELD_MANAGER = "argo-bluegreen-tests"


class ApplyError(Exception):
    """The server refused an object; ``message`` is its own explanation."""

    def __init__(self, obj_ref: str, error: KubeApiError) -> None:
        self.obj_ref = obj_ref
        self.status = error.status
        self.reason = error.reason
        self.message = error.message
        self.api_error = error
        super().__init__(f"{obj_ref}: {error.status} {error.reason}: {error.message}")


@dataclass(frozen=True)
class ApplyResult:
    """One applied object: where it went and what the server returned."""

    ref: str
    path: str
    obj: JsonObj
    error: ApplyError | None = None


@dataclass(frozen=True)
class _Resource:
    plural: str
    namespaced: bool


class Discovery:
    """Caches group/version resource lists; refreshes a group/version on a miss."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._cache: dict[str, dict[str, _Resource]] = {}
        self._lock = threading.Lock()

    def _load(self, api_version: str) -> dict[str, _Resource]:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            doc = request(self._api, "GET", path)
        except KubeApiError as exc:
            if exc.status == 404:
                return {}
            raise
        kinds: dict[str, _Resource] = {}
        for res in doc.get("resources", []):
            if "/" in res["name"]:
                continue  # subresources share the kind of their parent
            kinds[res["kind"]] = _Resource(res["name"], bool(res["namespaced"]))
        return kinds

    def resolve(self, api_version: str, kind: str) -> _Resource:
        """Map apiVersion/kind to its resource, re-reading discovery once if it is unknown."""
        with self._lock:
            known = self._cache.get(api_version)
            if known is None or kind not in known:
                known = self._load(api_version)
                self._cache[api_version] = known
        if kind not in known:
            raise LookupError(f"the server has no kind {kind} in {api_version}")
        return known[kind]


def object_path(discovery: Discovery, obj: Mapping[str, Any], default_namespace: str | None = None) -> str:
    """The REST path of ``obj`` (which must carry apiVersion, kind and metadata.name)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    name = obj["metadata"]["name"]
    res = discovery.resolve(api_version, kind)
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if res.namespaced:
        namespace = obj["metadata"].get("namespace") or default_namespace
        if not namespace:
            raise ValueError(f"{kind}/{name} is namespaced but has no namespace")
        return f"{base}/namespaces/{namespace}/{res.plural}/{name}"
    return f"{base}/{res.plural}/{name}"


def apply_manifest_objects(
    api_client: client.ApiClient,
    objs: Iterable[Mapping[str, Any]],
    dry_run: bool = False,
    field_manager: str = DEFAULT_FIELD_MANAGER,
    *,
    namespace: str | None = None,
    discovery: Discovery | None = None,
    stop_on_error: bool = True,
) -> list[ApplyResult]:
    """Server-side apply each object (force, so the tests own every field they send).

    Args:
        api_client: Client to send the requests with; its identity decides what RBAC allows.
        objs: Complete objects (apiVersion, kind, metadata.name; namespace for namespaced kinds
            unless ``namespace`` supplies it).
        dry_run: Ask the server to validate and admit without persisting (``dryRun=All``).
        field_manager: The SSA field manager recorded on the objects.
        namespace: Namespace for namespaced objects that do not name one.
        discovery: A shared discovery cache, to avoid re-reading it per call.
        stop_on_error: Raise on the first rejection (default); when False, carry on and record
            each rejection in its result's ``error`` instead.

    Returns:
        One result per object, in order, holding the object as the server returned it (or, with
        ``stop_on_error=False``, the error for a rejected one).

    Raises:
        ApplyError: With ``stop_on_error``, for the first object the server rejects, carrying
            the server's own message.
    """
    disc = discovery or Discovery(api_client)
    results: list[ApplyResult] = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        ref = f"{obj.get('kind')}/{meta.get('namespace') or namespace or ''}/{meta.get('name')}".replace("//", "/")
        path = object_path(disc, obj, namespace)
        body = dict(obj)
        if namespace and disc.resolve(obj["apiVersion"], obj["kind"]).namespaced and not meta.get("namespace"):
            body["metadata"] = {**meta, "namespace": namespace}
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": True}
        if dry_run:
            query["dryRun"] = "All"
        try:
            answer = request(
                api_client, "PATCH", path, query=query, body=body, content_type="application/apply-patch+yaml"
            )
        except KubeApiError as exc:
            error = ApplyError(ref, exc)
            if stop_on_error:
                raise error from exc
            results.append(ApplyResult(ref=ref, path=path, obj={}, error=error))
            continue
        results.append(ApplyResult(ref=ref, path=path, obj=answer))
    return results
