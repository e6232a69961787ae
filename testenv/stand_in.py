"""A stand-in for the Deployment and ReplicaSet controllers and the kubelet.

The test control plane runs only etcd and kube-apiserver: kube-controller-manager (whose
deployment and replicaset controllers fill in Deployment status and create Pods) and the kubelet
(which runs Pods and reports them Ready) are NOT running. Product steps wait on exactly those
signals (Deployment conditions, ready Pods, waiting reasons), so this module fakes them: it
watches Deployments in the namespaces it manages and, through the ``deployments/status`` and
``pods/status`` subresources, writes the status the real components would, using the same
condition types, reasons and messages. Each Deployment can be told how to behave (become
available, never become ready, or exceed its progress deadline), so tests can drive both the
happy path and the failures deterministically.

Simplifications, on purpose: there are no ReplicaSet objects (Pods carry ``pod-template-hash``
but no owner), a rolling update keeps every old Pod until all new ones are ready and then
replaces them at once (``Recreate`` drops them immediately), and ``minReadySeconds`` is ignored.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from kubernetes import client

from testenv.rest import JsonObj, KubeApiError, WatchStream, request

log = logging.getLogger(__name__)

Mode = Literal["available", "never", "progress-deadline-exceeded"]
MODES: tuple[Mode, ...] = ("available", "never", "progress-deadline-exceeded")

MANAGED_LABEL = "argo-bluegreen.test/stand-in"
OWNER_LABEL = "argo-bluegreen.test/deployment"
HASH_LABEL = "pod-template-hash"
NODE_NAME = "stand-in-node"

Key = tuple[str, str]


@dataclass(frozen=True)
class Behaviour:
    """How one Deployment's rollouts end.

    Attributes:
        mode: ``available``: Pods become Ready after ``delay_seconds``. ``never``: Pods stay
            waiting with ``waiting_reason``; Progressing stays True (ReplicaSetUpdated).
            ``progress-deadline-exceeded``: like ``never``, then after ``delay_seconds``
            Progressing turns False with reason ProgressDeadlineExceeded.
        delay_seconds: See ``mode``; counted from the start of each rollout.
        waiting_reason: Container waiting reason for Pods that never get ready.
    """

    mode: Mode = "available"
    delay_seconds: float = 0.0
    waiting_reason: str = "ImagePullBackOff"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: JsonObj) -> str:
    """A short stable hash of a pod template, playing the role of ``pod-template-hash``."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _max_unavailable(dep: JsonObj, replicas: int) -> int:
    strategy = (dep.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        # The real controller rounds the unavailable budget down.
        return int(replicas * int(value[:-1]) // 100)
    return int(value)


class DeploymentStandIn:
    """Background controller writing Deployment and Pod status in managed namespaces."""

    def __init__(self, api: client.ApiClient, default: Behaviour | None = None) -> None:
        self._api = api
        self.default = default or Behaviour()
        self._lock = threading.Condition()
        self._behaviours: dict[Key, Behaviour] = {}
        self._namespaces: dict[str, bool] = {}
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._busy = False
        self._timers: dict[Key, tuple[float, threading.Timer]] = {}
        # (namespace, name, template hash) -> monotonic time the rollout of that template began.
        self._rollout_started: dict[tuple[str, str, str], float] = {}
        self._seen_generation: dict[Key, int] = {}
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    # ----------------------------------------------------------------- public API
    def start(self) -> None:
        """Start the watch and worker threads."""
        listing = request(self._api, "GET", "/apis/apps/v1/deployments")
        for dep in listing.get("items", []):
            self._enqueue((dep["metadata"]["namespace"], dep["metadata"]["name"]))
        rv = listing["metadata"]["resourceVersion"]
        for target, name in ((lambda: self._watch_loop(rv), "watch"), (self._work_loop, "worker")):
            thread = threading.Thread(target=target, name=f"deployment-stand-in-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop all threads and timers; safe to call twice."""
        self._stopping.set()
        with self._lock:
            for _due, timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            self._lock.notify_all()
            stream = self._stream
        if stream is not None:
            stream.close()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def manage(self, namespace: str) -> None:
        """Handle Deployments in ``namespace`` (namespaces labelled ``MANAGED_LABEL=true`` are handled anyway)."""
        with self._lock:
            self._namespaces[namespace] = True
        self._requeue_namespace(namespace)

    def behave(
        self,
        namespace: str,
        name: str,
        mode: Mode = "available",
        delay_seconds: float = 0.0,
        waiting_reason: str = "ImagePullBackOff",
    ) -> None:
        """Set how the Deployment ``namespace/name`` behaves from now on (it need not exist yet)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._lock:
            self._behaviours[(namespace, name)] = Behaviour(mode, delay_seconds, waiting_reason)
            self._namespaces[namespace] = True
        self._enqueue((namespace, name))

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Return once every Deployment that exists now has been fully processed.

        "Fully" means: its current generation was reconciled, nothing is queued, and no timer due
        before ``timeout`` is still pending (later timers, e.g. a long progress deadline, are not
        waited for). Raises TimeoutError otherwise, and RuntimeError if the stand-in hit errors.
        """
        deadline = time.monotonic() + timeout
        wanted: dict[Key, int] = {}
        for dep in request(self._api, "GET", "/apis/apps/v1/deployments").get("items", []):
            key = (dep["metadata"]["namespace"], dep["metadata"]["name"])
            if self._is_managed(key[0]):
                wanted[key] = int(dep["metadata"].get("generation", 0))
        with self._lock:
            while True:
                if self.errors:
                    raise RuntimeError("deployment stand-in failed: " + "; ".join(self.errors))
                pending_timers = [k for k, (due, _t) in self._timers.items() if due <= deadline]
                lagging = [k for k, gen in wanted.items() if self._seen_generation.get(k, -1) < gen]
                if not self._queue and not self._busy and not pending_timers and not lagging:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"stand-in not idle after {timeout}s: queued={list(self._queue)} busy={self._busy} "
                        f"timers={pending_timers} lagging={lagging}"
                    )
                self._lock.wait(remaining)

    # ----------------------------------------------------------------- plumbing
    def _is_managed(self, namespace: str) -> bool:
        with self._lock:
            known = self._namespaces.get(namespace)
        if known is not None:
            return known
        try:
            ns = request(self._api, "GET", f"/api/v1/namespaces/{namespace}")
            managed = (ns["metadata"].get("labels") or {}).get(MANAGED_LABEL) == "true"
        except KubeApiError:
            managed = False
        with self._lock:
            self._namespaces.setdefault(namespace, managed)
            return self._namespaces[namespace]

    def _enqueue(self, key: Key) -> None:
        with self._lock:
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._lock.notify_all()

    def _requeue_namespace(self, namespace: str) -> None:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        for dep in request(self._api, "GET", path).get("items", []):
            self._enqueue((namespace, dep["metadata"]["name"]))

    def _schedule(self, key: Key, at: float) -> None:
        """Re-reconcile ``key`` at monotonic time ``at`` (one timer per key; the earliest wins)."""
        with self._lock:
            existing = self._timers.get(key)
            if existing is not None and existing[0] <= at:
                return
            if existing is not None:
                existing[1].cancel()

            def fire() -> None:
                with self._lock:
                    current = self._timers.get(key)
                    if current is not None and current[1] is timer:
                        del self._timers[key]
                self._enqueue(key)

            timer = threading.Timer(max(0.0, at - time.monotonic()), fire)
            timer.daemon = True
            self._timers[key] = (at, timer)
            timer.start()

    def _watch_loop(self, resource_version: str) -> None:
        rv = resource_version
        while not self._stopping.is_set():
            try:
                stream = WatchStream(
                    self._api,
                    "/apis/apps/v1/deployments",
                    {"resourceVersion": rv, "allowWatchBookmarks": True, "timeoutSeconds": 300},
                    read_timeout=330,
                )
            except KubeApiError as exc:
                if self._stopping.is_set():
                    return
                if exc.status == 410:
                    rv = self._relist()
                    continue
                self._record(f"watch failed: {exc}")
                return
            except Exception as exc:  # connection refused while stopping, etc.
                if not self._stopping.is_set():
                    self._record(f"watch failed: {exc!r}")
                return
            with self._lock:
                self._stream = stream
            if self._stopping.is_set():
                stream.close()
                return
            for event in stream.events():
                obj = event.get("object") or {}
                kind = event.get("type")
                if kind == "ERROR":
                    # Typically 410 Gone: our resourceVersion is too old; start over from a list.
                    rv = self._relist()
                    break
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if kind == "BOOKMARK":
                    continue
                meta = obj["metadata"]
                key = (meta["namespace"], meta["name"])
                if self._is_managed(key[0]):
                    self._enqueue(key)
            stream.close()

    def _relist(self) -> str:
        listing = request(self._api, "GET", "/apis/apps/v1/deployments")
        for dep in listing.get("items", []):
            self._enqueue((dep["metadata"]["namespace"], dep["metadata"]["name"]))
        return str(listing["metadata"]["resourceVersion"])

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping.is_set():
                    self._lock.wait()
                if self._stopping.is_set():
                    return
                key = self._queue.popleft()
                self._queued.discard(key)
                self._busy = True
            try:
                if self._is_managed(key[0]):
                    self._reconcile(key)
            except KubeApiError as exc:
                if exc.status == 409:
                    self._enqueue(key)  # raced with a writer; the next read is fresher
                elif not self._benign(exc):
                    self._record(f"{key[0]}/{key[1]}: {exc}")
            except Exception as exc:
                self._record(f"{key[0]}/{key[1]}: {exc!r}")
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    @staticmethod
    def _benign(exc: KubeApiError) -> bool:
        # Objects vanish and namespaces terminate under the stand-in's feet during teardown.
        return exc.status == 404 or (exc.status == 403 and "being terminated" in exc.message)

    def _record(self, message: str) -> None:
        log.error("deployment stand-in: %s", message)
        with self._lock:
            self.errors.append(message)
            self._lock.notify_all()

    # ----------------------------------------------------------------- reconcile
    def _reconcile(self, key: Key) -> None:
        namespace, name = key
        pods_path = f"/api/v1/namespaces/{namespace}/pods"
        try:
            dep = request(self._api, "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            self._delete_pods(namespace, self._owned_pods(namespace, name))
            with self._lock:
                self._seen_generation.pop(key, None)
            return
        spec = dep.get("spec") or {}
        generation = int(dep["metadata"].get("generation", 0))
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        tmpl_hash = template_hash(template)
        with self._lock:
            behaviour = self._behaviours.get(key, self.default)
            started = self._rollout_started.setdefault((namespace, name, tmpl_hash), time.monotonic())
        elapsed = time.monotonic() - started

        new_ready = behaviour.mode == "available" and elapsed >= behaviour.delay_seconds
        if behaviour.mode == "available" and not new_ready:
            self._schedule(key, started + behaviour.delay_seconds)
        timed_out = False
        if behaviour.mode == "progress-deadline-exceeded":
            timed_out = elapsed >= behaviour.delay_seconds
            if not timed_out:
                self._schedule(key, started + behaviour.delay_seconds)
        elif behaviour.mode == "never" and spec.get("progressDeadlineSeconds") is not None:
            # Honour an explicit deadline as the real controller would.
            deadline = float(spec["progressDeadlineSeconds"])
            timed_out = elapsed >= deadline
            if not timed_out:
                self._schedule(key, started + deadline)

        pods = self._owned_pods(namespace, name)
        new_pods = {p["metadata"]["name"]: p for p in pods if p["metadata"]["labels"].get(HASH_LABEL) == tmpl_hash}
        old_pods = [p for p in pods if p["metadata"]["labels"].get(HASH_LABEL) != tmpl_hash]
        wanted = {f"{name}-{tmpl_hash}-{i}" for i in range(replicas)}
        self._delete_pods(namespace, [p for n, p in new_pods.items() if n not in wanted])
        for pod_name in sorted(wanted):
            pod = new_pods.get(pod_name)
            if pod is None:
                pod = request(self._api, "POST", pods_path, body=self._pod(dep, pod_name, tmpl_hash))
            self._set_pod_status(pod, template, new_ready, behaviour.waiting_reason)
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if new_ready or replicas == 0 or recreate:
            # The new pods carry the load now (or the strategy kills the old ones first), so the
            # previous revision is scaled away.
            self._delete_pods(namespace, old_pods)
            old_pods = []

        old_ready = sum(1 for p in old_pods if _pod_ready(p))
        updated = replicas
        total = replicas + len(old_pods)
        available = old_ready + (replicas if new_ready else 0)
        status = self._status(dep, generation, replicas, updated, total, available, timed_out, tmpl_hash)
        request(
            self._api,
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
        with self._lock:
            self._seen_generation[key] = generation

    def _status(
        self,
        dep: JsonObj,
        generation: int,
        replicas: int,
        updated: int,
        total: int,
        available: int,
        timed_out: bool,
        tmpl_hash: str,
    ) -> JsonObj:
        name = dep["metadata"]["name"]
        old_conds = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        rs_name = f"{name}-{tmpl_hash}"

        def cond(ctype: str, status: str, reason: str, message: str) -> JsonObj:
            now = _now()
            prev = old_conds.get(ctype)
            if prev and (prev.get("status"), prev.get("reason"), prev.get("message")) == (status, reason, message):
                # Unchanged: keep the timestamps, so rewriting status is a no-op the server drops
                # (otherwise every status write would trigger another reconcile, forever).
                return dict(prev)
            transition = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": transition,
            }

        min_available = replicas - _max_unavailable(dep, replicas)
        if available >= min_available:
            available_cond = cond(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            available_cond = cond(
                "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
            )
        complete = updated == replicas and total == replicas and available == replicas
        if complete:
            progressing = cond(
                "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.'
            )
        elif timed_out:
            progressing = cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = cond("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        ready = available  # minReadySeconds is not modelled, so ready pods count as available at once
        return {
            "observedGeneration": generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            # Like the real controller: counted against all revisions' pods, never negative.
            "unavailableReplicas": max(total - available, 0),
            "conditions": [available_cond, progressing],
        }

    # ----------------------------------------------------------------- pods
    def _owned_pods(self, namespace: str, name: str) -> list[JsonObj]:
        listing = request(
            self._api,
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            query={"labelSelector": f"{OWNER_LABEL}={name}"},
        )
        items: list[JsonObj] = listing.get("items", [])
        return items

    def _delete_pods(self, namespace: str, pods: list[JsonObj]) -> None:
        for pod in pods:
            try:
                # Grace period 0: no kubelet will ever confirm a graceful shutdown.
                request(
                    self._api,
                    "DELETE",
                    f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}",
                    query={"gracePeriodSeconds": 0},
                )
            except KubeApiError as exc:
                if exc.status != 404:
                    raise

    @staticmethod
    def _pod(dep: JsonObj, pod_name: str, tmpl_hash: str) -> JsonObj:
        template = copy.deepcopy((dep.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels[HASH_LABEL] = tmpl_hash
        labels[OWNER_LABEL] = dep["metadata"]["name"]
        spec = template.get("spec") or {}
        # Bound to a node that does not exist: nothing schedules Pods here, and a bound Pod reads as
        # "scheduled" to anything inspecting it.
        spec["nodeName"] = NODE_NAME
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": dep["metadata"]["namespace"],
                "labels": labels,
                "annotations": dict(meta.get("annotations") or {}),
            },
            "spec": spec,
        }

    def _set_pod_status(self, pod: JsonObj, template: JsonObj, ready: bool, waiting_reason: str) -> None:
        containers = (template.get("spec") or {}).get("containers") or []
        current = pod.get("status") or {}
        if current.get("phase") == ("Running" if ready else "Pending") and _pod_ready(pod) == ready:
            states = [s.get("state") or {} for s in current.get("containerStatuses") or []]
            if ready and states and all("running" in st for st in states):
                return
            if not ready and states and all(st.get("waiting", {}).get("reason") == waiting_reason for st in states):
                return
        now = _now()
        status_word = "True" if ready else "False"
        container_statuses = []
        for c in containers:
            if ready:
                state: JsonObj = {"running": {"startedAt": now}}
            else:
                message = (
                    f'Back-off pulling image "{c.get("image", "")}"'
                    if waiting_reason == "ImagePullBackOff"
                    else f"back-off restarting failed container {c['name']}"
                )
                state = {"waiting": {"reason": waiting_reason, "message": message}}
            container_statuses.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "started": ready,
                    "restartCount": 0,
                    "state": state,
                }
            )
        not_ready_reason = None if ready else "ContainersNotReady"
        conditions: list[dict[str, str | None]] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status_word, "lastTransitionTime": now, "reason": not_ready_reason},
            {"type": "Ready", "status": status_word, "lastTransitionTime": now, "reason": not_ready_reason},
        ]
        status = {
            "phase": "Running" if ready else "Pending",
            "conditions": [{k: v for k, v in c.items() if v is not None} for c in conditions],
            "containerStatuses": container_statuses,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": current.get("startTime", now),
        }
        meta = pod["metadata"]
        request(
            self._api,
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )


def _pod_ready(pod: JsonObj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
