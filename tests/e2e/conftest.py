"""End-to-end fixtures: the local cluster with the manifests installed as the README says, and demo services.

Everything here goes through what users use: the built `kubectl` and `argo` with the cluster's kubeconfig, the
rendered manifests unchanged, and real Pods of the demo app run by the node agent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testenv import argocd
from testenv.argocd_controller import ArgoCD, missing_host_programs
from testenv.demo_service import REPO, DemoService, create_demo_service, demo_image
from testenv.local_cluster import LocalCluster
from tests.e2e.readme_blocks import readme_block


@pytest.fixture(scope="session")
def installed(local_cluster: LocalCluster) -> LocalCluster:
    """The cluster with argo-bluegreen installed by the README's own install commands, run as written."""
    for command in readme_block("install"):
        proc = local_cluster.run_tool(["bash", "-c", command], check=False, cwd=REPO)
        # A cluster the tests attached to (a running `make cluster`) may have been installed by an earlier run.
        repeated = not local_cluster.owned and "AlreadyExists" in proc.stderr
        assert proc.returncode == 0 or repeated, (
            f"README install command failed: {command}\n{proc.stdout}\n{proc.stderr}"
        )
    return local_cluster


@pytest.fixture
def demo_service(installed: LocalCluster) -> Iterator[Callable[..., DemoService]]:
    """Factory: ``demo_service(tag="v1", readiness="http", **spec_overrides)`` creates a ready service.

    Each service is retired at teardown, so later tests do not share the node with its Pods.
    """
    created: list[DemoService] = []

    def make(tag: str = "v1", readiness: str = "http", **spec_overrides: Any) -> DemoService:
        service = create_demo_service(installed, tag=tag, readiness=readiness, **spec_overrides)
        created.append(service)
        return service

    yield make
    for service in created:
        service.retire()


@pytest.fixture
def adopted_service(demo_service: Callable[..., DemoService]) -> Iterator[DemoService]:
    """A demo service whose first deploy (adopting v1 into a slot) has succeeded."""
    service = demo_service()
    run = service.deploy(demo_image("v1"))
    assert run.phase == "Succeeded", run.summary()
    yield service


def require_argocd() -> None:
    """Skip without Argo CD's build or its host programs; under CI that is a failure instead."""
    try:
        argocd.binary()
        missing = missing_host_programs()
        if missing:
            raise argocd.ArgoCDNotBuilt(f"{', '.join(missing)} not on PATH: run `make host-deps`")
    except argocd.ArgoCDNotBuilt as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so this is a failure rather than a skip)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def argocd_on_cluster(local_cluster: LocalCluster, make_namespace: Callable[..., str]) -> Iterator[ArgoCD]:
    """Argo CD serving Applications in a namespace of its own, so parallel tests each have their own instance."""
    require_argocd()
    with ArgoCD(local_cluster, make_namespace("argocd")) as instance:
        yield instance
