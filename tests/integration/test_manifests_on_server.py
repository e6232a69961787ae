"""Every rendered manifest against the real API server: Argo's CRDs (with their CEL rules), Istio's and our own."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from pipelines.lint.argo_schema import ArgoSchema
from pipelines.lint.documents import Document
from testenv.apply import ApplyError, apply_manifest_objects
from testenv.cluster import KubeCluster
from tests.integration.installation import cluster_scoped, ensure_crds, rendered

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin(kube_cluster: KubeCluster) -> client.ApiClient:
    api = kube_cluster.admin_api_client()
    ensure_crds(api)
    return api


def test_every_rendered_manifest_passes_server_side_dry_run(
    admin: client.ApiClient, make_namespace: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = make_namespace("dry")
    # Both parts of the install: the cluster's (CRDs, admission policies) and the namespace's.
    shared, own = cluster_scoped(), rendered(namespace)
    results = apply_manifest_objects(admin, [*shared, *own], dry_run=True, stop_on_error=False)
    rejected = [str(r.error) for r in results if r.error is not None]
    assert rejected == []
    assert sorted({o["kind"] for o in shared}) == [
        "ClusterRole",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert sorted({o["kind"] for o in own}) == [
        "CronWorkflow",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "WorkflowTemplate",
    ]
    kinds = sorted({o["kind"] for o in [*shared, *own]})
    with capsys.disabled():
        print(f"\nserver-side dry-run accepted {len(results)} rendered objects: {', '.join(kinds)}")


def _template(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in document["spec"]["templates"] if t["name"] == name)


@pytest.mark.parametrize(
    ("kind", "plant", "server_says"),
    [
        ("CronWorkflow", lambda d: d["spec"].update(schedules=[]), "schedules"),
        ("CronWorkflow", lambda d: d["spec"].update(startingDeadlineSeconds=-1), "startingDeadlineSeconds"),
        ("WorkflowTemplate", lambda d: d["spec"]["templates"][0].update(name="Not_A_Name"), "name"),
        (
            "WorkflowTemplate",
            lambda d: (
                _template(d, "probe")["retryStrategy"].update(retryPolicy="Sometimes")
                if "retryStrategy" in _template(d, "probe")
                else _template(d, "probe").update(retryStrategy={"retryPolicy": "Sometimes"})
            ),
            "retryPolicy",
        ),
    ],
)
def test_planted_invalid_argo_object_is_rejected_with_the_servers_message(
    admin: client.ApiClient,
    make_namespace: Callable[..., str],
    kind: str,
    plant: Callable[[dict[str, Any]], Any],
    server_says: str,
) -> None:
    namespace = make_namespace("bad")
    document = copy.deepcopy(next(o for o in rendered(namespace) if o["kind"] == kind))
    plant(document)
    with pytest.raises(ApplyError) as caught:
        apply_manifest_objects(admin, [document], dry_run=True)
    assert caught.value.status == 422
    assert server_says in caught.value.message


def test_rendered_argo_objects_validate_strictly_against_argos_schema(argo_schema_path: Path) -> None:
    schema = ArgoSchema(argo_schema_path)
    documents = [
        Document(str(p), yaml.safe_load(p.read_text()))
        for p in sorted((REPO / "manifests" / "workflows").glob("*.yaml"))
    ]
    assert [str(f) for d in documents for f in schema.check(d)] == []
    planted = copy.deepcopy(next(d.body for d in documents if d.kind == "WorkflowTemplate"))
    planted["spec"]["synchronization"] = {"mutex": {"name": "v3-style"}}
    findings = schema.check(Document("planted.yaml", planted))
    assert any("mutex" in f.message and "Additional properties" in f.message for f in findings), findings


def seed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "examples" / "user-service.yaml").read_text())
    return document


def test_seed_example_is_accepted_and_defaulted_by_the_server(
    admin: client.ApiClient, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace("seed")
    [result] = apply_manifest_objects(admin, [seed()], namespace=namespace)
    stored = result.obj
    assert stored["spec"]["replicas"] == 3
    assert stored["spec"]["healthCheck"]["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    # Defaults from the model reach the server through the CRD schema.
    assert stored["spec"]["traffic"]["router"] == "istio"
    assert stored["spec"]["historyLimit"] == 20
    assert stored["spec"]["smokeTests"][0]["expectedStatus"] == ["2xx"]


@pytest.mark.parametrize(
    ("change", "server_says"),
    [
        ({"healthCheck": {"httpGet": {"path": "/health", "port": 70000}}}, "spec.healthCheck.httpGet.port"),
        ({"retainPreviousVersion": "1 hour"}, "spec.retainPreviousVersion"),
        ({"traffic": {"router": "nginx"}}, "spec.traffic.router"),
        ({"smokeTests": [{"name": "Bad_Name", "endpoint": "/x"}]}, "spec.smokeTests[0].name"),
        ({"healthCheck": {"httpGet": {"port": 8080}, "failureThreshold": 0}}, "spec.healthCheck.failureThreshold"),
    ],
)
def test_bad_specs_are_rejected_by_the_crd_schema(
    admin: client.ApiClient, make_namespace: Callable[..., str], change: dict[str, Any], server_says: str
) -> None:
    namespace = make_namespace("badspec")
    document = seed()
    document["spec"].update(change)
    with pytest.raises(ApplyError) as caught:
        apply_manifest_objects(admin, [document], namespace=namespace, dry_run=True)
    assert caught.value.status == 422
    assert server_says in caught.value.message
