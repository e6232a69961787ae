"""A thread that lists a collection, then watches it, and lists again whenever the watch ends, until stopped.

The benchmarks time deploys by the moment a change reaches them through the API server's watch. Each recorder says
what to do with the objects of a list and with an added or modified object; this thread keeps the watch going.
"""

from __future__ import annotations

import threading
from typing import Any

from testenv.local_cluster import LocalCluster
from testenv.rest import KubeApiError, WatchStream, request

#: How long one watch request may stay open before it is made again.
WATCH_READ_TIMEOUT_SECONDS = 300.0


class ListWatchThread:
    """Lists ``path`` (with ``query``) and watches it from that list's resourceVersion, again after every end."""

    def __init__(self, cluster: LocalCluster, path: str, query: dict[str, str], name: str) -> None:
        self._cluster = cluster
        self._path = path
        self._query = query
        self._stream: WatchStream | None = None
        self._stopped = threading.Event()
        #: Set once the first list has been recorded.
        self.listed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Record the current list and start watching."""
        self._thread.start()

    def on_list(self, items: list[dict[str, Any]], first: bool) -> None:
        """Record a list's objects; ``first`` for the list made before any watch."""
        raise NotImplementedError

    def on_change(self, item: dict[str, Any]) -> None:
        """Record an object the watch delivered as added or modified."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                listed = request(self._cluster.api, "GET", self._path, query=self._query)
                self.on_list(listed.get("items", []), first=not self.listed.is_set())
                self.listed.set()
                version = str(listed["metadata"]["resourceVersion"])
                self._stream = WatchStream(
                    self._cluster.api,
                    self._path,
                    {**self._query, "resourceVersion": version, "allowWatchBookmarks": False},
                    WATCH_READ_TIMEOUT_SECONDS,
                )
                for event in self._stream.events():
                    if event.get("type") in {"ADDED", "MODIFIED"}:
                        self.on_change(event["object"])
            except (KubeApiError, OSError):
                # The API server ended the watch or refused once; list again (bounded by stop()).
                self._stopped.wait(0.2)

    def stop(self) -> None:
        """End the watch and wait for the thread."""
        self._stopped.set()
        if self._stream is not None:
            self._stream.close()
        self._thread.join(timeout=10)


__all__ = ["WATCH_READ_TIMEOUT_SECONDS", "ListWatchThread"]
