"""A cluster network, an API server bound where Pods reach it, and the node agent, for these tests.

No scheduler or controllers run: tests create Pods with ``spec.nodeName`` set, and the
ServiceAccounts and ``kube-root-ca.crt`` ConfigMap those controllers would create.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testenv import certs, paths
from testenv.controlplane import ApiServing, ControlPlane
from testenv.node import network
from testenv.node.agent import NodeAgent
from testenv.node.kubeapi import ApiError, KubeApi

JsonObj = dict[str, Any]
WAIT_SECONDS = 60.0


def _missing_host_support() -> str:
    if platform.system() != "Linux":
        return "node agent tests need Linux namespaces"
    if os.geteuid() != 0:
        return "node agent tests need root (network and mount namespaces)"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"node agent tests need `{tool}` (make host-deps)"
    return ""


@dataclass
class NodeEnv:
    """What a test gets: the network, the admin API, the agent and its work dir, and the cluster PKI."""

    net: network.ClusterNetwork
    api: KubeApi
    agent: NodeAgent
    workdir: Path
    kubeconfig: Path
    server: str
    pki: certs.Pki

    def namespace(self) -> str:
        """A fresh namespace with a ``default`` ServiceAccount and ``kube-root-ca.crt``."""
        name = f"node-{uuid.uuid4().hex[:8]}"
        self.api.create("/api/v1/namespaces", {"metadata": {"name": name}})
        self.api.create(f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "default"}})
        self.api.create(
            f"/api/v1/namespaces/{name}/configmaps",
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": self.api.ca_pem.decode()}},
        )
        return name

    def create_pod(self, namespace: str, name: str, spec: JsonObj, **meta: Any) -> JsonObj:
        """Create a Pod bound to the agent's node."""
        body = {"metadata": {"name": name, **meta}, "spec": {"nodeName": self.agent.node_name, **spec}}
        return self.api.create(f"/api/v1/namespaces/{namespace}/pods", body)

    def pod(self, namespace: str, name: str) -> JsonObj | None:
        """The Pod, or None once it is gone."""
        return self.api.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def wait_pod(
        self,
        namespace: str,
        name: str,
        what: str,
        check: Callable[[JsonObj | None], bool],
        timeout: float = WAIT_SECONDS,
    ) -> JsonObj | None:
        """Bounded poll of the Pod until ``check`` holds; fails with the last status seen."""
        deadline = time.monotonic() + timeout
        last: JsonObj | None = None
        while time.monotonic() < deadline:
            last = self.pod(namespace, name)
            if check(last):
                return last
            time.sleep(0.2)
        status = (last or {}).get("status")
        pytest.fail(f"pod {namespace}/{name}: {what} not reached in {timeout:.0f}s; last status: {status}")


def container_status(pod: JsonObj | None, name: str, init: bool = False) -> JsonObj:
    """The named container's status ({} when absent)."""
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in ((pod or {}).get("status") or {}).get(key, []) or []:
        if status["name"] == name:
            return dict(status)
    return {}


def condition(pod: JsonObj | None, kind: str) -> str:
    """The status ("True"/"False") of a Pod condition, "" when absent."""
    for cond in ((pod or {}).get("status") or {}).get("conditions", []) or []:
        if cond["type"] == kind:
            return str(cond["status"])
    return ""


def token_volume(name: str = "kube-api-access") -> JsonObj:
    """The projected volume the ServiceAccount admission plugin would add."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }


TOKEN_MOUNT = {
    "name": "kube-api-access",
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    "readOnly": True,
}


@pytest.fixture(scope="session")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeEnv]:
    """The network, an API server on its host address, and a running in-process node agent."""
    # Under CI a machine that cannot run the agent is a failure, never a silent skip.
    located = paths.locate()
    missing = _missing_host_support() or located.reason
    if missing or located.artifacts is None:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    net = network.create_cluster_network()
    cp: ControlPlane | None = None
    agent: NodeAgent | None = None
    api: KubeApi | None = None
    try:
        cp = ControlPlane(
            located.artifacts,
            ApiServing(
                bind_address=net.host_ip,
                service_cidr=net.service_cidr,
                extra_serving_ips=(net.kubernetes_service_ip,),
            ),
        )
        cp.start()
        workdir = tmp_path_factory.mktemp("node-agent")
        serving = certs.issue_serving_certificate(cp.pki, workdir / "pki", "system:node:test", [net.node_ip])
        agent = NodeAgent(cp.kubeconfig_path, net, workdir, kubelet_serving=serving)
        agent.start()
        api = KubeApi(cp.kubeconfig_path)
        yield NodeEnv(net, api, agent, workdir, cp.kubeconfig_path, cp.server, cp.pki)
    finally:
        if agent is not None:
            agent.stop()
        if api is not None:
            api.close()
        if cp is not None:
            cp.stop()
        network.destroy_cluster_network(net)


def delete_pod(env: NodeEnv, namespace: str, name: str, grace: int | None = None) -> None:
    """Delete a Pod (with an optional grace period); a missing Pod is fine."""
    body = {"gracePeriodSeconds": grace} if grace is not None else None
    try:
        env.api.delete(f"/api/v1/namespaces/{namespace}/pods/{name}", body)
    except ApiError as exc:
        if exc.status != 404:
            raise
