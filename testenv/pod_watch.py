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

from testenv.list_watch import ListWatchThread
from testenv.local_cluster import LocalCluster


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class PodReadinessWatch(ListWatchThread):
    """A thread recording, per Pod name, when it was first seen and when it was first seen Ready (unix seconds)."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        super().__init__(cluster, f"/api/v1/namespaces/{namespace}/pods", {}, name=f"pods-{namespace}")
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self._lock = threading.Lock()

    def span(self, names: list[str]) -> float | None:
        """Seconds from the first of ``names`` appearing to the last of them turning Ready; None if one is unknown."""
        with self._lock:
            if not names or any(name not in self.seen or name not in self.ready for name in names):
                return None
            return max(self.ready[name] for name in names) - min(self.seen[name] for name in names)

    def on_list(self, items: list[dict[str, Any]], first: bool) -> None:
        """Pods from before the watch began have no moment of their own; after a watch ended, note changes now."""
        if first:
            with self._lock:
                for pod in items:
                    self.seen.setdefault(pod["metadata"]["name"], float("-inf"))
            return
        # Listed again after a watch ended: what changed in between is noted now, a little late.
        for pod in items:
            self.on_change(pod)

    def on_change(self, item: dict[str, Any]) -> None:
        """The first moment this Pod was seen, and the first it was seen Ready."""
        at = time.time()
        name = str(item["metadata"]["name"])
        with self._lock:
            self.seen.setdefault(name, at)
            if _is_ready(item):
                self.ready.setdefault(name, at)


__all__ = ["PodReadinessWatch"]
