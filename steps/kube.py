"""The steps' access to the Kubernetes API: plain JSON objects, real API semantics, bounded retries.

Every call goes through :class:`Kube`, which

* retries 429 and 5xx answers and dropped connections with exponential backoff, within a deadline, and then
  raises :class:`~steps.errors.Transient` so Argo may retry the whole (idempotent) step;
* turns every other API error into one line naming the verb, the object and what to do;
* offers :meth:`Kube.modify`, a read-modify-write loop that re-reads on 409 Conflict instead of overwriting a
  newer version, and :meth:`Kube.apply`, server-side apply, which makes "create or converge" idempotent.

Objects are dicts as the API returns them: the steps compare desired and live state field by field, which the
generated model classes make harder, not easier.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import urllib3

import bluegreen_spec as spec
from bluegreen_contract import ApiResource
from steps.api_transport import ApiClientTransport, Transport, TransportError
from steps.errors import ApiError, BadInput, CheckFailed, Conflict, NotFound, StepError, Transient, Unreachable

if TYPE_CHECKING:
    from kubernetes import client

Obj = dict[str, Any]
FIELD_MANAGER = "argo-bluegreen"
RETRIED_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class ApiRetryPolicy:
    """How long transient API requests are retried before the step gives up with exit code 75."""

    deadline_seconds: float = 30.0
    first_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 2.0
    conflict_attempts: int = 10


#: A person at a terminal (``kubectl bluegreen``, ``bluegreen-step status``) wants "cannot reach the cluster" within
#: seconds, not after a step's 30 s of riding out an API server restart.
INTERACTIVE_RETRY = ApiRetryPolicy(deadline_seconds=8.0)


def _what_to_do(status: int) -> str:
    if status == 403:
        return "the step's ServiceAccount lacks this permission; re-apply manifests/rbac from this release"
    if status == 404:
        return "check the name and namespace"
    if status == 409:
        # Kube.modify re-reads and retries conflicts itself; what reaches here is an object that already exists,
        # or one still changing under it after every fresh read. Exit code 1: the templates do not retry it.
        return "it already exists or another writer keeps changing it; find that writer, then run the pipeline again"
    return "check the API server's health, then run the pipeline again"


class Kube:
    """JSON access to one cluster with retries, conflict handling and clear errors."""

    def __init__(
        self,
        api: Transport | client.ApiClient,
        *,
        retry: ApiRetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``api`` is a Pod's own :class:`~steps.api_transport.InClusterTransport`, or a ``kubernetes`` client.

        ``sleep`` and ``clock`` pace the retries: tests pass a clock that skips ahead, so a retry deadline is checked
        on the schedule itself rather than on how fast a shared machine happens to be.
        """
        #: What was handed in, for callers that also use the ``kubernetes`` package's typed APIs on it.
        self.api = api
        self.transport: Transport = api if isinstance(api, Transport) else ApiClientTransport(api)
        self.retry = retry or ApiRetryPolicy()
        self._sleep = sleep
        self._clock = clock
        #: Number of HTTP requests sent, for the benchmarks' API-call counts.
        self.requests = 0
        #: Writes the server accepted: a refusal after one is no longer "bad input, nothing written".
        self.writes_accepted = 0
        self._snapshots: dict[tuple[str, str], dict[str, Obj]] = {}
        self._read_snapshots = True

    # -- namespace snapshots -------------------------------------------------------------------------------------

    def snapshot(self, resource: ApiResource, namespace: str) -> list[Obj]:
        """List a kind once and serve later ``get`` calls for it from that list.

        A sweep over many services reads each kind with one request instead of one per service. Decisions that
        remove or reroute something must call :meth:`forget` and read the object afresh first.
        """
        self._snapshots.pop((resource.plural, namespace), None)  # a second snapshot is not read from the first
        items = self.list(resource, namespace)
        self._snapshots[(resource.plural, namespace)] = {item["metadata"]["name"]: item for item in items}
        return items

    def forget(self) -> None:
        """Drop every snapshot, so the next reads go to the server."""
        self._snapshots.clear()

    @contextlib.contextmanager
    def fresh_reads(self) -> Iterator[None]:
        """Within the block every read goes to the server; the snapshots stay for the rest of the sweep."""
        previous, self._read_snapshots = self._read_snapshots, False
        try:
            yield
        finally:
            self._read_snapshots = previous

    # -- the one place that talks HTTP -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        what: str,
        timeout: float | None = 30.0,
        resource: ApiResource | None = None,
    ) -> urllib3.BaseHTTPResponse:
        url = self.transport.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        deadline = self._clock() + self.retry.deadline_seconds
        backoff = self.retry.first_backoff_seconds
        while True:
            self.requests += 1
            try:
                response = self.transport.send(method, url, headers, body, timeout)
            except TransportError as error:
                if self._clock() + backoff < deadline:
                    self._sleep(backoff)
                    backoff = min(backoff * 2, self.retry.max_backoff_seconds)
                    continue
                raise Unreachable(
                    f"{what}: API server unreachable ({error}); run the step again",
                    host=self.transport.host,
                    cause=_connection_cause(str(error)),
                ) from None
            status = int(response.status)
            if status < 400:
                if method != "GET":
                    self.writes_accepted += 1
                return response
            answer = _server_status(response.read())
            reason = str(answer.get("message") or response.reason)
            if status == 404 and resource is not None and not (answer.get("details") or {}).get("name"):
                # A missing object's 404 names it in its details; a 404 without a name is the server saying it
                # has no such kind at all (a bare "404 page not found" for an unknown group version).
                raise NotFound(f"{what}: {_unserved(resource)}", status, reason)
            if status in RETRIED_STATUSES:
                wait = backoff
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    wait = max(wait, float(retry_after))  # never sooner than the server asked
                wait *= 1 + random.random() / 4  # spread many clients out, only ever later
                if self._clock() + wait < deadline:
                    self._sleep(wait)
                    backoff = min(backoff * 2, self.retry.max_backoff_seconds)
                    continue
            raise _api_error(what, status, reason, self.writes_accepted)

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> Obj:
        data = self._send(method, path, what=what, **kwargs).read()
        return json.loads(data) if data else {}

    # -- verbs ---------------------------------------------------------------------------------------------------

    def get(self, resource: ApiResource, namespace: str, name: str, subresource: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        snapshot = self._snapshots.get((resource.plural, namespace))
        if snapshot is not None and subresource is None and self._read_snapshots:
            return snapshot.get(name)
        return self._fetch(resource, namespace, name, subresource)

    def _fetch(self, resource: ApiResource, namespace: str, name: str, subresource: str | None = None) -> Obj | None:
        try:
            return self._json(
                "GET",
                resource.path(namespace, name, subresource),
                what=f"get {resource.kind} {namespace}/{name}",
                resource=resource,
            )
        except NotFound:
            return None

    def discover(self, group: str, version: str) -> set[str] | None:
        """The resources the API server serves in ``group/version`` (API discovery); None when it serves none.

        Kubernetes lets every authenticated user read discovery (the ClusterRole ``system:discovery``, bound to
        ``system:authenticated``), so the steps' Role grants nothing for it; a 403 here means the cluster took that
        binding away, which re-applying our Role would not fix.
        """
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            answer = self._json("GET", path, what=f"discover the API {group or 'core'}/{version} (GET {path})")
        except NotFound:
            return None
        except ApiError as error:
            if error.status != 403:
                raise
            raise ApiError(
                f"GET {path}: 403 {error.reason}; this identity may not read API discovery, which Kubernetes grants "
                "every authenticated user through the ClusterRoleBinding system:discovery: restore that binding, or "
                "bind the ClusterRole system:discovery to the identity that runs this (for the steps, their "
                "ServiceAccount); the steps' own Role cannot grant it",
                error.status,
                error.reason,
            ) from None
        return {str(item.get("name")) for item in answer.get("resources") or []}

    def must_get(self, resource: ApiResource, namespace: str, name: str) -> Obj:
        """The object; a missing one is an error naming it."""
        found = self.get(resource, namespace, name)
        if found is None:
            raise _missing(resource, namespace, name)
        return found

    def list(self, resource: ApiResource, namespace: str, label_selector: str | None = None) -> list[Obj]:
        """Every object of a kind in the namespace, optionally filtered by labels; from its snapshot if it has one."""
        snapshot = self._snapshots.get((resource.plural, namespace))
        if snapshot is not None and self._read_snapshots and not label_selector:
            return list(snapshot.values())
        query = {"labelSelector": label_selector} if label_selector else None
        answer = self._json(
            "GET",
            resource.path(namespace),
            query=query,
            what=f"list {resource.kind} in {namespace}",
            resource=resource,
        )
        items: list[Obj] = answer.get("items") or []
        for item in items:
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return items

    def create(self, resource: ApiResource, namespace: str, body: Obj, *, field_manager: str | None = None) -> Obj:
        """Create; 409 AlreadyExists raises :class:`Conflict`. ``field_manager`` names the writer in managedFields."""
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
        return self._json(
            "POST",
            resource.path(namespace),
            query={"fieldManager": field_manager} if field_manager else None,
            body=body,
            what=f"create {resource.kind} {namespace}/{name}",
            resource=resource,
        )

    def post(self, path: str, body: Obj, *, what: str) -> Obj:
        """POST to a path no namespaced resource names, such as a cluster-scoped review."""
        return self._json("POST", path, body=body, what=what)

    def apply(self, resource: ApiResource, namespace: str, body: Obj, subresource: str | None = None) -> Obj:
        """Server-side apply: create or converge to ``body``, owning exactly the fields it names."""
        name = body["metadata"]["name"]
        return self._json(
            "PATCH",
            resource.path(namespace, name, subresource),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=apply_patch(body),  # not the client's json.dumps: see apply_patch
            content_type="application/apply-patch+yaml",
            what=f"apply {resource.kind} {namespace}/{name}",
            resource=resource,
        )

    def merge_patch(
        self, resource: ApiResource, namespace: str, name: str, patch: Obj, subresource: str | None = None
    ) -> Obj:
        """JSON merge patch; include ``metadata.resourceVersion`` to make it conditional."""
        return self._json(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
            what=f"patch {resource.kind} {namespace}/{name}{'/' + subresource if subresource else ''}",
            resource=resource,
        )

    def replace(self, resource: ApiResource, namespace: str, body: Obj, subresource: str | None = None) -> Obj:
        """PUT; the body's resourceVersion makes it fail with :class:`Conflict` if the object moved on."""
        name = body["metadata"]["name"]
        return self._json(
            "PUT",
            resource.path(namespace, name, subresource),
            body=body,
            what=f"update {resource.kind} {namespace}/{name}{'/' + subresource if subresource else ''}",
            resource=resource,
        )

    def delete(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        propagation: str | None = None,
    ) -> bool:
        """Delete; returns False when it was already gone. A resourceVersion precondition guards against races.

        ``propagation`` is the API's ``propagationPolicy`` (``Foreground`` keeps the object until its dependents go).
        """
        body: Obj | None = {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        if propagation:
            body = {**(body or {}), "propagationPolicy": propagation}
        try:
            self._json(
                "DELETE",
                resource.path(namespace, name),
                body=body,
                what=f"delete {resource.kind} {namespace}/{name}",
                resource=resource,
            )
        except NotFound:
            return False
        return True

    def modify(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        mutate: Callable[[Obj], bool],
        subresource: str | None = None,
    ) -> Obj:
        """Read, let ``mutate`` change the object in place, write it back; on 409 read again and retry.

        ``mutate`` returns False when the live object is already as wanted, and nothing is written.
        """
        for _ in range(self.retry.conflict_attempts):
            # Always from the server: a write based on a snapshot would only ever conflict.
            live = self._fetch(resource, namespace, name)
            if live is None:
                raise _missing(resource, namespace, name)
            if not mutate(live):
                return live
            try:
                return self.replace(resource, namespace, live, subresource)
            except Conflict:
                continue
        raise Transient(
            f"update {resource.kind} {namespace}/{name}: still conflicting after "
            f"{self.retry.conflict_attempts} fresh reads; run the step again"
        )

    def watch(
        self,
        resource: ApiResource,
        namespace: str,
        *,
        name: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> Iterator[tuple[str, Obj]]:
        """Stream (type, object) events until the server closes the watch after ``timeout_seconds``."""
        query: dict[str, str] = {
            "watch": "true",
            "timeoutSeconds": str(max(1, timeout_seconds)),
            "allowWatchBookmarks": "false",
        }
        if name:
            query["fieldSelector"] = f"metadata.name={name}"
        if label_selector:
            query["labelSelector"] = label_selector
        if resource_version:
            query["resourceVersion"] = resource_version
        response = self._send(
            "GET",
            resource.path(namespace),
            query=query,
            what=f"watch {resource.kind} in {namespace}",
            timeout=timeout_seconds + 5,
            resource=resource,
        )
        buffer = b""
        try:
            for chunk in response.stream(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield str(event.get("type")), event.get("object") or {}
        except (urllib3.exceptions.HTTPError, OSError):
            return  # the caller re-lists and watches again within its own deadline
        finally:
            response.release_conn()


#: Characters YAML does not allow raw (DEL, the C1 controls, surrogates, the byte-order mark, U+FFFE/U+FFFF).
# U+2028 and U+2029 are printable but YAML reads them as line breaks, which a quoted scalar folds into a space.
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def apply_patch(body: Obj) -> bytes:
    """A server-side apply body: JSON, which is YAML, that the API server's YAML decoder reads back exactly.

    JSON's default escapes turn a character beyond the BMP (an emoji) into a surrogate pair, which YAML refuses, and
    unescaped output would carry control characters YAML refuses too; so everything is written as itself except
    those, which keep their (single, BMP) escapes.
    """
    text = json.dumps(body, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


def _server_status(body: Any) -> Obj:
    """The API server's Status object from an error body; empty when the body is not one (plain text, say)."""
    try:
        answer = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _connection_cause(error: str) -> str:
    """urllib3's reason without its ``HTTPSConnection(host=..., port=...):`` prefix, which the server's URL says."""
    return re.sub(r"^\w*Connection\w*\(host=[^)]*\): ", "", error)


def _unserved(resource: ApiResource) -> str:
    """What to say when the API server has no such kind: which CRDs would define it."""
    served_as = f"{resource.plural}.{resource.group}/{resource.version}" if resource.group else resource.plural
    if resource.group == spec.API_GROUP:
        todo = "install this release's CRDs (manifests/cluster/crds)"
    else:
        # A router's kinds (Istio, the Gateway API) or Argo's: the product that defines them is missing or too old.
        todo = f"install the CRDs that define {resource.group}/{resource.version}, then run the step again"
    return f"404: the API server does not serve {served_as}; {todo}"


def _api_error(what: str, status: int, reason: str, writes_before: int) -> StepError:
    if status == 409:
        return Conflict(f"{what}: {status} {reason}; {_what_to_do(status)}", status, reason)
    if status == 404:
        return NotFound(f"{what}: {status} {reason}; {_what_to_do(status)}", status, reason)
    if status in {400, 422}:
        if writes_before == 0:
            return BadInput(f"{what}: {status} {reason}; nothing was written: fix the field the server names")
        return CheckFailed(
            f"{what}: {status} {reason}; refused after this step had already made {writes_before} write(s), so it "
            "stopped part-way: fix the field the server names, then run the pipeline again (its steps converge)"
        )
    if status in RETRIED_STATUSES:
        return Transient(f"{what}: {status} {reason}; still failing at the retry deadline, run the step again")
    return ApiError(f"{what}: {status} {reason}; {_what_to_do(status)}", status, reason)


def _missing(resource: ApiResource, namespace: str, name: str) -> NotFound:
    return NotFound(
        f"{resource.kind} {namespace}/{name} does not exist; create it or check the service name", 404, "NotFound"
    )


def labels_selector(labels: dict[str, str]) -> str:
    """A label selector string matching all of ``labels``."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


__all__ = ["FIELD_MANAGER", "INTERACTIVE_RETRY", "ApiRetryPolicy", "Kube", "Obj", "apply_patch", "labels_selector"]
