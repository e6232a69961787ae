"""The node agent: registers a Node, keeps its Lease fresh and runs the Pods bound to it.

It plays the kubelet's part for the local cluster (see ``testenv/node/__init__.py``): one
:class:`~testenv.node.lifecycle.PodWorker` per Pod whose ``spec.nodeName`` is this node, fed by a
watch. At start it sweeps what a previous agent of the same node left (processes, Pod network
namespaces, Pod directories), so a crash never leaves orphans past the next start.

Given a serving certificate it also runs the kubelet's HTTPS endpoint for logs
(:mod:`testenv.node.kubelet_server`). The Node advertises ``InternalIP`` = the node address
(``10.243.<n>.2``, inside the node network namespace) and ``kubeletEndpoint.Port`` = 10250, and
the endpoint listens exactly there: the API server on the host reaches that address through the
host's veth, the address is the one Pods already report as ``hostIP`` and kube-proxy (which runs
in the node namespace) takes as the node's own, and the namespace belongs to this cluster alone,
so the kubelet's well-known port never collides with another cluster's.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from testenv.node import network
from testenv.node.image_store import ImageStore
from testenv.node.images import PULLED_REPOSITORIES, ImageTable
from testenv.node.kubeapi import ApiError, KubeApi, WatchExpired
from testenv.node.kubelet_server import KUBELET_PORT, KubeletServer, NodeAuthorizer
from testenv.node.lifecycle import PodWorker, now_rfc3339
from testenv.node.processes import PodCgroups

JsonObj = dict[str, Any]
log = logging.getLogger("testenv.node")

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
KUBELET_VERSION = "v1.37.2-bluegreen-node"
# Generous, so the scheduler never refuses a test Pod for resources this machine does not police.
CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "500Gi"}
RETRY_SECONDS = 1.0


class NodeAgent:
    """Runs every Pod bound to ``node_name`` as local processes, in ``net``'s namespaces.

    Args:
        kubeconfig: Admin credentials for the API server.
        net: The cluster network (its index decides Pod namespaces and addresses).
        workdir: Where Pod directories, volumes, logs and container roots live.
        argoexec: The built ``argoexec`` binary for Argo's executor image (None: that image
            is reported as not pullable).
        node_name: The Node to register (default: ``bluegreen-node-<index>``).
        kubelet_serving: Certificate and key (PEM files) for the kubelet endpoint, valid for the
            node address and signed by the cluster CA; None runs no endpoint (the Node then
            advertises port 0 and ``kubectl logs`` cannot reach it).
        kubelet_port: The endpoint's port on the node address.
    """

    def __init__(
        self,
        kubeconfig: Path,
        net: network.ClusterNetwork,
        workdir: Path,
        argoexec: Path | None = None,
        node_name: str | None = None,
        kubelet_serving: tuple[Path, Path] | None = None,
        kubelet_port: int = KUBELET_PORT,
        registry_mirror: str | None = None,
    ) -> None:
        self.net = net
        self.workdir = workdir.resolve()
        self.node_name = node_name or f"bluegreen-node-{net.index}"
        self.api = KubeApi(kubeconfig)
        # Pulled images live beside the Pods' directories: unpacked once per list of layers, gone with the cluster.
        self.image_store = ImageStore(registry_mirror, self.workdir / "images") if registry_mirror else None
        self.images = ImageTable(argoexec, self.image_store, PULLED_REPOSITORIES if registry_mirror else frozenset())
        self.addresses = network.PodAddresses(net)
        self.cgroups = PodCgroups(net.index)
        self.allocatable = dict(CAPACITY)
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._kubelet_serving = kubelet_serving
        self._kubelet_port = kubelet_port
        self.kubelet_server: KubeletServer | None = None

    # ---- start and stop ---------------------------------------------------------------

    def start(self) -> None:
        """Sweep leftovers, register the Node and begin heartbeating and running Pods."""
        self.sweep()
        self._start_kubelet_server()
        self._register_node()
        for target, name in ((self._heartbeat_loop, "node-heartbeat"), (self._watch_loop, "pod-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("node agent started", extra={"node": self.node_name, "workdir": str(self.workdir)})

    def _start_kubelet_server(self) -> None:
        if self._kubelet_serving is None:
            return
        cert, key = self._kubelet_serving
        server = KubeletServer(
            network.listen_in_node(self.net, self._kubelet_port),
            cert,
            key,
            self.api.ca_pem,
            NodeAuthorizer(self.api, self.node_name),
            self.find_pod,
        )
        server.start()
        self.kubelet_server = server
        log.info("kubelet endpoint serving", extra={"address": f"{self.net.node_ip}:{server.port}"})

    def sweep(self) -> list[str]:
        """Remove whatever a previous agent of this node left: processes, Pod namespaces, Pod dirs."""
        removed = [f"cgroup:{name}" for name in self.cgroups.sweep()]
        removed += [f"netns:{name}" for name in network.sweep_pod_networks(self.net)]
        pods_dir = self.workdir / "pods"
        if pods_dir.is_dir():
            for child in pods_dir.iterdir():
                shutil.rmtree(child, ignore_errors=True)
                removed.append(f"dir:{child}")
        if removed:
            log.info("swept leftovers", extra={"removed": removed})
        return removed

    def stop(self) -> None:
        """Kill every Pod's processes and remove their namespaces and files; the API is left alone."""
        self._stop.set()
        if self.kubelet_server is not None:
            self.kubelet_server.stop()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.thread.join(timeout=30)
        self.cgroups.remove()
        network.sweep_pod_networks(self.net)
        if self.image_store is not None:
            self.image_store.close()
        self.api.close()
        log.info("node agent stopped", extra={"node": self.node_name})

    def forget(self, pod_uid: str) -> None:
        """Called by a worker that has finished with its Pod."""
        with self._lock:
            self._workers.pop(pod_uid, None)

    # ---- node and lease ---------------------------------------------------------------

    def _node_status(self) -> JsonObj:
        now = now_rfc3339()

        def condition(kind: str, status: str, reason: str, message: str) -> JsonObj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": CAPACITY,
            "allocatable": self.allocatable,
            "addresses": [
                {"type": "InternalIP", "address": self.net.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "conditions": [
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": f"argo-bluegreen node agent on {socket.gethostname()}",
                "containerRuntimeVersion": "bluegreen://0.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_server.port if self.kubelet_server else 0}},
        }

    def _register_node(self) -> None:
        body: JsonObj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": self._node_status()["nodeInfo"]["architecture"],
                    "node.kubernetes.io/instance-type": "bluegreen-local",
                },
            },
            "spec": {"podCIDR": self.net.pod_cidr, "podCIDRs": [self.net.pod_cidr]},
        }
        try:
            self.api.create("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
        self.api.merge_patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self._node_status()})
        self._clear_not_ready_taint()

    def _clear_not_ready_taint(self) -> None:
        """Drop the ``node.kubernetes.io/not-ready`` taint once the node is Ready.

        Admission adds it when the Node is created, and no node lifecycle controller runs here to
        remove it.
        """
        node = self.api.get(f"/api/v1/nodes/{self.node_name}")
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != NOT_READY_TAINT]
        if kept != taints:
            self.api.merge_patch(f"/api/v1/nodes/{self.node_name}", {"spec": {"taints": kept or None}})

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.node_name}"
        renew = now_rfc3339().replace("Z", ".000000Z")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": renew}
        try:
            self.api.merge_patch(path, {"spec": spec})
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.api.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node_name},
                    "spec": spec,
                },
            )

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._renew_lease()
                self.api.merge_patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self._node_status()})
                self._clear_not_ready_taint()
            except Exception as exc:  # the next beat retries; a heartbeat never kills the agent
                log.warning("heartbeat failed", extra={"error": str(exc)})
            self._stop.wait(HEARTBEAT_SECONDS)

    # ---- pods ---------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        while not self._stop.is_set():
            try:
                listed = self.api.get("/api/v1/pods", fieldSelector=selector)
                seen = set()
                for pod in listed.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self._on_pod(pod)
                with self._lock:
                    vanished = [w for uid, w in self._workers.items() if uid not in seen]
                for worker in vanished:
                    worker.deleted()
                version = listed["metadata"]["resourceVersion"]
                for kind, pod in self.api.watch("/api/v1/pods", version, self._stop, fieldSelector=selector):
                    if kind == "DELETED":
                        with self._lock:
                            gone = self._workers.get(pod["metadata"]["uid"])
                        if gone is not None:
                            gone.deleted()
                    else:
                        self._on_pod(pod)
            except WatchExpired:
                continue
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("pod watch failed, listing again", extra={"error": str(exc)})
                self._stop.wait(RETRY_SECONDS)

    def _on_pod(self, pod: JsonObj) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if self._stop.is_set():
                return
            worker = self._workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            phase = pod.get("status", {}).get("phase")
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            if phase in ("Succeeded", "Failed") and not deleting:
                return  # finished before this agent started; nothing left to run
            worker = PodWorker(self, pod)
            self._workers[uid] = worker
        log.info("pod admitted", extra={"pod": worker.key, "uid": uid})
        worker.thread.start()

    def find_pod(self, namespace: str, name: str) -> PodWorker | None:
        """The worker of the Pod ``namespace/name`` on this node, if one runs."""
        key = f"{namespace}/{name}"
        with self._lock:
            return next((w for w in self._workers.values() if w.key == key), None)

    def workers(self) -> dict[str, PodWorker]:
        """Live workers by Pod uid (for tests and diagnostics)."""
        with self._lock:
            return dict(self._workers)

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
