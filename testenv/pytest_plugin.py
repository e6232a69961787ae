"""Pytest fixtures giving tests a real Kubernetes cluster (see ``testenv/README.md``).

One local cluster of real components serves the whole session: API-level tests (marked ``controlplane``) and Pod and
end-to-end tests (marked ``cluster``) share it, so a Deployment a test applies is rolled out by the real deployment and
replicaset controllers and its Pods are run by the node agent. When the artifacts are not built those tests are skipped
with one line saying how to build them; under CI (env ``CI`` set) that skip becomes a failure, so a pipeline cannot
pass by silently running nothing. Set ``BLUEGREEN_TESTENV_BUILD=1`` to build from inside pytest instead,
``BLUEGREEN_TEST_CLUSTER`` to use a running ``make cluster``, or ``BLUEGREEN_TEST_KUBECONFIG`` to run the
``controlplane`` tests against another running cluster (its Pod and Service addresses must be reachable from this host,
as those of ``make cluster`` are).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from _pytest.mark.expression import Expression
from kubernetes import client

from testenv import helm_tool, paths, tools
from testenv.apply import ApplyError, ApplyResult, apply_manifest_objects
from testenv.cluster import KubeCluster, connect_existing, existing_kubeconfig, on_local_cluster
from testenv.crds import install_crds, load_crds, wait_established
from testenv.local_cluster import ClusterStartError, ClusterTuning, LocalCluster, host_problems
from testenv.rest import KubeApiError, request
from testenv.shared_cluster import SHARED_ENV, SharedCluster, attach_shared
from testenv.supply_chain import LocalRegistry, SupplyChainError

__all__ = [
    "ApplyError",
    "ApplyResult",
    "KubeCluster",
    "apply_manifest_objects",
    "install_crds",
    "load_crds",
    "wait_established",
]

SESSION_LABEL = "argo-bluegreen.test/session"
BUILD_ENV = "BLUEGREEN_TESTENV_BUILD"
REQUEUE_ENV = "BLUEGREEN_TEST_REQUEUE_TIME"
# The documented tuning for fast deploys (docs/performance.md). With Argo's default (10s) each of a deploy's steps
# waits up to 10 s to be started, which multiplies the end-to-end suite's time without testing anything more; set
# BLUEGREEN_TEST_REQUEUE_TIME to empty for Argo's default, or to another duration.
TEST_REQUEUE_TIME = "1s"
# A running `make cluster` prints this variable; the end-to-end tests then use that cluster instead of starting one.
ATTACH_ENV = "BLUEGREEN_TEST_CLUSTER"
NOT_BUILT = "control plane not built: run `make testenv` (needs Go >= 1.26)"

_summary_key = pytest.StashKey[list[str]]()
_shared_key = pytest.StashKey[SharedCluster]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "controlplane: needs the session's cluster: the local one (make testenv; root on Linux) or "
        "BLUEGREEN_TEST_KUBECONFIG's",
    )
    config.addinivalue_line(
        "markers",
        "cluster: needs the whole local cluster (controllers, kube-proxy, CoreDNS, Argo, node agent; root on Linux)",
    )
    config.stash[_summary_key] = []
    if _starts_shared_cluster(config):
        artifacts = paths.locate().artifacts
        assert artifacts is not None  # checked by _starts_shared_cluster
        shared = SharedCluster(artifacts, _tuning())
        shared.start()
        config.stash[_shared_key] = shared
        # Workers are spawned after this hook and inherit the environment: that is how they find the cluster.
        os.environ[SHARED_ENV] = str(shared.directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_shared_key, None)
    if shared is not None:
        shared.stop()
        os.environ.pop(SHARED_ENV, None)


def _starts_shared_cluster(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller whose workers may need the local cluster.

    Only the controller of a distributed run starts one; a plain run starts its cluster lazily in
    :func:`local_cluster`, and a run whose marker expression leaves out every cluster test starts none. When the
    cluster cannot be built or run here, no start is tried: each worker then skips (or, under CI, fails) its tests with
    the one line that says why.
    """
    if hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no":
        return False
    if os.environ.get(ATTACH_ENV) or os.environ.get(SHARED_ENV):
        return False
    markexpr = config.option.markexpr
    if markexpr:
        selects = Expression.compile(markexpr)

        def selects_tests_marked(marker: str) -> bool:
            return selects.evaluate(lambda name, /, **_: name == marker)

        if not (selects_tests_marked("controlplane") or selects_tests_marked("cluster")):
            return False
    artifacts = paths.locate().artifacts
    return artifacts is not None and not host_problems(artifacts)


def _tuning() -> ClusterTuning:
    return ClusterTuning(default_requeue_time=os.environ.get(REQUEUE_ENV, TEST_REQUEUE_TIME) or None)


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
    api_level = item.get_closest_marker("controlplane") is not None
    whole_cluster = item.get_closest_marker("cluster") is not None
    if (os.environ.get(ATTACH_ENV) or os.environ.get(SHARED_ENV)) and (api_level or whole_cluster):
        return
    if (api_level or whole_cluster) and not os.environ.get(BUILD_ENV) and paths.locate().artifacts is None:
        _unavailable(NOT_BUILT)
    # API-level tests may run on an existing cluster; otherwise they share the local one and need what it needs.
    if whole_cluster or (api_level and existing_kubeconfig() is None):
        problems = host_problems(paths.locate().artifacts)
        if problems:
            _unavailable("local cluster cannot run here: " + "; ".join(problems))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash.get(_summary_key, []):
        terminalreporter.write_line(line)
    shared = config.stash.get(_shared_key, None)
    if shared is not None and shared.start_seconds is not None:
        ready = f"ready in {shared.start_seconds:.1f}s"
        terminalreporter.write_line(f"testenv: one local cluster shared by every worker, {ready}")
    elif shared is not None and shared.failure is not None:
        terminalreporter.write_line(f"testenv: the shared local cluster did not start: {shared.failure}")


@pytest.fixture(scope="session")
def testenv_artifacts() -> paths.Artifacts:
    """The built cache entry (binaries, CRDs, Argo schema)."""
    return _artifacts()


@pytest.fixture(scope="session")
def argo_schema_path(testenv_artifacts: paths.Artifacts) -> Path:
    """Argo Workflows' JSON schema (``api/jsonschema/schema.json`` of the pinned module)."""
    return testenv_artifacts.argo_schema


@pytest.fixture(scope="session")
def pinned_tool() -> Callable[[str], Path]:
    """Factory: ``pinned_tool("promtool") -> Path`` of a tool built by ``make tools`` (see ``testenv/tools.py``).

    A tool that is not built skips the calling test with the command that builds it, and fails it under CI.
    """

    def find(name: str) -> Path:
        try:
            return tools.program(name)
        except tools.ToolsNotBuilt as exc:
            _unavailable(str(exc))

    return find


@pytest.fixture
def helm(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``helm(*args, kubeconfig=None)``: the Helm of ``make helm`` (``testenv/helm_tool.py``), its state in tmp_path.

    When Helm is not built, the calling test is skipped with the command that builds it, and fails under CI.
    """
    try:
        helm_tool.program()
    except helm_tool.HelmNotBuilt as exc:
        _unavailable(str(exc))

    def run(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        return helm_tool.run(list(args), tmp_path / "helm-state", kubeconfig)

    return run


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The whole local cluster of real components, with Argo: one per session, for every test that needs a cluster.

    With ``BLUEGREEN_TEST_CLUSTER`` set to the description a running ``make cluster`` printed, the tests use that
    cluster and leave it running. Otherwise a cluster starts for the session, its workflow-controller tuned as the
    docs recommend (:data:`TEST_REQUEUE_TIME`) unless ``BLUEGREEN_TEST_REQUEUE_TIME`` says otherwise; the
    benchmarks measure Argo's default too.
    """
    shared = os.environ.get(SHARED_ENV)
    if shared:
        try:
            attached = attach_shared(Path(shared))
        except ClusterStartError as exc:
            _unavailable(str(exc))
        try:
            yield attached
        finally:
            attached.stop()
        return
    attach_to = os.environ.get(ATTACH_ENV)
    if attach_to:
        attached = LocalCluster.attach(Path(attach_to))
        request.config.stash[_summary_key].append(f"testenv: attached to the local cluster of {attach_to}")
        try:
            yield attached
        finally:
            attached.stop()
        return
    testenv_artifacts = _artifacts()
    problems = host_problems(testenv_artifacts)
    if problems:
        _unavailable("local cluster cannot run here: " + "; ".join(problems))
    tuning = _tuning()
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
def oci_registry(local_cluster: LocalCluster) -> Iterator[LocalRegistry]:
    """A real OCI registry (``crane registry serve``) on the local cluster's host address, for the session.

    The host's test process and the cluster's Pods reach it at the same ``registry.address`` (``10.243.<n>.1:<port>``,
    plain HTTP), so an image pushed and signed here is the one a Pod verifies or runs. Needs crane and cosign from
    ``make tools``: without them the calling test is skipped with that command, and fails under CI.
    """
    try:
        crane = tools.program("crane")
        tools.program("cosign")
    except tools.ToolsNotBuilt as exc:
        _unavailable(str(exc))
    network = local_cluster.network
    assert network is not None, "the local cluster has no network: it is not running"
    registry = LocalRegistry(network.host_ip, crane=crane)
    try:
        registry.start()
    except SupplyChainError as exc:
        _unavailable(f"the test registry did not start: {exc}")
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[KubeCluster]:
    """The session's cluster as API clients see it, with the Argo, Istio and Gateway API CRDs established.

    That is the shared :func:`local_cluster`, or the cluster ``BLUEGREEN_TEST_KUBECONFIG`` names.
    """
    kubeconfig = existing_kubeconfig()
    if kubeconfig is not None:
        cluster = connect_existing(kubeconfig, _artifacts())
        request.config.stash[_summary_key].append(
            f"testenv: existing cluster {cluster.server} (CRDs applied in {cluster.start_seconds:.1f}s)"
        )
    else:
        # Looked up only here, so a session on an existing cluster never starts a local one for these tests.
        cluster = on_local_cluster(request.getfixturevalue("local_cluster"), _artifacts())
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def _admin_api(kube_cluster: KubeCluster) -> client.ApiClient:
    return kube_cluster.admin_api_client()


@pytest.fixture
def make_namespace(_admin_api: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Factory: ``make_namespace(prefix="t") -> name`` creates a uniquely named namespace.

    Namespaces are deleted at teardown without waiting for them to go: the namespace controller removes what they
    hold, and their Pods stop gracefully in the background while the next test runs.
    """
    session = uuid.uuid4().hex[:6]
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        metadata = {"name": name, "labels": {SESSION_LABEL: session}}
        request(
            _admin_api,
            "POST",
            "/api/v1/namespaces",
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": metadata},
        )
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
