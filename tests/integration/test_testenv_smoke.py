"""Proves the test control plane is the real thing: version, RBAC, concurrency, CRDs, stand-in.

If any of these fail, every other control-plane test result is suspect, so they run first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from testenv.pytest_plugin import ApplyError, KubeCluster, apply_manifest_objects
from testenv.rest import request
from testenv.stand_in import DeploymentStandIn

pytestmark = pytest.mark.controlplane

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Retry ``fn`` until it stops raising; RBAC and discovery caches catch up asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (ApiException, AssertionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_server_reports_pinned_version(kube_cluster: KubeCluster) -> None:
    pinned = json.loads(kube_cluster.artifacts.versions_file.read_text())["k8s.io/kubernetes"]
    info = client.VersionApi(kube_cluster.admin_api_client()).get_code()
    if kube_cluster.local:
        assert info.git_version == pinned == "v1.37.2"
    assert kube_cluster.kubeconfig_path.is_file()
    assert kube_cluster.server.startswith("https://")


def test_rbac_is_enforced_for_impersonated_service_account(
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    impersonating_client: Callable[[str, str], client.ApiClient],
) -> None:
    ns = make_namespace("rbac")
    sa_api = impersonating_client(ns, "deployer")
    # Every group must arrive as its own header line; system:authenticated is what lets the SA
    # ask who it is at all (system:basic-user).
    review = request(
        sa_api,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    user = review["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{ns}:deployer"
    assert set(user["groups"]) == {"system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"}
    as_sa = client.CoreV1Api(sa_api)
    with pytest.raises(ApiException) as denied:
        as_sa.list_namespaced_config_map(ns)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{ns}:deployer" in str(denied.value.body)

    rbac = client.RbacAuthorizationV1Api(kube_cluster.admin_api_client())
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="deployer-reads"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="deployer", namespace=ns)],
        ),
    )
    listing = eventually(lambda: as_sa.list_namespaced_config_map(ns))
    assert listing.items == []
    # Still nothing beyond what the Role grants.
    with pytest.raises(ApiException) as still_denied:
        as_sa.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert still_denied.value.status == 403


def test_stale_resource_version_conflicts(kube_cluster: KubeCluster, make_namespace: Callable[..., str]) -> None:
    ns = make_namespace("conflict")
    core = client.CoreV1Api(kube_cluster.admin_api_client())
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"v": "1"}))
    stale = core.read_namespaced_config_map("cm", ns)
    fresh = core.read_namespaced_config_map("cm", ns)
    fresh.data = {"v": "2"}
    core.replace_namespaced_config_map("cm", ns, fresh)
    stale.data = {"v": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cm", ns, stale)
    assert conflict.value.status == 409


def test_third_party_crds_established_and_enforced(
    kube_cluster: KubeCluster, make_namespace: Callable[..., str]
) -> None:
    api = kube_cluster.admin_api_client()
    crds = request(api, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    established = {
        c["metadata"]["name"]
        for c in crds
        if any(x["type"] == "Established" and x["status"] == "True" for x in c["status"]["conditions"])
    }
    for name in (
        "workflowtemplates.argoproj.io",
        "workflows.argoproj.io",
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "httproutes.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
    ):
        assert name in established

    ns = make_namespace("argo")
    template: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": "a", "template": "noop"},
                            {"name": "b", "template": "noop", "depends": "a", "dependencies": ["a"]},
                        ]
                    },
                },
                {"name": "noop", "container": {"image": "busybox"}},
            ],
        },
    }
    with pytest.raises(ApplyError) as rejected:
        apply_manifest_objects(api, [template], dry_run=True)
    assert rejected.value.status == 422
    assert "cannot use both 'depends' and 'dependencies'" in rejected.value.message

    del template["spec"]["templates"][0]["dag"]["tasks"][1]["dependencies"]
    [result] = apply_manifest_objects(api, [template], dry_run=True)
    assert result.obj["kind"] == "WorkflowTemplate"
    template["spec"]["entrypoint"] = 42
    with pytest.raises(ApplyError) as wrong_type:
        apply_manifest_objects(api, [template], dry_run=True)
    assert "spec.entrypoint" in wrong_type.value.message


def _deployment(name: str, image: str = "nginx:1", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def _conditions(dep: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in dep["status"].get("conditions", [])}


def _pods(api: client.ApiClient, ns: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = request(
        api, "GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"app={app}"}
    )["items"]
    return items


def test_stand_in_drives_deployments(
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    deployment_stand_in: DeploymentStandIn,
) -> None:
    api = kube_cluster.admin_api_client()
    ns = make_namespace("deploy")
    deployment_stand_in.behave(ns, "good", "available", delay_seconds=0.5)
    deployment_stand_in.behave(ns, "stuck", "progress-deadline-exceeded", waiting_reason="CrashLoopBackOff")
    deployment_stand_in.behave(ns, "hang", "never")
    apply_manifest_objects(
        api, [_deployment("good"), _deployment("stuck"), _deployment("hang", replicas=1)], namespace=ns
    )
    deployment_stand_in.wait_idle()

    apps = f"/apis/apps/v1/namespaces/{ns}/deployments"
    good = request(api, "GET", f"{apps}/good")
    assert good["status"]["observedGeneration"] == good["metadata"]["generation"]
    assert good["status"]["availableReplicas"] == 2
    assert good["status"]["updatedReplicas"] == 2
    assert _conditions(good) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    stuck = request(api, "GET", f"{apps}/stuck")
    assert _conditions(stuck) == {
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("False", "ProgressDeadlineExceeded"),
    }
    assert stuck["status"]["unavailableReplicas"] == 2
    pods = _pods(api, ns, "stuck")
    assert len(pods) == 2
    assert {p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] for p in pods} == {"CrashLoopBackOff"}

    hang = request(api, "GET", f"{apps}/hang")
    assert _conditions(hang) == {
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("True", "ReplicaSetUpdated"),
    }
    [hang_pod] = _pods(api, ns, "hang")
    assert hang_pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"

    # A new image is a new rollout: the old pods keep serving until the new ones are ready.
    apply_manifest_objects(api, [_deployment("good", image="nginx:2")], namespace=ns)
    deployment_stand_in.wait_idle()
    good = request(api, "GET", f"{apps}/good")
    assert good["status"]["observedGeneration"] == 2
    assert _conditions(good)["Progressing"] == ("True", "NewReplicaSetAvailable")
    pods = _pods(api, ns, "good")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
    assert all(p["status"]["phase"] == "Running" for p in pods)

    # Scale to zero: no pods, nothing available, and still "Available" as the real controller says.
    apply_manifest_objects(api, [_deployment("good", image="nginx:2", replicas=0)], namespace=ns)
    deployment_stand_in.wait_idle()
    good = request(api, "GET", f"{apps}/good")
    assert good["status"].get("availableReplicas", 0) == 0
    assert _conditions(good)["Available"] == ("True", "MinimumReplicasAvailable")
    assert _pods(api, ns, "good") == []
