"""One local cluster for a whole parallel test run: started by pytest-xdist's controller, attached to by its workers.

Each xdist worker is its own process with its own session fixtures, so without this every worker would start a
cluster of its own: four control planes, four Argo controllers and four node agents on two cores. Instead the
controller starts one cluster in a background thread while the workers collect and run the tests that need none, and
every worker's ``local_cluster`` fixture waits for it and attaches (:meth:`LocalCluster.attach`). Tests already own
their namespaces, so sharing the cluster between workers is what sharing it between tests already was.

The thread that starts the cluster is also the one that stops it: the cluster's programs die with the thread that
spawned them (``PR_SET_PDEATHSIG`` follows the parent thread, not the process), so that thread lives as long as the
cluster does.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from testenv.local_cluster import ClusterStartError, ClusterTuning, LocalCluster
from testenv.paths import Artifacts

#: Set by the controller for its workers: the directory where the shared cluster says it is ready, or why it is not.
SHARED_ENV = "BLUEGREEN_TEST_SHARED_CLUSTER"
READY_FILE = "ready.json"
FAILED_FILE = "failed.txt"
#: How long a worker waits for the controller's cluster: its start-up deadline, with room for a loaded machine.
ATTACH_TIMEOUT = 360.0
START_TIMEOUT = 300.0


class SharedCluster:
    """The controller's side: start the cluster in a thread of its own, publish it, and stop it at the end."""

    def __init__(self, artifacts: Artifacts, tuning: ClusterTuning) -> None:
        self.artifacts = artifacts
        self.tuning = tuning
        self.directory = Path(tempfile.mkdtemp(prefix="bluegreen-shared-"))
        self.start_seconds: float | None = None
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shared-local-cluster", daemon=True)

    def start(self) -> None:
        """Begin starting the cluster; returns at once. Workers learn the outcome from :attr:`directory`."""
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Stop the cluster (or its start-up) and wait for the thread that owns it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self) -> None:
        cluster = LocalCluster(self.artifacts, tuning=self.tuning)
        try:
            cluster.start(timeout=START_TIMEOUT)
        except Exception as exc:  # every failure must reach the workers, or they wait out their deadline
            self.failure = str(exc)
            _publish(self.directory / FAILED_FILE, self.failure)
            return
        try:
            self.start_seconds = cluster.start_seconds
            description = cluster.write_description()
            _publish(
                self.directory / READY_FILE,
                json.dumps({"description": str(description), "startSeconds": cluster.start_seconds}),
            )
            self._stop.wait()
        finally:
            cluster.stop()


def _publish(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a worker polling for it never reads half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)


def attach_shared(directory: Path, timeout: float = ATTACH_TIMEOUT) -> LocalCluster:
    """A worker's handle on the controller's cluster, once it is up; raises :class:`ClusterStartError` otherwise."""
    deadline = time.monotonic() + timeout
    ready, failed = directory / READY_FILE, directory / FAILED_FILE
    # Bounded poll: the controller is another process, and a file is all the two share.
    while not ready.exists():
        if failed.exists():
            raise ClusterStartError(f"the shared local cluster did not start: {failed.read_text()}")
        if not directory.exists():
            raise ClusterStartError(f"the shared local cluster's directory {directory} is gone: the run is ending")
        if time.monotonic() > deadline:
            raise ClusterStartError(f"the shared local cluster was not ready within {timeout:.0f}s ({directory})")
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    return LocalCluster.attach(Path(info["description"]))
