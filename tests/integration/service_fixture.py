"""A service as a platform team has it before argo-bluegreen: a plain Deployment and Service, plus its spec."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENT_RECORDS, DEPLOYMENTS
from pipelines.settings import SERVICE_ACCOUNT
from steps.cli import main as step_main
from steps.kube import ApiRetryPolicy, Kube
from steps.log import StepLog
from steps.routing import router_for
from testenv.apply import apply_manifest_objects
from testenv.stand_in import DeploymentStandIn
from tests.integration.installation import install

IMAGE_V1 = "registry.example.com/shop/cart:1.0.0"
IMAGE_V2 = "registry.example.com/shop/cart:2.0.0"
IMAGE_V3 = "registry.example.com/shop/cart:3.0.0"


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
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}},
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
    stand_in: DeploymentStandIn

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

    def replicas(self, deployment: str) -> int | None:
        """A Deployment's desired replicas, None when it does not exist."""
        found = self.deployment(deployment)
        return None if found is None else int(found["spec"]["replicas"])

    def preflight(self, image: str, workflow: str, out: Path) -> tuple[str, str]:
        """Run preflight as CI would; returns the target slot and the record from its output files."""
        argv = ["--service", self.name, "--image", image, "--workflow", workflow, "--triggered-by", "ci"]
        assert self.step("preflight", *argv, "--output-dir", str(out)) == 0
        return (out / "target-slot").read_text(), (out / "record").read_text()

    def deploy(self, image: str, workflow: str, out: Path, *, cleanup: bool = True, app_url: str = "") -> str:
        """The deploy DAG's steps in order; returns the slot deployed to.

        With ``app_url`` (a local server standing for the new slot's preview address) probe and smoke run too.
        """
        target, record = self.preflight(image, workflow, out)
        common = ("--service", self.name, "--slot", target, "--record", record)
        assert self.step("deploy-green", "--image", image, *common) == 0
        if app_url:
            assert self.step("probe", *common, "--base-url", app_url) == 0
            assert self.step("smoke", *common, "--base-url", app_url) == 0
        assert self.live_slot() is spec.Slot(target).other, "traffic moved before the switch"
        assert self.step("switch", *common, "--output-dir", str(out)) == 0
        assert self.step("retain", "--service", self.name, "--record", record) == 0
        if cleanup:
            assert self.step("cleanup", "--service", self.name) == 0
        return target

    def rollback_on_exit(self, workflow: str, failures: str = "null") -> int:
        """What the deploy's exit handler runs first after a failure."""
        return self.step(
            "rollback",
            "--service",
            self.name,
            "--trigger",
            "on-exit",
            "--workflow",
            workflow,
            "--workflow-status",
            "Failed",
            f"--failures={failures}",
        )

    def exit_handler(self, workflow: str, failures: str) -> None:
        """The whole exit handler after a failure: rollback, then notify."""
        assert self.rollback_on_exit(workflow, failures) == 0
        assert (
            self.step(
                "notify",
                "--service",
                self.name,
                "--workflow",
                workflow,
                "--workflow-status",
                "Failed",
                f"--failures={failures}",
            )
            == 0
        )


def make_service(
    admin: client.ApiClient,
    impersonate: Callable[[str, str], client.ApiClient],
    stand_in: DeploymentStandIn,
    namespace: str,
    name: str = "cart",
    router: str = "istio",
    replicas: int = 2,
    **spec_fields: Any,
) -> ServiceUnderTest:
    """Install argo-bluegreen into ``namespace`` and create an unmanaged service with its spec."""
    install(admin, namespace)
    stand_in.manage(namespace)
    fast = ApiRetryPolicy(deadline_seconds=10.0)
    sut = ServiceUnderTest(
        namespace,
        name,
        admin,
        Kube(impersonate(namespace, SERVICE_ACCOUNT), retry=fast),
        Kube(admin, retry=fast),
        stand_in,
    )
    sut.apply(app_deployment(name, IMAGE_V1, replicas), app_service(name), blue_green(name, router, **spec_fields))
    stand_in.wait_idle()
    return sut
