"""When each Pod of a namespace appeared and turned Ready, as the API server's watch delivered it, to the millisecond.

Kubernetes stamps ``creationTimestamp`` and a condition's ``lastTransitionTime`` to the second, so a readiness span
read from the objects is good to about a second either way; the benchmarks subtract it from a deploy's wall time,
where a second is most of what they measure. This thread notes the moment each change reached it instead: both ends
of a span carry the same delivery delay, which cancels out.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from testenv.local_cluster import LocalCluster
from testenv.rest import KubeApiError, WatchStream, request

#: How long one watch request may stay open before it is made again.
WATCH_READ_TIMEOUT_SECONDS = 300.0


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class PodReadinessWatch:
    """A thread recording, per Pod name, when it was first seen and when it was first seen Ready (unix seconds)."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self._cluster = cluster
        self._path = f"/api/v1/namespaces/{namespace}/pods"
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.listed = threading.Event()
        self._stream: WatchStream | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"pods-{namespace}", daemon=True)

    def start(self) -> None:
        """List the namespace's Pods (those get no times: they were there before) and start watching."""
        self._thread.start()

    def span(self, names: list[str]) -> float | None:
        """Seconds from the first of ``names`` appearing to the last of them turning Ready; None if one is unknown."""
        with self._lock:
            if not names or any(name not in self.seen or name not in self.ready for name in names):
                return None
            return max(self.ready[name] for name in names) - min(self.seen[name] for name in names)

    def _note(self, pod: dict[str, Any], at: float) -> None:
        name = str(pod["metadata"]["name"])
        with self._lock:
            self.seen.setdefault(name, at)
            if _is_ready(pod):
                self.ready.setdefault(name, at)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                listed = request(self._cluster.api, "GET", self._path)
                if not self.listed.is_set():
                    # Pods from before the watch began have no moment of their own to record.
                    with self._lock:
                        for pod in listed.get("items", []):
                            self.seen.setdefault(pod["metadata"]["name"], float("-inf"))
                    self.listed.set()
                else:
                    # Listed again after a watch ended: what changed in between is noted now, a little late.
                    for pod in listed.get("items", []):
                        self._note(pod, time.time())
                version = str(listed["metadata"]["resourceVersion"])
                self._stream = WatchStream(
                    self._cluster.api,
                    self._path,
                    {"resourceVersion": version, "allowWatchBookmarks": False},
                    WATCH_READ_TIMEOUT_SECONDS,
                )
                for event in self._stream.events():
                    if event.get("type") in {"ADDED", "MODIFIED"}:
                        self._note(event["object"], time.time())
            except (KubeApiError, OSError):
                # The API server ended the watch or refused once; list again (bounded by stop()).
                self._stopped.wait(0.2)

    def stop(self) -> None:
        """End the watch and wait for the thread."""
        self._stopped.set()
        if self._stream is not None:
            self._stream.close()
        self._thread.join(timeout=10)


__all__ = ["PodReadinessWatch"]
