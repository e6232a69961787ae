"""Pytest fixtures giving tests a real Kubernetes API server (see ``testenv/__init__.py``).

Tests that need the control plane are marked ``controlplane``. When the artifacts are not built
those tests are skipped with one line saying how to build them; under CI (env ``CI`` set) that
skip becomes a failure, so a pipeline cannot pass by silently running nothing. Set
``BLUEGREEN_TESTENV_BUILD=1`` to build from inside pytest instead, or
``BLUEGREEN_TEST_KUBECONFIG`` to test against an existing cluster.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from kubernetes import client

from testenv import paths
from testenv.apply import ApplyError, ApplyResult, apply_manifest_objects
from testenv.cluster import KubeCluster, connect_existing, existing_kubeconfig, start_local
from testenv.controlplane import DISABLED_ADMISSION_PLUGINS
from testenv.crds import install_crds, load_crds, wait_established
from testenv.local_cluster import ClusterStartError, ClusterTuning, LocalCluster, host_problems
from testenv.rest import KubeApiError, request
from testenv.stand_in import MANAGED_LABEL, DeploymentStandIn

__all__ = [
    "ApplyError",
    "ApplyResult",
    "DeploymentStandIn",
    "KubeCluster",
    "apply_manifest_objects",
    "install_crds",
    "load_crds",
    "wait_established",
]

SESSION_LABEL = "argo-bluegreen.test/session"
BUILD_ENV = "BLUEGREEN_TESTENV_BUILD"
REQUEUE_ENV = "BLUEGREEN_TEST_REQUEUE_TIME"
NOT_BUILT = "control plane not built: run `make testenv` (needs Go >= 1.26)"

_summary_key = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controlplane: needs the real kube-apiserver and etcd from testenv/ (make testenv)"
    )
    config.addinivalue_line(
        "markers",
        "cluster: needs the whole local cluster (controllers, kube-proxy, CoreDNS, Argo, node agent; root on Linux)",
    )
    config.stash[_summary_key] = []


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure rather than a skip)", pytrace=False)
    pytest.skip(reason)


def _artifacts() -> paths.Artifacts:
    found = paths.locate()
    if found.artifacts is not None:
        return found.artifacts
    if os.environ.get(BUILD_ENV):
        from testenv import build  # imported lazily: only this opt-in path builds

        try:
            return build.build()
        except build.BuildError as exc:
            _unavailable(f"control plane build failed: {exc}")
    _unavailable(NOT_BUILT)


def pytest_runtest_setup(item: pytest.Item) -> None:
    marked = item.get_closest_marker("controlplane") is not None or item.get_closest_marker("cluster") is not None
    if marked and not os.environ.get(BUILD_ENV) and paths.locate().artifacts is None:
        _unavailable(NOT_BUILT)
    if item.get_closest_marker("cluster") is not None:
        problems = host_problems(paths.locate().artifacts)
        if problems:
            _unavailable("local cluster cannot run here: " + "; ".join(problems))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash.get(_summary_key, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def testenv_artifacts() -> paths.Artifacts:
    """The built cache entry (binaries, CRDs, Argo schema)."""
    return _artifacts()


@pytest.fixture(scope="session")
def argo_schema_path(testenv_artifacts: paths.Artifacts) -> Path:
    """Argo Workflows' JSON schema (``api/jsonschema/schema.json`` of the pinned module)."""
    return testenv_artifacts.argo_schema


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest, testenv_artifacts: paths.Artifacts) -> Iterator[KubeCluster]:
    """The API server for this session, with the Argo, Istio and Gateway API CRDs established."""
    kubeconfig = existing_kubeconfig()
    if kubeconfig is not None:
        cluster = connect_existing(kubeconfig, testenv_artifacts)
        how = f"existing cluster {cluster.server} (CRDs applied in {cluster.start_seconds:.1f}s)"
    else:
        cluster = start_local(testenv_artifacts)
        origin = "from saved store" if cluster.seeded else "cold, store saved for next time"
        plugins = ", ".join(DISABLED_ADMISSION_PLUGINS)
        how = (
            f"local control plane ready in {cluster.start_seconds:.1f}s ({origin}); "
            f"admission plugins disabled: {plugins}"
        )
    request.config.stash[_summary_key].append(f"testenv: {how}")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest, testenv_artifacts: paths.Artifacts) -> Iterator[LocalCluster]:
    """The whole local cluster of real components, with Argo, for end-to-end tests.

    Argo runs with its default requeue time unless ``BLUEGREEN_TEST_REQUEUE_TIME`` names another, so the tests see
    the controller as users install it.
    """
    problems = host_problems(testenv_artifacts)
    if problems:
        _unavailable("local cluster cannot run here: " + "; ".join(problems))
    tuning = ClusterTuning(default_requeue_time=os.environ.get(REQUEUE_ENV) or None)
    cluster = LocalCluster(testenv_artifacts, tuning=tuning)
    try:
        cluster.start()
    except ClusterStartError as exc:
        _unavailable(f"local cluster did not start: {exc}")
    requeue = tuning.default_requeue_time or "Argo's default"
    request.config.stash[_summary_key].append(
        f"testenv: local cluster ready in {cluster.start_seconds:.1f}s (requeue time {requeue})"
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def _admin_api(kube_cluster: KubeCluster) -> client.ApiClient:
    return kube_cluster.admin_api_client()


@pytest.fixture
def make_namespace(kube_cluster: KubeCluster, _admin_api: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Factory: ``make_namespace(prefix="t") -> name`` creates a uniquely named namespace.

    On the local control plane the namespace is labelled for the deployment stand-in. Namespaces
    are deleted at teardown, best effort (locally they stay Terminating: no namespace
    controller runs, and nothing needs them gone).
    """
    session = uuid.uuid4().hex[:6]
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        labels = {SESSION_LABEL: session}
        if kube_cluster.local:
            labels[MANAGED_LABEL] = "true"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        request(_admin_api, "POST", "/api/v1/namespaces", body=body)
        created.append(name)
        return name

    yield make
    for name in created:
        with contextlib.suppress(KubeApiError):
            request(_admin_api, "DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def impersonating_client(kube_cluster: KubeCluster) -> Callable[[str, str], client.ApiClient]:
    """Factory: ``impersonating_client(namespace, service_account) -> ApiClient`` acting as that SA.

    Requests carry ``Impersonate-User: system:serviceaccount:<ns>:<sa>`` and the groups a real
    token would have, so RBAC decides exactly as it would for the workflow's pods.
    """
    return kube_cluster.impersonating_api_client


@pytest.fixture(scope="session")
def deployment_stand_in(kube_cluster: KubeCluster, _admin_api: client.ApiClient) -> Iterator[DeploymentStandIn]:
    """The stand-in for the deployment/replicaset controllers and kubelet (see ``stand_in.py``)."""
    stand_in = DeploymentStandIn(_admin_api)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
    if stand_in.errors:
        raise RuntimeError("deployment stand-in reported errors: " + "; ".join(stand_in.errors))
