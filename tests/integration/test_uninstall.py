"""Uninstalling argo-bluegreen from one namespace, as docs/operations/uninstall.md says, on the real API server.

Two namespaces are installed and each holds a BlueGreenDeployment and a DeploymentRecord. The first is then
uninstalled with the documented command, the real ``kubectl delete -k`` on a ``bluegreen-render`` for that namespace.
Only that namespace's part may go: the other namespace's install, the CRDs (whose deletion would delete every
namespace's custom resources, the audit trail included), the custom resources themselves and the admission policies
all stay.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import bluegreen_spec as spec
from pipelines import render
from testenv.apply import Discovery, apply_manifest_objects, object_path
from testenv.cluster import KubeCluster
from testenv.crds import install_crds
from testenv.rest import KubeApiError, request
from tests.integration.installation import cluster_scoped, install
from tests.integration.service_helpers import blue_green

pytestmark = pytest.mark.controlplane

#: docs/operations/uninstall.md, "From one namespace", step 5 (tests/unit/test_install_scopes.py checks that the doc
#: says so): ``rendered/`` is the render for that namespace, here made by ``bluegreen-render --namespace <it> --out``.
UNINSTALL_ONE_NAMESPACE = ("delete", "-k", "{render}", "--ignore-not-found")


def record(service: str) -> dict[str, Any]:
    """A DeploymentRecord as a run's ``open`` writes it: the audit trail that must outlive one namespace's install."""
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.RECORD_KIND,
        "metadata": {"name": f"{service}-run-1", "labels": {spec.SERVICE_LABEL: service}},
        "spec": {
            "service": service,
            "workflow": f"{service}-run-1",
            "image": "registry.example.com/shop/cart:1.0.0",
            "startedAt": "2025-01-01T00:00:00Z",
        },
    }


def kubectl(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The real kubectl, with the cluster's admin kubeconfig, as the administrator runs it."""
    command = [str(cluster.artifacts.kubectl), f"--kubeconfig={cluster.kubeconfig_path}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)


def ref(obj: dict[str, Any], namespace: str | None = None) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for a cluster-scoped object."""
    where = obj["metadata"].get("namespace") or namespace
    return "/".join([obj["kind"], *([where] if where else []), obj["metadata"]["name"]])


def in_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The objects of ``namespace``: what one namespace's install put there."""
    return [o for o in objects if o["metadata"].get("namespace") == namespace]


def missing(admin: client.ApiClient, objects: list[dict[str, Any]], namespace: str | None = None) -> list[str]:
    """The :func:`ref` of each object the server no longer has, or is deleting."""
    discovery = Discovery(admin)
    gone = []
    for obj in objects:
        try:
            path = object_path(discovery, obj, namespace)
        except LookupError:  # the server no longer serves the kind: its CRD is gone
            gone.append(f"{ref(obj, namespace)} (kind not served)")
            continue
        try:
            live = request(admin, "GET", path)
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            gone.append(ref(obj, namespace))
            continue
        if live["metadata"].get("deletionTimestamp"):
            gone.append(f"{ref(obj, namespace)} (being deleted)")
    return gone


@pytest.fixture
def admin(kube_cluster: KubeCluster) -> Iterator[client.ApiClient]:
    api = kube_cluster.admin_api_client()
    yield api
    # Should the uninstall have taken the cluster's part with it, put it back for the tests that follow: the CRDs
    # (awaited until Established), then the policies.
    crds = [o for o in cluster_scoped() if o["kind"] == "CustomResourceDefinition"]
    if missing(api, cluster_scoped()):
        install_crds(api, crds)
        apply_manifest_objects(api, [o for o in cluster_scoped() if o["kind"] != "CustomResourceDefinition"])


def test_uninstalling_one_namespace_leaves_the_other_namespace_the_crds_the_records_and_the_policies(
    kube_cluster: KubeCluster, admin: client.ApiClient, make_namespace: Callable[..., str], tmp_path: Path
) -> None:
    first, second = make_namespace("uninstall-a"), make_namespace("uninstall-b")
    installed = {namespace: install(admin, namespace) for namespace in (first, second)}
    custom = [blue_green("cart", router="service"), record("cart")]
    for namespace in (first, second):
        apply_manifest_objects(admin, custom, namespace=namespace)
    out = tmp_path / "rendered"
    assert render.main(["--namespace", first, "--out", str(out)]) == 0
    shared = cluster_scoped()
    assert missing(admin, shared) == [], "the cluster's part was not installed to begin with"

    command = [arg.format(render=out) for arg in UNINSTALL_ONE_NAMESPACE]
    done = kubectl(kube_cluster, *command)
    assert done.returncode == 0, f"kubectl {' '.join(command)}: {done.stderr}"

    # The first namespace's install is gone: its ServiceAccount, Role, RoleBinding, templates and CronWorkflow.
    first_part = in_namespace(installed[first], first)
    assert {o["kind"] for o in first_part} >= {"ServiceAccount", "Role", "RoleBinding", "WorkflowTemplate"}
    gone = missing(admin, first_part)
    assert [ref(o) for o in first_part if ref(o) not in gone] == [], done.stdout
    # Nothing else is: every finding is listed, so a failure says all that the uninstall took with it.
    kept = {
        "the other namespace's install": missing(admin, in_namespace(installed[second], second)),
        "the CRDs": missing(admin, [o for o in shared if o["kind"] == "CustomResourceDefinition"]),
        f"{first}'s custom resources": missing(admin, custom, first),
        f"{second}'s custom resources": missing(admin, custom, second),
        "the admission policies": missing(admin, [o for o in shared if o["kind"] != "CustomResourceDefinition"]),
    }
    lost = {what: gone for what, gone in kept.items() if gone}
    summary = "; ".join(
        f"{what}: {len(gone)} gone ({', '.join(gone[:2])}{', ...' if len(gone) > 2 else ''})"
        for what, gone in lost.items()
    )
    assert lost == {}, f"uninstalling {first} took other objects with it: {summary}"
