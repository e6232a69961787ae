"""Argo Rollouts' real controller beside the local cluster, watching one namespace, for the side-by-side benchmark.

``with RolloutsController(cluster, "apps") as rollouts:`` applies the CRDs that ship with the pinned release
(``testenv/rollouts.py`` builds both), waits until the API server serves them, and runs ``rollouts-controller`` as a
process on the host with the cluster's admin kubeconfig, as the Argo controller runs here. It reconciles with the
real deployment and ReplicaSet controllers, and its web analysis reaches Services by their ClusterIPs, which the host
routes through kube-proxy like a Pod.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from testenv import rollouts
from testenv.controlplane import die_with_parent, free_port
from testenv.local_cluster import LocalCluster

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
#: The CRD the controller cannot start without; the others ship with it.
ROLLOUT_CRD = "rollouts.argoproj.io"


class RolloutsController:
    """One ``rollouts-controller`` process in namespaced mode.

    Its log goes to a temporary directory, which is removed when the block it ran in ends cleanly and kept (its
    path is in the failure) when the block fails.
    """

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = Path(tempfile.mkdtemp(prefix="bluegreen-rollouts-")) / "rollouts-controller.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RolloutsController:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if kind is None:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
        elif exc is not None:
            exc.add_note(f"rollouts-controller's log: {self.log_path}")

    def start(self) -> None:
        """Apply the CRDs, start the controller, and return once its health endpoint answers."""
        binary = rollouts.controller()
        for crd in rollouts.crd_files():
            self.cluster.run_tool(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(crd)])
        self.cluster.run_tool(
            [
                "kubectl",
                "wait",
                "--for=condition=Established",
                f"crd/{ROLLOUT_CRD}",
                f"--timeout={START_TIMEOUT_SECONDS:.0f}s",
            ]
        )
        healthz = free_port()
        argv = [
            str(binary),
            f"--kubeconfig={self.cluster.kubeconfig_path}",
            "--namespaced",
            f"--namespace={self.namespace}",
            "--leader-elect=false",
            f"--healthzPort={healthz}",
            f"--metricsPort={free_port()}",
            "--loglevel=info",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"rollouts-controller exited {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{healthz}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"rollouts-controller was not healthy in {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}"
                )
            time.sleep(0.2)  # bounded poll: the controller serves /healthz once its informers have synced

    def log_tail(self, lines: int = 40) -> str:
        """The end of the controller's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the controller (idempotent); the CRDs and the objects stay, as on a cluster where it is uninstalled."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
