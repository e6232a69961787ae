"""The install's two parts: the cluster's, applied once by an administrator, and each namespace's own.

The CRDs and the admission policies are cluster-scoped and shared by every namespace argo-bluegreen is installed in:
deleting the CRDs deletes every namespace's BlueGreenDeployments and DeploymentRecords (the audit trail), and
deleting the policies lifts the confinement of every namespace's ServiceAccount. So they have a kustomization of
their own, ``cluster/``, and the main kustomization lists only namespaced objects: ``kubectl delete -k rendered/`` in
one namespace removes that namespace's part and nothing another namespace relies on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipelines.manifests import render_all
from pipelines.settings import RenderSettings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CLUSTER = "cluster"

#: Every kind argo-bluegreen installs, by the scope Kubernetes gives it. A kind in neither set fails the tests below
#: until it is classified here, so a new cluster-scoped kind cannot slip into the per-namespace part.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterWorkflowTemplate",
        "Namespace",
    }
)
NAMESPACED_KINDS = frozenset(
    {"ServiceAccount", "Role", "RoleBinding", "WorkflowTemplate", "CronWorkflow", "ConfigMap", "PrometheusRule"}
)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` applies: its kustomization's resources, directories followed."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        if path.is_dir():
            objects += kustomize(path)
        else:
            objects += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return objects


def ref(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_main_kustomization_installs_only_namespaced_objects_of_the_rendered_namespace() -> None:
    objects = kustomize(MANIFESTS)
    assert [ref(o) for o in objects if o["kind"] in CLUSTER_SCOPED_KINDS] == [], (
        "cluster-scoped objects in manifests/kustomization.yaml: `kubectl delete -k rendered/` in one namespace "
        "would delete them for every namespace"
    )
    assert [ref(o) for o in objects if o["kind"] not in NAMESPACED_KINDS] == [], "classify these kinds above"
    # Each names the render's namespace (default apps), so applying or deleting the part touches that one only.
    assert {ref(o): o["metadata"].get("namespace") for o in objects} == {ref(o): "apps" for o in objects}
    assert {o["kind"] for o in objects} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "WorkflowTemplate",
        "CronWorkflow",
    }


def test_the_cluster_kustomization_holds_the_crds_policies_and_aggregated_roles_and_nothing_namespaced() -> None:
    objects = kustomize(MANIFESTS / CLUSTER)
    assert [ref(o) for o in objects if o["kind"] not in CLUSTER_SCOPED_KINDS] == []
    assert [ref(o) for o in objects if "namespace" in o["metadata"]] == []
    assert {o["kind"] for o in objects} == {
        "ClusterRole",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    # Each ClusterRole only adds to a user-facing role of Kubernetes: bound to nobody, aggregated into one.
    roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert sorted(label for r in roles for label in r["metadata"]["labels"] if "aggregate-to-" in label) == [
        f"rbac.authorization.k8s.io/aggregate-to-{to}" for to in ("admin", "edit", "view")
    ]
    crds = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert crds == ["bluegreendeployments.argo-bluegreen.io", "deploymentrecords.argo-bluegreen.io"]
    # Applied in order: a policy whose params are BlueGreenDeployments comes after the CRD that defines them.
    assert [o["kind"] for o in objects[:2]] == ["CustomResourceDefinition"] * 2


def test_the_cluster_part_is_the_same_whatever_namespace_a_render_is_for() -> None:
    """Any namespace's render can install or upgrade the cluster's part: they are the same bytes."""

    def cluster_files(namespace: str) -> dict[str, str]:
        return {
            m.path: m.text()
            for m in render_all(RenderSettings(namespace=namespace))
            if m.path.startswith(f"{CLUSTER}/")
        }

    payments = cluster_files("payments")
    assert f"{CLUSTER}/kustomization.yaml" in payments
    assert payments == cluster_files("apps") == cluster_files("shop")


def _commands(text: str) -> list[str]:
    """Every `kubectl apply|delete ... -k DIR` of a document, in order, with ``DIR`` normalised to end in ``/``."""
    found = re.findall(r"kubectl (apply|delete)\b[^\n`]*?-k (\S+?)/?(?=[\s`]|$)", text)
    return [f"{verb} -k {directory}/" for verb, directory in found]


def test_the_docs_install_the_cluster_part_first_and_uninstall_it_last() -> None:
    readme = _commands((REPO / "README.md").read_text())
    assert readme[:2] == ["apply -k manifests/cluster/", "apply -k manifests/"], readme
    assert "apply -k rendered/cluster/" in readme, readme
    assert readme.index("apply -k rendered/cluster/") < readme.index("apply -k rendered/"), readme
    install = _commands((REPO / "docs" / "install.md").read_text())
    assert install.index("apply -k rendered/cluster/") < install.index("apply -k rendered/"), install
    text = (REPO / "docs" / "operations" / "uninstall.md").read_text()
    uninstall = _commands(text)
    assert uninstall.index("delete -k rendered/") < uninstall.index("delete -k rendered/cluster/"), uninstall
    # The command tests/integration/test_uninstall.py runs on the real API server (UNINSTALL_ONE_NAMESPACE).
    assert "kubectl delete -k rendered/ --ignore-not-found" in text
