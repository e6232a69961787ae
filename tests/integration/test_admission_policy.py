"""The ValidatingAdmissionPolicies, enforced by the real API server on the workflow ServiceAccount's writes.

RBAC lets the ServiceAccount write every Deployment, Service, NetworkPolicy, HPA, PDB and route of its namespace; the
rendered policies (installed with the rest of ``manifests/``) narrow that to the objects argo-bluegreen created, plus
the documented fields of the team's objects labelled for the service: the adoption of the original Deployment, the
slot pin in its Service and budget, its autoscaler's target and its routes' destinations. Here the whole cycle passes
for each router, the plain refusals, and what preflight does with objects the team did not lend;
``test_admission_attacks.py`` holds the hostile catalogue.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import bluegreen_spec as spec
from bluegreen_contract import ExitCode
from kubectl_bluegreen.commands import grant
from kubectl_bluegreen.connection import Cluster, Connection, Target
from pipelines.admission_policy import POLICY_PREFIX
from pipelines.settings import SERVICE_ACCOUNT
from steps.kube import Kube
from testenv.cluster import KubeCluster
from testenv.rest import ImpersonatingApiClient, KubeApiError, request
from tests.integration.service_helpers import (
    IMAGE_V2,
    IMAGE_V3,
    ServiceFactory,
    ServiceUnderTest,
    app_deployment,
    grant_identity,
    wait_authorized,
    wait_granted,
)
from tests.integration.test_emergency_route import run_route

pytestmark = pytest.mark.controlplane

#: How long the API server may take to load a newly created policy into its admission chain.
POLICY_LOAD_TIMEOUT_SECONDS = 30.0

DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICES = "/api/v1/namespaces/{ns}/services"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
OPT_IN = spec.OPT_IN_LABEL


def merge_patch(api: client.ApiClient, path: str, patch: dict[str, Any], *, dry_run: bool = False) -> None:
    """One JSON merge patch; a dry run goes through admission without being stored."""
    query = {"dryRun": "All"} if dry_run else None
    request(api, "PATCH", path, body=patch, content_type="application/merge-patch+json", query=query)


def refusal(action: Any) -> str:
    """The policy's refusal message for ``action``, which must be answered 403 by an admission policy."""
    with pytest.raises(KubeApiError) as caught:
        action()
    assert caught.value.status == 403, caught.value
    message = str(caught.value)
    assert POLICY_PREFIX in message or SERVICE_ACCOUNT in message, message
    return message


def wait_enforced(sut: ServiceUnderTest, api: client.ApiClient) -> None:
    """Return once the API server refuses a (dry-run) write to a team's object: the policies are loaded."""
    path = DEPLOYMENTS.format(ns=sut.namespace) + f"/{sut.name}"
    deadline = time.monotonic() + POLICY_LOAD_TIMEOUT_SECONDS
    while True:
        try:
            merge_patch(api, path, {"metadata": {"labels": {"claimed": "yes"}}}, dry_run=True)
        except KubeApiError as exc:
            if exc.status == 403:
                return
            raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"the admission policies were not enforced within {POLICY_LOAD_TIMEOUT_SECONDS} s")
        time.sleep(0.2)


def test_the_steps_whole_cycle_passes_the_policies(make_service: ServiceFactory, tmp_path: Path) -> None:
    for router in ("istio", "service", "gateway-api"):
        sut = make_service("vap", router=router)
        wait_enforced(sut, sut.steps_api)
        # Adoption (annotate and scale the original, pin the Service), two deploys, a rollback, the cleanup, a repair,
        # a route and a deploy after it. Manual promotion writes only records, which no policy concerns.
        sut.deploy(IMAGE_V2, "wf-1", tmp_path / router / "1")
        sut.deploy(IMAGE_V3, "wf-2", tmp_path / router / "2", cleanup=False)
        # An operator's emergency route back to the retained slot (a person's rights, not the ServiceAccount's), and
        # a deploy after it: the objects the route left are still the ServiceAccount's to write.
        live = sut.live_slot()
        assert live is not None
        assert run_route(sut, sut.admin_kube, live.other) == 0
        assert sut.live_slot() is live.other
        sut.deploy(IMAGE_V3, "wf-3", tmp_path / router / "3")
        assert sut.run_manual_rollback("wf-back") == 0
        assert sut.run_cleanup(all_services=True) == 0
        # A run whose workflow is gone mid-deploy, repaired by the sweep.
        target, record = sut.preflight(IMAGE_V2, "wf-gone", tmp_path / router / "gone")
        assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
        assert sut.run_cleanup(all_services=True) == 0
        assert sut.record(record)["status"].get("finishedAt"), "the sweep did not repair the abandoned run"
        original = sut.deployment(sut.name)
        assert original is not None and original["spec"]["replicas"] == 0
        assert original["metadata"]["annotations"][spec.ADOPTED_ANNOTATION] == f"{sut.name}-blue"


def test_slots_copy_the_identity_and_secrets_of_the_teams_deployment(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """The other side of ``slot-identity``: what the team's own Deployment runs as and reads, its slots may too.

    A team whose pods run as their own ServiceAccount without an automounted token and read a Secret through a
    volume, a projection, ``envFrom`` and a pull secret: the policies must let the steps' copies of that template
    through, or a real team could never be adopted.
    """
    sut = make_service("vap-identity")
    secrets = ("cart-db", "cart-tls", "cart-registry")
    # The namespace grants the deployer what the team's pods use (docs/reference/rbac.md).
    grant_identity(sut.admin, sut.namespace, sut.name, service_accounts=["cart-sa"], secrets=list(secrets))
    sut.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cart-sa"}},
        *(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"key": "value"}}
            for name in secrets
        ),
    )
    pod = {
        "serviceAccountName": "cart-sa",
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "cart-registry"}],
        "volumes": [
            {"name": "db", "secret": {"secretName": "cart-db"}},
            {"name": "tls", "projected": {"sources": [{"secret": {"name": "cart-tls"}}]}},
        ],
    }
    path = DEPLOYMENTS.format(ns=sut.namespace) + f"/{sut.name}"
    team = request(sut.admin, "GET", path)
    team["spec"]["template"]["spec"].update(pod)
    [container] = team["spec"]["template"]["spec"]["containers"]
    container["envFrom"] = [{"secretRef": {"name": "cart-db"}}]
    container["volumeMounts"] = [{"name": "db", "mountPath": "/db"}, {"name": "tls", "mountPath": "/tls"}]
    request(sut.admin, "PUT", path, body=team)
    sut.wait_settled()
    wait_enforced(sut, sut.steps_api)

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2")

    for slot in spec.Slot:
        deployment = sut.deployment(f"{sut.name}-{slot.value}")
        assert deployment is not None, slot
        template = deployment["spec"]["template"]["spec"]
        identity = {key: template.get(key) for key in ("serviceAccountName", "automountServiceAccountToken")}
        assert identity == {"serviceAccountName": "cart-sa", "automountServiceAccountToken": False}, template
        assert template["imagePullSecrets"] == [{"name": "cart-registry"}], template
        db, tls = template["volumes"]
        assert db["secret"]["secretName"] == "cart-db", template
        assert tls["projected"]["sources"] == [{"secret": {"name": "cart-tls"}}], template
        assert template["containers"][0]["envFrom"] == [{"secretRef": {"name": "cart-db"}}], template


def test_writes_to_the_teams_objects_are_refused(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("vap")
    steps_api = sut.steps_api
    wait_enforced(sut, steps_api)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    other = app_deployment("payments", IMAGE_V2, replicas=1)
    deny_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    sut.apply(other, deny_all)
    ns = sut.namespace
    payments = DEPLOYMENTS.format(ns=ns) + "/payments"
    main = SERVICES.format(ns=ns) + f"/{sut.name}"
    original = DEPLOYMENTS.format(ns=ns) + f"/{sut.name}"

    refused = {
        "another team's Deployment": refusal(
            lambda: merge_patch(steps_api, payments, {"spec": {"replicas": 5}}, dry_run=True)
        ),
        "claiming a Deployment by labelling it": refusal(
            lambda: merge_patch(steps_api, payments, {"metadata": {"labels": {spec.SERVICE_LABEL: "payments"}}})
        ),
        "deleting a team's Deployment": refusal(lambda: request(steps_api, "DELETE", payments)),
        "changing the adopted original's image": refusal(
            lambda: merge_patch(
                steps_api,
                original,
                {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_V3}]}}}},
            )
        ),
        "scaling the adopted original up": refusal(
            lambda: merge_patch(steps_api, original, {"spec": {"replicas": 3}})
        ),
        "another selector key in the team's Service": refusal(
            lambda: merge_patch(steps_api, main, {"spec": {"selector": {"tier": "canary"}}})
        ),
        "a slot that does not exist": refusal(
            lambda: merge_patch(steps_api, main, {"spec": {"selector": {spec.SLOT_LABEL: "purple"}}})
        ),
        "the team's Service ports": refusal(
            lambda: merge_patch(
                steps_api, main, {"spec": {"ports": [{"name": "http", "port": 81, "targetPort": 8080}]}}
            )
        ),
        "deleting the team's Service": refusal(lambda: request(steps_api, "DELETE", main)),
        "deleting the team's NetworkPolicy": refusal(
            lambda: request(steps_api, "DELETE", POLICIES.format(ns=ns) + "/default-deny")
        ),
        "an unlabelled NetworkPolicy": refusal(
            lambda: request(
                steps_api,
                "POST",
                POLICIES.format(ns=ns),
                body={**deny_all, "metadata": {"name": "allow-all"}, "spec": {"podSelector": {}, "ingress": [{}]}},
            )
        ),
    }
    assert all(SERVICE_ACCOUNT in message for message in refused.values()), refused
    # Nothing of the team's changed, and an administrator is not bound by the policies at all.
    stored = sut.deployment("payments")
    assert stored is not None and stored["spec"]["replicas"] == 1
    assert spec.SERVICE_LABEL not in stored["metadata"].get("labels", {})
    selector = request(sut.admin, "GET", main)["spec"]["selector"]
    assert selector.get(spec.SLOT_LABEL) == "green" and "tier" not in selector
    merge_patch(sut.admin, payments, {"spec": {"replicas": 2}}, dry_run=True)
    assert sut.live_slot() is spec.Slot.green


def test_preflight_names_the_labels_a_run_needs_before_any_write(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("vap")
    # The team takes its Service back: nothing of the service may be adopted or routed until it lends it again.
    merge_patch(
        sut.admin, SERVICES.format(ns=sut.namespace) + f"/{sut.name}", {"metadata": {"labels": {OPT_IN: None}}}
    )
    capsys.readouterr()
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert f"kubectl -n {sut.namespace} label service {sut.name} {OPT_IN}={sut.name}" in err, err
    assert sut.records() == [] and sut.deployment(f"{sut.name}-blue") is None
    original = sut.deployment(sut.name)
    assert original is not None and spec.ADOPTED_ANNOTATION not in original["metadata"].get("annotations", {})
    # Lent again, the same run goes through.
    merge_patch(
        sut.admin, SERVICES.format(ns=sut.namespace) + f"/{sut.name}", {"metadata": {"labels": {OPT_IN: sut.name}}}
    )
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path) == 0


def _namespace_admin(kube_cluster: KubeCluster, namespace: str, user: str) -> Kube:
    """A client acting as ``user``, bound to the built-in ``admin`` ClusterRole in ``namespace`` only."""
    admin = kube_cluster.admin_api_client()
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{user}-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    request(admin, "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", body=binding)
    # The aggregation controller adds our ClusterRole's rule to admin first.
    wait_authorized(
        admin, user, ["system:authenticated"], {"namespace": namespace, "verb": "use", "resource": "secrets"}, 60
    )
    client_as_user = ImpersonatingApiClient(kube_cluster.configuration(), user=user, groups=["system:authenticated"])
    return Kube(client_as_user)


def test_preflight_names_the_grants_a_teams_identity_needs_before_any_write(
    make_service: ServiceFactory, kube_cluster: KubeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A team whose pods run as their own ServiceAccount and read a Secret, in a namespace that granted neither: the
    run stops before its first write, naming each field, and the command it prints, run as written, lets it through.
    """
    sut = make_service("vap-grant")
    sut.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cart-sa"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cart-db"}, "stringData": {"key": "value"}},
    )
    path = DEPLOYMENTS.format(ns=sut.namespace) + f"/{sut.name}"
    team = request(sut.admin, "GET", path)
    team["spec"]["template"]["spec"]["serviceAccountName"] = "cart-sa"
    team["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "cart-db"}}]
    request(sut.admin, "PUT", path, body=team)
    sut.wait_settled()

    capsys.readouterr()
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    for named in (
        f"Deployment {sut.namespace}/{sut.name}",
        "spec.template.spec.serviceAccountName names ServiceAccount cart-sa",
        "spec.template.spec.containers[0].envFrom[0].secretRef.name names Secret cart-db",
    ):
        assert named in err, err
    assert sut.records() == [] and sut.deployment(f"{sut.name}-blue") is None
    original = sut.deployment(sut.name)
    assert original is not None and spec.ADOPTED_ANNOTATION not in original["metadata"].get("annotations", {})

    command = err.split("run again: ", 1)[1].strip()
    assert command == f"kubectl bluegreen grant {sut.name} -n {sut.namespace}", err
    # As the namespace's administrator, bound to the built-in admin ClusterRole, into which the install aggregates
    # the verb: RBAC refuses a Role that grants more than its author holds.
    admin_of_namespace = _namespace_admin(kube_cluster, sut.namespace, "alice")
    cluster = Cluster(Target(namespace=sut.namespace))
    cluster._connection = Connection(
        configuration=kube_cluster.configuration(), namespace=sut.namespace, context="", user="alice"
    )
    cluster._connection.kube = admin_of_namespace
    service = shlex.split(command)[3]
    assert grant.run(cluster, argparse.Namespace(service=service, dry_run=False)) == 0
    out = capsys.readouterr().out
    assert "ServiceAccount cart-sa, Secret cart-db" in out or "Secret cart-db, ServiceAccount cart-sa" in out, out
    wait_granted(sut.admin, sut.namespace, "serviceaccounts", "cart-sa")
    wait_granted(sut.admin, sut.namespace, "secrets", "cart-db")

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "deploy")
    green = sut.deployment(f"{sut.name}-green")
    assert green is not None and green["spec"]["template"]["spec"]["serviceAccountName"] == "cart-sa", green


def test_an_autoscaler_and_a_budget_the_team_did_not_lend_stay_where_they_are(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("vap")
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": sut.name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": sut.name},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": sut.name},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": sut.name}}},
    }
    sut.apply(autoscaler, budget)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path)
    hpa = request(
        sut.admin, "GET", f"/apis/autoscaling/v2/namespaces/{sut.namespace}/horizontalpodautoscalers/{sut.name}"
    )
    assert hpa["spec"]["scaleTargetRef"]["name"] == sut.name
    pdb = request(sut.admin, "GET", f"/apis/policy/v1/namespaces/{sut.namespace}/poddisruptionbudgets/{sut.name}")
    assert pdb["spec"]["selector"] == {"matchLabels": {"app": sut.name}}
    warnings = sut.record_messages("wf-1", "warning")
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert any(kind in w and f"{OPT_IN}={sut.name}" in w for w in warnings), warnings
