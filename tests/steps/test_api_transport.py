"""A Pod's own way to the API server, against a real local HTTPS server: its CA, its token, Kube's retries on top."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bluegreen_contract import ApiResource
from steps.api_transport import InClusterTransport, TransportError
from steps.errors import ApiError, NotFound, Transient
from steps.kube import ApiRetryPolicy, Kube
from tests.steps.http_servers import AppServer, Reply, self_signed_certificate, server_context

CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap")
FAST = ApiRetryPolicy(deadline_seconds=1.0, first_backoff_seconds=0.01, max_backoff_seconds=0.05)


def mount(directory: Path, ca_pem: bytes, token: str) -> Path:
    """What the kubelet mounts for a Pod's ServiceAccount: the token and the cluster's CA."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(ca_pem)
    return directory


@pytest.fixture
def certificate() -> tuple[bytes, bytes]:
    return self_signed_certificate()


@pytest.fixture
def api_server(certificate: tuple[bytes, bytes]) -> Iterator[AppServer]:
    with AppServer(server_context(*certificate)) as server:
        yield server


@pytest.fixture
def in_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_server: AppServer, certificate: tuple[bytes, bytes]
) -> Path:
    """The service-link variables of a Pod, pointing at the local server, and its mounted ServiceAccount."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api_server.port))
    return mount(tmp_path / "serviceaccount", certificate[0], "first-token")


def test_outside_a_pod_there_is_no_in_cluster_transport(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    directory = mount(tmp_path / "sa", b"ca", "token")
    assert InClusterTransport.from_environment(directory) is None
    # The variables without the mounted ServiceAccount (automountServiceAccountToken: false) are not enough either.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert InClusterTransport.from_environment(tmp_path / "nothing-mounted") is None
    found = InClusterTransport.from_environment(directory)
    assert found is not None and found.host == "https://10.96.0.1:443"


def test_an_ipv6_service_address_gets_its_brackets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = InClusterTransport.from_environment(mount(tmp_path / "sa", b"ca", "token"))
    assert found is not None and found.host == "https://[fd00:10:96::1]:443"


def test_requests_carry_the_token_as_it_is_now(in_pod: Path, api_server: AppServer) -> None:
    api_server.route("/api/v1/namespaces/team/configmaps/settings", Reply(200, json.dumps({"data": {"a": "1"}})))
    transport = InClusterTransport.from_environment(in_pod)
    assert transport is not None
    kube = Kube(transport, retry=FAST)
    assert kube.get(CONFIGMAPS, "team", "settings") == {"data": {"a": "1"}}
    # The kubelet rewrites a projected token before it expires; the next request must send the new one.
    (in_pod / "token").write_text("rotated-token\n")
    kube.get(CONFIGMAPS, "team", "settings")
    sent = [request.headers["Authorization"] for request in api_server.received()]
    assert sent == ["Bearer first-token", "Bearer rotated-token"]


def test_bodies_go_as_kube_encoded_them(in_pod: Path, api_server: AppServer) -> None:
    path = "/api/v1/namespaces/team/configmaps/settings"
    api_server.route(path, Reply(200, "{}"))
    transport = InClusterTransport.from_environment(in_pod)
    assert transport is not None
    kube = Kube(transport, retry=FAST)
    kube.apply(CONFIGMAPS, "team", {"metadata": {"name": "settings"}, "data": {"emoji": "\U0001f680"}})
    kube.merge_patch(CONFIGMAPS, "team", "settings", {"data": {"a": "2"}})
    apply, patch = api_server.received(path)
    assert apply.method == "PATCH" and apply.headers["Content-Type"] == "application/apply-patch+yaml"
    assert "\U0001f680" in apply.body.decode()  # written as itself, not as a surrogate pair YAML would refuse
    assert "fieldManager=argo-bluegreen" in apply.target
    assert patch.headers["Content-Type"] == "application/merge-patch+json" and patch.json() == {"data": {"a": "2"}}


def test_answers_are_kubes_to_judge_retries_included(in_pod: Path, api_server: AppServer) -> None:
    missing = "/api/v1/namespaces/team/configmaps/missing"
    forbidden = "/api/v1/namespaces/team/configmaps/forbidden"
    flaky = "/api/v1/namespaces/team/configmaps/flaky"
    api_server.route(missing, Reply(404, json.dumps({"kind": "Status", "message": "configmaps not found"})))
    refusal = 'configmaps "forbidden" is forbidden: User "system:serviceaccount:team:deployer" cannot delete'
    api_server.route(forbidden, Reply(403, json.dumps({"kind": "Status", "message": refusal})))
    api_server.route(flaky, Reply(503, "{}", headers={"Retry-After": "0"}), then=Reply(200, '{"ok": true}'))
    transport = InClusterTransport.from_environment(in_pod)
    assert transport is not None
    kube = Kube(transport, retry=FAST)
    assert kube.get(CONFIGMAPS, "team", "missing") is None
    with pytest.raises(NotFound, match="ConfigMap team/missing does not exist"):
        kube.must_get(CONFIGMAPS, "team", "missing")
    with pytest.raises(ApiError, match=r"delete ConfigMap team/forbidden: 403 .*cannot delete.*lacks this permission"):
        kube.delete(CONFIGMAPS, "team", "forbidden")
    assert len(api_server.received(forbidden)) == 1  # a refusal is not retried
    assert kube.get(CONFIGMAPS, "team", "flaky") == {"ok": True}
    assert len(api_server.received(flaky)) == 2


def test_a_server_the_mounted_ca_did_not_sign_is_never_trusted(
    tmp_path: Path, in_pod: Path, api_server: AppServer
) -> None:
    api_server.route("/api/v1/namespaces/team/configmaps/settings", Reply(200, "{}"))
    other_ca, _ = self_signed_certificate()
    mount(in_pod, other_ca, "first-token")
    transport = InClusterTransport.from_environment(in_pod)
    assert transport is not None
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.send("GET", f"{transport.host}/api", {}, None, 5.0)
    # Through Kube it is a transient failure after its deadline, and no request ever carried the token in clear.
    with pytest.raises(Transient, match="API server unreachable"):
        Kube(transport, retry=FAST).get(CONFIGMAPS, "team", "settings")
    assert api_server.received() == []


def test_a_missing_token_is_a_transient_failure_naming_the_file(in_pod: Path, api_server: AppServer) -> None:
    transport = InClusterTransport.from_environment(in_pod)
    assert transport is not None
    (in_pod / "token").unlink()
    with pytest.raises(Transient, match="ServiceAccount token"):
        Kube(transport, retry=FAST).get(CONFIGMAPS, "team", "settings")


def test_a_step_in_a_pod_never_loads_the_kubernetes_package() -> None:
    # Loading it was half of every step's start-up; the release Pod's five steps load at once on one node.
    program = (
        "import sys, steps.cli, steps.context\n"
        "from steps.cli import COMMANDS\n"
        "import importlib\n"
        "for module in set(COMMANDS.values()): importlib.import_module(module)\n"
        "print(sorted(name for name in sys.modules if name == 'kubernetes' or name.startswith('kubernetes.')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout
