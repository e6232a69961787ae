"""A router whose APIs the cluster does not serve is refused by preflight before any write.

The session's cluster has the Istio and Gateway API CRDs, and they must stay there for every other test, so these
tests run on an API server of their own: a real etcd and kube-apiserver with only argo-bluegreen installed, as a
cluster is before anyone installs Istio or the Gateway API. No controllers run there: nothing needs them, since the
steps must stop before they would create anything a controller acts on.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from bluegreen_contract import (
    BLUE_GREEN_DEPLOYMENTS,
    DEPLOYMENT_RECORDS,
    DEPLOYMENTS,
    DESTINATION_RULES,
    EVENTS,
    SERVICES,
    ApiResource,
)
from pipelines.settings import SERVICE_ACCOUNT
from steps.errors import NotFound
from steps.kube import ApiRetryPolicy, Kube
from testenv.apply import apply_manifest_objects
from testenv.controlplane import ControlPlane
from testenv.crds import install_crds
from testenv.paths import Artifacts
from testenv.rest import ImpersonatingApiClient, request
from tests.integration.installation import cluster_scoped, our_crds, rendered
from tests.integration.service_helpers import (
    IMAGE_V1,
    IMAGE_V2,
    ServiceUnderTest,
    app_deployment,
    app_service,
    blue_green,
)

pytestmark = pytest.mark.controlplane

#: What a step may write while it runs; the tests compare their resourceVersions before and after.
WRITTEN_KINDS = (BLUE_GREEN_DEPLOYMENTS, DEPLOYMENT_RECORDS, DEPLOYMENTS, SERVICES, EVENTS)


class BareServer:
    """An API server with argo-bluegreen's CRDs and RBAC, and none of Argo's, Istio's or the Gateway API's."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(control_plane.kubeconfig_path), client_configuration=self.configuration
        )
        self.admin = client.ApiClient(self.configuration)
        self._clients: list[client.ApiClient] = [self.admin]
        install_crds(self.admin, our_crds())

    def service(self, router: str, **spec_fields: Any) -> ServiceUnderTest:
        """An unmanaged service ``cart`` in a new namespace, with the steps' ServiceAccount and Role installed.

        The Deployment is stored as the team applied it; no controller rolls it out, and none has to.
        """
        namespace = f"bare-{uuid.uuid4().hex[:8]}"
        request(self.admin, "POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        # The WorkflowTemplates and the CronWorkflow need Argo's CRDs; here the steps run in-process instead.
        objects = [
            copy.deepcopy(d)
            for d in [*cluster_scoped(), *rendered(namespace)]
            if d["kind"] != "CustomResourceDefinition" and not d["apiVersion"].startswith("argoproj.io/")
        ]
        apply_manifest_objects(self.admin, objects)
        steps_api = ImpersonatingApiClient.as_service_account(self.configuration, namespace, SERVICE_ACCOUNT)
        self._clients.append(steps_api)
        fast = ApiRetryPolicy(deadline_seconds=10.0)
        sut = ServiceUnderTest(
            namespace, "cart", self.admin, Kube(steps_api, retry=fast), Kube(self.admin, retry=fast)
        )
        sut.apply(app_deployment("cart", IMAGE_V1), app_service("cart"), blue_green("cart", router, **spec_fields))
        return sut

    def close(self) -> None:
        """Close the clients; the control plane is stopped by the fixture that started it."""
        for api in self._clients:
            api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def bare_server(testenv_artifacts: Artifacts) -> Iterator[BareServer]:
    """A control plane of its own for this module: about four seconds to start, and gone with the module."""
    control_plane = ControlPlane(testenv_artifacts)
    control_plane.start()
    try:
        server = BareServer(control_plane)
        try:
            yield server
        finally:
            server.close()
    finally:
        control_plane.stop()


def written_state(sut: ServiceUnderTest) -> dict[str, str]:
    """Every object a step could have written in the namespace, by kind and name, with its resourceVersion."""
    state: dict[str, str] = {}
    for kind in WRITTEN_KINDS:
        for item in sut.admin_kube.list(kind, sut.namespace):
            state[f"{kind.kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return state


def api_name(resource: ApiResource) -> str:
    """``plural.group/version``, as an error names an API the cluster lacks."""
    return f"{resource.plural}.{resource.group}/{resource.version}"


@pytest.mark.parametrize(
    ("router", "missing", "install", "instead"),
    [
        (
            "istio",
            ["virtualservices.networking.istio.io/v1", "destinationrules.networking.istio.io/v1"],
            "install Istio's CRDs",
            "service or gateway-api",
        ),
        (
            "gateway-api",
            ["httproutes.gateway.networking.k8s.io/v1"],
            "install the Gateway API CRDs",
            "service or istio",
        ),
    ],
)
def test_preflight_refuses_a_router_whose_apis_are_not_served_before_any_write(
    bare_server: BareServer,
    router: str,
    missing: list[str],
    install: str,
    instead: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sut = bare_server.service(router)
    before = written_state(sut)
    capsys.readouterr()

    code = sut.run_preflight(IMAGE_V2, "wf-first", out=tmp_path)

    err = capsys.readouterr().err
    assert code == 2, err
    assert f"BlueGreenDeployment {sut.namespace}/cart" in err
    assert f"spec.traffic.router: {router}" in err
    for api in missing:
        assert api in err
    assert install in err
    assert f"or choose spec.traffic.router: {instead}" in err
    # Nothing was written: no record, no status, no slot, no adoption, no Event.
    assert sut.steps_kube.writes_accepted == 0
    assert written_state(sut) == before
    assert sut.deployment("cart-blue") is None
    assert sut.records() == []
    assert "status" not in sut.bgd()


def test_a_write_to_a_kind_the_server_does_not_serve_names_that_kind(bare_server: BareServer) -> None:
    """The fallback hint, for a step that writes a router's object on a cluster that lost its CRDs later."""
    sut = bare_server.service("service")
    body = {
        "apiVersion": DESTINATION_RULES.api_version,
        "kind": DESTINATION_RULES.kind,
        "metadata": {"name": "cart-blue"},
        "spec": {"host": "cart-blue"},
    }
    with pytest.raises(NotFound) as refused:
        sut.admin_kube.apply(DESTINATION_RULES, sut.namespace, body)
    message = str(refused.value)
    assert api_name(DESTINATION_RULES) in message
    assert "does not serve" in message
    # manifests/cluster/crds holds argo-bluegreen's own CRDs: installing them again would not help.
    assert "manifests/cluster" not in message


def test_a_missing_object_of_a_served_kind_is_not_called_a_missing_kind(bare_server: BareServer) -> None:
    sut = bare_server.service("service")
    with pytest.raises(NotFound) as refused:
        sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "nothing-here", {"metadata": {"labels": {"a": "b"}}})
    message = str(refused.value)
    assert 'deployments.apps "nothing-here" not found' in message
    assert "does not serve" not in message


def test_discovery_refused_by_rbac_says_which_binding_grants_it(
    bare_server: BareServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Discovery is granted to every authenticated user by Kubernetes' own ``system:discovery`` binding.

    A cluster that took that binding away refuses the check with 403; the step must say so, not blame its Role.
    """
    sut = bare_server.service("istio")
    path = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    binding = request(bare_server.admin, "GET", f"{path}/system:discovery")
    request(bare_server.admin, "DELETE", f"{path}/system:discovery")
    try:
        before = written_state(sut)
        capsys.readouterr()
        code = sut.run_preflight(IMAGE_V2, "wf-first", out=tmp_path)
        err = capsys.readouterr().err
    finally:
        restored = {key: binding[key] for key in ("apiVersion", "kind", "roleRef", "subjects")}
        restored["metadata"] = {k: v for k, v in binding["metadata"].items() if k in ("name", "labels", "annotations")}
        request(bare_server.admin, "POST", path, body=restored)
    assert code == 1, err
    assert "403" in err
    assert "system:discovery" in err
    assert "/apis/networking.istio.io/v1" in err
    # Not the hint for a request the steps' own Role refuses: the Role grants no discovery, and needs none.
    assert "manifests/rbac" not in err
    assert sut.steps_kube.writes_accepted == 0
    assert written_state(sut) == before


def test_the_steps_service_account_may_read_discovery_without_a_grant_of_its_own(bare_server: BareServer) -> None:
    """The Role grants no discovery: the check relies on ``system:discovery``, bound to every authenticated user."""
    sut = bare_server.service("service")
    assert sut.steps_kube.discover("apps", "v1") is not None
    assert "deployments" in (sut.steps_kube.discover("apps", "v1") or set())
    assert sut.steps_kube.discover("networking.istio.io", "v1") is None
