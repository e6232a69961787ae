"""Proves the test cluster is the real thing: version, RBAC, concurrency, CRDs, controllers, node agent, Services.

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

from bluegreen_version import __version__
from testenv.node.images import STEPS_REPOSITORY
from testenv.pytest_plugin import ApplyError, KubeCluster, apply_manifest_objects
from testenv.rest import KubeApiError, request
from tests.integration.service_helpers import IMAGE_MISSING, demo_app

pytestmark = pytest.mark.controlplane

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Retry ``fn`` until it stops raising, then raise its last error; caches and controllers catch up asynchronously.

    A bounded poll: none of the states awaited here has one watchable signal (a condition on one object, the Pods of
    another, the node agent's view of a third).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        # Not there yet: an object not created, a list still short (unpacking), a status field not yet written.
        except (ApiException, KubeApiError, AssertionError, ValueError, KeyError):
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
    # The only ConfigMap a new namespace holds is the one the root-CA publisher controller puts in every namespace.
    assert {item.metadata.name for item in listing.items if item.metadata} <= {"kube-root-ca.crt"}
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


#: Deployments here wait on real Pods of a busy node: generous, and only ever spent when something is broken.
ROLLOUT_SECONDS = 120.0


def _deployment(
    name: str, image: str = demo_app("v1"), replicas: int = 2, progress_deadline_seconds: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
                    }
                ],
            },
        },
    }
    if progress_deadline_seconds is not None:
        spec["progressDeadlineSeconds"] = progress_deadline_seconds
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def _conditions(dep: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in (dep.get("status") or {}).get("conditions", [])}


def _pods(api: client.ApiClient, ns: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = request(
        api, "GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"app={app}"}
    )["items"]
    return items


def _live_pods(api: client.ApiClient, ns: str, app: str) -> list[dict[str, Any]]:
    return [p for p in _pods(api, ns, app) if not p["metadata"].get("deletionTimestamp")]


def _waiting_reasons(pods: list[dict[str, Any]]) -> set[str]:
    return {
        ((c.get("state") or {}).get("waiting") or {}).get("reason", "")
        for p in pods
        for c in (p.get("status") or {}).get("containerStatuses") or []
    }


def _deployment_state(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    dep: dict[str, Any] = request(api, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    assert (dep.get("status") or {}).get("observedGeneration") == dep["metadata"]["generation"]
    return dep


def test_real_controllers_roll_deployments_out(kube_cluster: KubeCluster, make_namespace: Callable[..., str]) -> None:
    api = kube_cluster.admin_api_client()
    ns = make_namespace("deploy")
    apply_manifest_objects(api, [_deployment("good")], namespace=ns)

    def available(image: str) -> dict[str, Any]:
        dep = _deployment_state(api, ns, "good")
        assert dep["status"].get("availableReplicas") == dep["status"].get("updatedReplicas") == 2
        assert dep["status"].get("replicas") == 2
        assert _conditions(dep) == {
            "Available": ("True", "MinimumReplicasAvailable"),
            "Progressing": ("True", "NewReplicaSetAvailable"),
        }
        pods = _live_pods(api, ns, "good")
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {image}
        assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in pods)
        return dep

    first = eventually(lambda: available(demo_app("v1")), ROLLOUT_SECONDS)
    # The replicaset controller made the Pods, the scheduler bound them and the node agent runs them.
    [owner] = _live_pods(api, ns, "good")[0]["metadata"]["ownerReferences"]
    assert owner["kind"] == "ReplicaSet" and owner["name"].startswith("good-")

    # A new image is a new rollout: a new ReplicaSet, and the old Pods serve until the new ones are ready.
    apply_manifest_objects(api, [_deployment("good", image=demo_app("v2"))], namespace=ns)
    second = eventually(lambda: available(demo_app("v2")), ROLLOUT_SECONDS)
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    sets = request(api, "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
    assert sorted(int(r["spec"]["replicas"]) for r in sets) == [0, 2]

    # Scale to zero: no Pods, nothing available, and still "Available", as the real controller says.
    apply_manifest_objects(api, [_deployment("good", image=demo_app("v2"), replicas=0)], namespace=ns)

    def scaled_to_zero() -> None:
        dep = _deployment_state(api, ns, "good")
        assert dep["status"].get("availableReplicas", 0) == 0
        assert _conditions(dep)["Available"] == ("True", "MinimumReplicasAvailable")
        assert _pods(api, ns, "good") == []

    eventually(scaled_to_zero, ROLLOUT_SECONDS)


def test_pods_that_never_become_ready_report_the_kubelets_reasons(
    kube_cluster: KubeCluster, make_namespace: Callable[..., str]
) -> None:
    api = kube_cluster.admin_api_client()
    ns = make_namespace("stuck")
    apply_manifest_objects(
        api,
        [
            _deployment("hang", image=demo_app("v1-never-ready"), replicas=1),
            _deployment("pull", image=IMAGE_MISSING, replicas=1),
            _deployment("stuck", image=demo_app("v1-never-ready"), progress_deadline_seconds=3),
        ],
        namespace=ns,
    )

    def hang_runs_unready() -> None:
        dep = _deployment_state(api, ns, "hang")
        assert _conditions(dep) == {
            "Available": ("False", "MinimumReplicasUnavailable"),
            "Progressing": ("True", "ReplicaSetUpdated"),
        }
        [pod] = _pods(api, ns, "hang")
        [container] = pod["status"]["containerStatuses"]
        assert pod["status"]["phase"] == "Running" and "running" in container["state"]
        assert container["ready"] is False
        ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")

    def image_pull_backs_off() -> None:
        [pod] = _pods(api, ns, "pull")
        assert _waiting_reasons([pod]) == {"ImagePullBackOff"}
        assert pod["status"]["phase"] == "Pending"

    def deadline_exceeded() -> None:
        dep = _deployment_state(api, ns, "stuck")
        assert _conditions(dep) == {
            "Available": ("False", "MinimumReplicasUnavailable"),
            "Progressing": ("False", "ProgressDeadlineExceeded"),
        }
        assert dep["status"]["unavailableReplicas"] == 2
        progressing = {c["type"]: c for c in dep["status"]["conditions"]}["Progressing"]
        assert "has timed out progressing" in progressing["message"]

    # The kubelet's first answer to a missing image is ErrImagePull, for a few seconds; the back-off it then holds is
    # ImagePullBackOff. Looking from the start, at every turn, sees both.
    pulls: set[str] = set()

    def pull_seen() -> None:
        pulls.update(_waiting_reasons(_pods(api, ns, "pull")))
        image_pull_backs_off()

    eventually(pull_seen, ROLLOUT_SECONDS)
    assert "ErrImagePull" in pulls, pulls
    eventually(hang_runs_unready, ROLLOUT_SECONDS)
    eventually(deadline_exceeded, ROLLOUT_SECONDS)
    # The deployment controller gave up; the Pods stay, running and unready, as a kubelet leaves them.
    assert len(_pods(api, ns, "stuck")) == 2


def test_a_crashing_app_goes_into_crash_loop_back_off(
    kube_cluster: KubeCluster, make_namespace: Callable[..., str]
) -> None:
    api = kube_cluster.admin_api_client()
    ns = make_namespace("crash")
    apply_manifest_objects(api, [_deployment("crash", image=demo_app("v1-crash"), replicas=1)], namespace=ns)

    def crash_looping() -> None:
        [pod] = _pods(api, ns, "crash")
        [container] = pod["status"]["containerStatuses"]
        assert container["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        assert container["restartCount"] >= 1
        assert container["lastState"]["terminated"]["exitCode"] == 1

    eventually(crash_looping, ROLLOUT_SECONDS)
    dep = _deployment_state(api, ns, "crash")
    assert _conditions(dep)["Available"] == ("False", "MinimumReplicasUnavailable")


#: Run in a Pod: call the API server through the `kubernetes` Service's DNS name with the Pod's own projected token,
#: as in-cluster clients do. Exits 0 only on an answer from the API server.
IN_CLUSTER_CALL = """
import json, ssl, sys, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version", headers={"Authorization": f"Bearer {token}"})
version = json.load(urllib.request.urlopen(req, timeout=10, context=context))["gitVersion"]
print(version)
sys.exit(0 if version.startswith("v1.") else 1)
"""


def test_the_kubernetes_service_is_reachable_from_a_pod(
    kube_cluster: KubeCluster, make_namespace: Callable[..., str]
) -> None:
    api = kube_cluster.admin_api_client()
    ns = make_namespace("incluster")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "caller"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "call",
                    # The steps image the cluster pulls (the one make image built), with its own Python.
                    "image": f"{STEPS_REPOSITORY}:{__version__}",
                    "command": ["python3", "-c", IN_CLUSTER_CALL],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }
    # The ServiceAccount admission plugin mounts the token of the `default` ServiceAccount, which the real
    # serviceaccount controller creates in every new namespace: wait for it as kubectl users implicitly do.
    eventually(lambda: request(api, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default"), ROLLOUT_SECONDS)
    request(api, "POST", f"/api/v1/namespaces/{ns}/pods", body=pod)

    def finished() -> dict[str, Any]:
        live = request(api, "GET", f"/api/v1/namespaces/{ns}/pods/caller")
        assert live["status"]["phase"] in {"Succeeded", "Failed"}
        return dict(live)

    done = eventually(finished, ROLLOUT_SECONDS)
    [container] = done["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (done["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated.get("message")
    volumes = {v["name"] for v in done["spec"]["volumes"]}
    assert any(name.startswith("kube-api-access-") for name in volumes), volumes
