"""Helpers for the service under test: a plain Deployment and Service as a team has them, its spec, and the steps.

:class:`ServiceUnderTest` runs each step in-process as the workflow's ServiceAccount through one typed helper per
step, so a test never builds a step's command line by hand. The ``make_service`` fixture in ``conftest.py`` creates
one with :class:`ServiceFactory`.

The application is the demo app (``images/demo-app``): the real deployment and replicaset controllers roll its
Deployments out and the node agent runs its Pods, so availability, readiness and the kubelet's waiting reasons are
real. Its image tag is its version, and a tag suffix picks a real failure (``-never-ready``, ``-crash``...).
"""

from __future__ import annotations

import copy
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

import bluegreen_spec as spec
from bluegreen_contract import (
    BLUE_GREEN_DEPLOYMENTS,
    DEPLOYMENT_RECORDS,
    DEPLOYMENTS,
    GRANT_VERB,
    ROLE_BINDINGS,
    ROLES,
    SERVICES,
    Output,
    Step,
)
from bluegreen_spec import Slot
from pipelines.settings import SERVICE_ACCOUNT
from steps import identity_grant
from steps.cli import main as step_main
from steps.kube import ApiRetryPolicy, Kube
from steps.log import StepLog
from steps.preview_address import service_port_for
from steps.routing import router_for
from steps.slots import deployment_name, preview_service
from testenv.apply import apply_manifest_objects
from testenv.cluster import KubeCluster
from testenv.node.images import DEMO_APP_REPOSITORY
from testenv.rest import request
from tests.integration.installation import install
from tests.integration.rollouts import wait_settled


def demo_app(tag: str) -> str:
    """The demo app's image at ``tag`` (``v2``, or ``v2-never-ready`` for a failure mode)."""
    return f"{DEMO_APP_REPOSITORY}:{tag}"


IMAGE_V1 = demo_app("v1")
IMAGE_V2 = demo_app("v2")
IMAGE_V3 = demo_app("v3")
#: An image no registry has: the node agent reports ErrImagePull, then ImagePullBackOff, as a kubelet does.
IMAGE_MISSING = "registry.example.com/shop/cart:does-not-exist"


def app_deployment(name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    """An ordinary application Deployment, with the zero-downtime settings a careful team sets."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            # Probed every second, so a Pod is Ready about a second after the app listens
                            # (the default 10 s period would make every rollout of the suite ~10 s long).
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
                            "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                        }
                    ],
                },
            },
        },
    }


def app_service(name: str) -> dict[str, Any]:
    """The application's Service."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def lent(obj: dict[str, Any], service: str) -> dict[str, Any]:
    """``obj`` labelled for ``service``'s BlueGreenDeployment: the team lets the steps change its documented fields."""
    obj["metadata"].setdefault("labels", {})[spec.OPT_IN_LABEL] = service
    return obj


def blue_green(name: str, router: str = "istio", **spec_fields: Any) -> dict[str, Any]:
    """The service's BlueGreenDeployment, the seed's shape plus the test's choices."""
    body: dict[str, Any] = {
        "replicas": 2,
        "healthCheck": {"httpGet": {"path": "/health", "port": 8080}},
        "rollbackOnFailure": True,
        "retainPreviousVersion": "1h",
        "readinessTimeout": "30s",
        "traffic": {"router": router},
    }
    body.update(copy.deepcopy(spec_fields))
    if router == "gateway-api":
        body["traffic"]["gatewayApi"] = {"parentRefs": [{"name": "public"}]}
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": name},
        "spec": body,
    }


@dataclass
class ServiceUnderTest:
    """One service in its own namespace, driven by the steps as the workflow's ServiceAccount."""

    namespace: str
    name: str
    admin: client.ApiClient
    steps_kube: Kube
    admin_kube: Kube

    @property
    def steps_api(self) -> client.ApiClient:
        """The client the steps run with here, for the ``kubernetes`` package's typed APIs as that ServiceAccount."""
        api = self.steps_kube.api
        assert isinstance(api, client.ApiClient), "the steps' Kube here always wraps an impersonating ApiClient"
        return api

    def step(self, *argv: str) -> int:
        """Run ``bluegreen-step`` in-process as the ServiceAccount; returns its exit code."""
        return step_main([argv[0], "--namespace", self.namespace, *argv[1:]], kube=self.steps_kube)

    def bgd(self) -> dict[str, Any]:
        """The BlueGreenDeployment as stored."""
        return self.admin_kube.must_get(BLUE_GREEN_DEPLOYMENTS, self.namespace, self.name)

    def status(self) -> spec.BlueGreenDeploymentStatus:
        """The BlueGreenDeployment's status."""
        return spec.BlueGreenDeploymentStatus.model_validate(self.bgd().get("status") or {})

    def deployment(self, name: str) -> dict[str, Any] | None:
        """A Deployment, or None."""
        return self.admin_kube.get(DEPLOYMENTS, self.namespace, name)

    def record(self, name: str) -> dict[str, Any]:
        """A DeploymentRecord."""
        return self.admin_kube.must_get(DEPLOYMENT_RECORDS, self.namespace, name)

    def record_messages(self, name: str, event: str) -> list[str]:
        """The messages of one kind of entry (``warning``, ``autoscaler-moved``, ...) in a run's record."""
        return [e["message"] for e in self.record(name)["status"]["entries"] if e["event"] == event]

    def records(self) -> list[dict[str, Any]]:
        """Every record of the service."""
        return self.admin_kube.list(DEPLOYMENT_RECORDS, self.namespace, f"{spec.SERVICE_LABEL}={self.name}")

    def apply(self, *objects: dict[str, Any]) -> None:
        """Create or update objects as the platform team would (admin)."""
        apply_manifest_objects(self.admin, list(objects), namespace=self.namespace)

    def live_slot(self) -> spec.Slot | None:
        """The slot all traffic goes to, read from the route itself."""
        resource = spec.load_resource(self.bgd())
        return router_for(resource, self.admin_kube, self.namespace, StepLog("test", self.name)).live_slot()

    def wait_settled(self) -> None:
        """Wait until the real controllers have finished every rollout in the namespace (see ``rollouts.py``)."""
        wait_settled(self.admin_kube, self.namespace)

    def preview_url(self) -> str:
        """The preview Service's address as this host reaches it: its ClusterIP (the host routes the Service range
        into the cluster, through kube-proxy) and the port the health check's container port is exposed on, a named
        targetPort resolved through the previewed slot's pod template."""
        resource = spec.load_resource(self.bgd())
        main_service = self.admin_kube.must_get(SERVICES, self.namespace, resource.router_service_name())
        name = preview_service(resource, main_service, spec.Slot.blue)["metadata"]["name"]
        preview = self.admin_kube.must_get(SERVICES, self.namespace, name)
        slot = spec.Slot(preview["spec"]["selector"][spec.SLOT_LABEL])
        deployment = self.admin_kube.must_get(DEPLOYMENTS, self.namespace, deployment_name(self.name, slot))
        port = service_port_for(preview, resource.spec.health_check.http_get.port, deployment["spec"]["template"])
        return f"http://{preview['spec']['clusterIP']}:{port}"

    def replicas(self, deployment: str) -> int | None:
        """A Deployment's desired replicas, None when it does not exist."""
        found = self.deployment(deployment)
        return None if found is None else int(found["spec"]["replicas"])

    # -- one typed helper per step: the command line is built here only --------------------------------------------

    def run_preflight(self, image: str, workflow: str, *, out: Path | None = None, triggered_by: str = "") -> int:
        """``preflight`` as the deploy template runs it; returns the exit code."""
        argv = ["--service", self.name, "--image", image, "--workflow", workflow]
        if triggered_by:
            argv += ["--triggered-by", triggered_by]
        return self.step(Step.preflight, *argv, *_output_dir(out))

    def run_deploy_green(self, image: str, slot: Slot | str, record: str, *, out: Path | None = None) -> int:
        """``deploy-green`` into ``slot``."""
        return self.step(Step.deploy_green, "--image", image, *self._slot_and_record(slot, record), *_output_dir(out))

    def run_probe(self, slot: Slot | str, record: str, base_url: str) -> int:
        """``probe`` against ``base_url``, which stands for the slot's preview address."""
        return self.step(Step.probe, *self._slot_and_record(slot, record), "--base-url", base_url)

    def run_smoke(self, slot: Slot | str, record: str, base_url: str) -> int:
        """``smoke`` against ``base_url``."""
        return self.step(Step.smoke, *self._slot_and_record(slot, record), "--base-url", base_url)

    def run_switch(self, slot: Slot | str, record: str, *, out: Path | None = None) -> int:
        """``switch`` all traffic to ``slot``."""
        return self.step(Step.switch, *self._slot_and_record(slot, record), *_output_dir(out))

    def run_verify(self, record: str) -> int:
        """``verify``: the spec's post-switch analysis."""
        return self.step(Step.verify, "--service", self.name, "--record", record)

    def run_retain(self, record: str) -> int:
        """``retain``: keep the previous slot, close the run as Succeeded."""
        return self.step(Step.retain, "--service", self.name, "--record", record)

    def run_cleanup(self, *, all_services: bool = False) -> int:
        """``cleanup`` of this service, or of every service in the namespace as the CronWorkflow runs it."""
        return self.step(Step.cleanup, *(["--all-services"] if all_services else ["--service", self.name]))

    def run_manual_rollback(self, workflow: str, reason: str = "") -> int:
        """The one-click rollback template's step."""
        argv = ["--service", self.name, "--trigger", "manual", "--workflow", workflow]
        return self.step(Step.rollback, *argv, *(["--reason", reason] if reason else []))

    def rollback_on_exit(self, workflow: str, failures: str = "null") -> int:
        """What the deploy's exit handler runs first after a failure."""
        return self.step(
            Step.rollback, "--service", self.name, "--trigger", "on-exit", *_run_outcome(workflow, failures)
        )

    def run_notify(self, workflow: str, failures: str = "null", status: str = "Failed") -> int:
        """The exit handler's notify step."""
        return self.step(Step.notify, "--service", self.name, *_run_outcome(workflow, failures, status))

    def _slot_and_record(self, slot: Slot | str, record: str) -> list[str]:
        return ["--service", self.name, "--slot", Slot(slot).value, "--record", record]

    # -- the DAG's steps in order --------------------------------------------------------------------------------

    def preflight(self, image: str, workflow: str, out: Path) -> tuple[str, str]:
        """Run preflight as CI would; returns the target slot and the record from its output files."""
        assert self.run_preflight(image, workflow, out=out, triggered_by="ci") == 0
        return (out / Output.target_slot).read_text(), (out / Output.record).read_text()

    def prove(self, slot: Slot | str, record: str, app_url: str = "") -> None:
        """Probe and smoke-test ``slot``, as the DAG does before every switch (``switch`` requires both).

        They call ``app_url`` when given (a local server whose answers the test controls), else the slot's real
        Pods through the preview Service.
        """
        url = app_url or wait_routed(self.preview_url())
        assert self.run_probe(slot, record, url) == 0
        assert self.run_smoke(slot, record, url) == 0

    def deploy(self, image: str, workflow: str, out: Path, *, cleanup: bool = True, app_url: str = "") -> str:
        """The deploy DAG's steps in order; returns the slot deployed to. See :meth:`prove` for ``app_url``."""
        target, record = self.preflight(image, workflow, out)
        # As the DAG does: the image preflight settled on (the team's, when ``image`` is empty).
        assert self.run_deploy_green((out / Output.image).read_text(), target, record) == 0
        self.prove(target, record, app_url)
        assert self.live_slot() is Slot(target).other, "traffic moved before the switch"
        assert self.run_switch(target, record, out=out) == 0
        assert self.run_retain(record) == 0
        if cleanup:
            assert self.run_cleanup() == 0
        return target

    def exit_handler(self, workflow: str, failures: str) -> None:
        """The whole exit handler after a failure: rollback, then notify."""
        assert self.rollback_on_exit(workflow, failures) == 0
        assert self.run_notify(workflow, failures) == 0


def wait_routed(url: str, timeout: float = 30.0) -> str:
    """Wait until ``url`` answers at all, then return it.

    A Service created a moment ago has a ClusterIP that kube-proxy has not programmed yet, and packets to it are
    dropped until its next sync. The probe step rides that out with its failure threshold, at the spec's period
    (10 s by default); the tests wait for the route instead, so a deploy costs what the steps cost.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return url
        except urllib.error.HTTPError:
            return url  # any answer means the route exists
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout:.0f} s: {error}") from None
        time.sleep(0.1)


def _output_dir(out: Path | None) -> list[str]:
    return [] if out is None else ["--output-dir", str(out)]


def _run_outcome(workflow: str, failures: str, status: str = "Failed") -> list[str]:
    return ["--workflow", workflow, "--workflow-status", status, f"--failures={failures}"]


def install_service(
    admin: client.ApiClient,
    impersonate: Callable[[str, str], client.ApiClient],
    namespace: str,
    name: str = "cart",
    router: str = "istio",
    replicas: int = 2,
    **spec_fields: Any,
) -> ServiceUnderTest:
    """Install argo-bluegreen into ``namespace`` and create an unmanaged service with its spec, its Pods Ready.

    The team's Deployment and Service carry the label that lends them to the BlueGreenDeployment (docs/install.md).
    """
    install(admin, namespace)
    fast = ApiRetryPolicy(deadline_seconds=10.0)
    sut = ServiceUnderTest(
        namespace,
        name,
        admin,
        Kube(impersonate(namespace, SERVICE_ACCOUNT), retry=fast),
        Kube(admin, retry=fast),
    )
    # The spec asks for as many replicas per slot as the team's Deployment runs, unless the test says otherwise.
    resource = blue_green(name, router, **{"replicas": replicas, **spec_fields})
    sut.apply(lent(app_deployment(name, IMAGE_V1, replicas), name), lent(app_service(name), name), resource)
    sut.wait_settled()
    return sut


@dataclass
class ServiceFactory:
    """Creates services under test on the session's cluster, each in a new namespace unless given one."""

    cluster: KubeCluster
    make_namespace: Callable[..., str]
    impersonate: Callable[[str, str], client.ApiClient]

    def __call__(
        self,
        prefix: str = "t",
        *,
        namespace: str | None = None,
        name: str = "cart",
        router: str = "istio",
        replicas: int = 2,
        **spec_fields: Any,
    ) -> ServiceUnderTest:
        """An unmanaged service ``name`` with its spec, in ``namespace`` or a new one named after ``prefix``."""
        return install_service(
            self.cluster.admin_api_client(),
            self.impersonate,
            namespace or self.make_namespace(prefix),
            name=name,
            router=router,
            replicas=replicas,
            **spec_fields,
        )


def grant_identity(
    admin: client.ApiClient, namespace: str, service: str, *, service_accounts: list[str], secrets: list[str]
) -> list[str]:
    """Grant the steps' ServiceAccount ``use`` on these objects with the Role ``kubectl bluegreen grant`` applies
    (docs/reference/rbac.md); returns the paths to revoke."""
    needs = [("serviceaccounts", name) for name in service_accounts] + [("secrets", name) for name in secrets]
    paths: list[str] = []
    documents = identity_grant.grant_objects(namespace, service, needs)
    for document, api in zip(documents, (ROLES, ROLE_BINDINGS), strict=True):
        request(admin, "POST", api.path(namespace), body=document)
        paths.insert(0, api.path(namespace, document["metadata"]["name"]))
    for kind, name in needs:
        wait_granted(admin, namespace, kind, name)
    return paths


def wait_granted(admin: client.ApiClient, namespace: str, resource: str, name: str) -> None:
    """Return once the steps' ServiceAccount holds ``use`` on ``resource`` ``name``."""
    wait_authorized(
        admin,
        f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}",
        ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        {"namespace": namespace, "verb": GRANT_VERB, "resource": resource, "name": name},
    )


def wait_authorized(
    admin: client.ApiClient, user: str, groups: list[str], attributes: dict[str, str], timeout: float = 30.0
) -> None:
    """Return once the API server's authorizer allows ``user`` the request ``attributes`` describe.

    Bounded poll: a new RoleBinding, or a rule the aggregation controller adds to a ClusterRole, reaches the RBAC
    authorizer through its informer, a moment late.
    """
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
    }
    deadline = time.monotonic() + timeout
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    while not request(admin, "POST", path, body=review)["status"].get("allowed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{user} was not allowed {attributes} within {timeout:.0f} s")
        time.sleep(0.1)


def revoke(admin: client.ApiClient, paths: list[str]) -> None:
    """Delete what :func:`grant_identity` created."""
    for path in paths:
        request(admin, "DELETE", path)
