"""Measured promptness (a reused address, container exits) and the kubelet log endpoint, through the API server."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testenv.node.container_logs import parse_timestamp
from testenv.node.kubelet_server import KUBELET_PORT
from tests.node_agent.conftest import NodeEnv, condition, container_status, delete_pod

pytestmark = pytest.mark.controlplane

JsonObj = dict[str, Any]
DEMO_IMAGE = "ghcr.io/argo-bluegreen/demo-app:v1"
STEPS_IMAGE = "ghcr.io/argo-bluegreen/steps:0.1.0"
STALE_MAC = "02:00:5e:10:00:01"
# How soon after its app listens a fresh Pod must be Ready (probe period 1 s, plus a loaded machine).
READY_AFTER_LISTENING_SECONDS = 2.0
# Init exits -> main starts -> main exits -> Succeeded: two python starts, no resync wait.
STEP_POD_SECONDS = 5.0


def _demo_pod(name: str) -> JsonObj:
    return {
        "containers": [
            {
                "name": "app",
                "image": DEMO_IMAGE,
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
            }
        ],
        "terminationGracePeriodSeconds": 1,
    }


def _poll(what: str, check: Any, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Bounded poll until ``check()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{what} not reached in {timeout:.0f}s")


@pytest.fixture
def admin_http(node_env: NodeEnv) -> Iterator[httpx.Client]:
    """An admin client of the API server, as kubectl is."""
    with httpx.Client(base_url=node_env.server, verify=node_env.api.ssl_context, timeout=60) as client:
        yield client


def _logs(client: httpx.Client, namespace: str, pod: str, **params: str | int) -> httpx.Response:
    return client.get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params=params)


def _plant_stale_neighbours(env: NodeEnv) -> list[str]:
    """Give every free Pod address a REACHABLE neighbour entry with a MAC no Pod has, as a reused address has."""
    pods = env.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={env.agent.node_name}")["items"]
    used = {p.get("status", {}).get("podIP") for p in pods}
    prefix = env.net.gateway_ip.rsplit(".", 1)[0]
    free = [f"{prefix}.{host}" for host in range(2, 255) if f"{prefix}.{host}" not in used]
    commands = "".join(f"neigh replace {ip} lladdr {STALE_MAC} dev {env.net.bridge} nud reachable\n" for ip in free)
    subprocess.run(["ip", "-n", env.net.node_netns, "-batch", "-"], input=commands, text=True, check=True)
    return free


def test_a_pod_on_an_address_with_a_stale_neighbour_entry_is_ready_as_soon_as_its_app_listens(
    node_env: NodeEnv, admin_http: httpx.Client
) -> None:
    ns = node_env.namespace()
    # A Pod that stays keeps the bridge up; an idle bridge would drop every neighbour entry by itself.
    node_env.create_pod(ns, "neighbour", _demo_pod("neighbour"))
    node_env.wait_pod(ns, "neighbour", "Ready", lambda p: condition(p, "Ready") == "True")
    first = node_env.create_pod(ns, "first", _demo_pod("first"))
    first_ip = node_env.wait_pod(ns, "first", "an IP", lambda p: bool((p or {}).get("status", {}).get("podIP")))
    assert first_ip is not None and first
    released = first_ip["status"]["podIP"]
    delete_pod(node_env, ns, "first")
    node_env.wait_pod(ns, "first", "gone", lambda p: p is None)
    _plant_stale_neighbours(node_env)

    node_env.create_pod(ns, "second", _demo_pod("second"))
    ready = node_env.wait_pod(ns, "second", "Ready", lambda p: condition(p, "Ready") == "True", timeout=30)
    seen_ready_ns = time.time_ns()
    assert ready is not None
    ip = ready["status"]["podIP"]
    assert ip != released, "the address just released is not handed out again at once"
    stamped = _logs(admin_http, ns, "second", timestamps="true").text
    listening = next(line for line in stamped.splitlines() if '"listening"' in line)
    listened_ns = parse_timestamp(listening.split(" ", 1)[0])
    assert (seen_ready_ns - listened_ns) / 1e9 < READY_AFTER_LISTENING_SECONDS
    with urllib.request.urlopen(f"http://{ip}:8080/health", timeout=2) as response:
        assert response.status == 200, "reachable from the host"


def test_container_exits_are_acted_on_at_once(node_env: NodeEnv) -> None:
    ns = node_env.namespace()
    started = time.monotonic()
    node_env.create_pod(
        ns,
        "step",
        {
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": STEPS_IMAGE, "command": ["python", "-c", "pass"]}],
            "containers": [{"name": "main", "image": STEPS_IMAGE, "command": ["python", "-c", "print('done')"]}],
        },
    )
    done = _poll("Succeeded", lambda: (node_env.pod(ns, "step") or {}).get("status", {}).get("phase") == "Succeeded")
    elapsed = time.monotonic() - started
    assert done
    assert elapsed < STEP_POD_SECONDS, f"init -> main -> Succeeded took {elapsed:.1f}s"


def test_logs_through_the_api_server_with_the_kubelet_options(node_env: NodeEnv, admin_http: httpx.Client) -> None:
    ns = node_env.namespace()
    script = "import sys\nfor i in range(1, 6): print(f'out {i}', flush=True)\nprint('err', file=sys.stderr)\n"
    script += "import time\ntime.sleep(600)\n"
    node_env.create_pod(
        ns,
        "talker",
        {"containers": [{"name": "app", "image": STEPS_IMAGE, "command": ["python", "-c", script]}]},
    )
    node_env.wait_pod(ns, "talker", "Running", lambda p: "running" in container_status(p, "app").get("state", {}))

    def everything() -> httpx.Response | None:
        answer = _logs(admin_http, ns, "talker")
        return answer if answer.status_code == 200 and "err" in answer.text else None

    whole = _poll("all output", everything)
    assert sorted(whole.text.splitlines()) == sorted([f"out {i}" for i in range(1, 6)] + ["err"])
    assert _logs(admin_http, ns, "talker", container="app", tailLines=1).text.count("\n") == 1
    # stdout and stderr reach the log through separate pipes, as with any container runtime, so which
    # stream's line comes first is not fixed; the limit must cut the same log at its fifth byte.
    assert _logs(admin_http, ns, "talker", limitBytes=5).text == whole.text[:5]
    stamped = _logs(admin_http, ns, "talker", timestamps="true", tailLines=2).text.splitlines()
    for line in stamped:
        when = datetime.datetime.fromtimestamp(parse_timestamp(line.split(" ", 1)[0]) / 1e9, datetime.UTC)
        assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 120
    assert _logs(admin_http, ns, "talker", sinceSeconds=3600).text == whole.text
    previous = _logs(admin_http, ns, "talker", previous="true")
    assert previous.status_code == 400
    assert previous.json()["message"].endswith('previous terminated container "app" in pod "talker" not found')
    missing = _logs(admin_http, ns, "talker", container="nope")
    assert missing.status_code == 400 and "not valid for pod" in missing.json()["message"]


def test_follow_streams_until_the_container_ends_and_previous_shows_the_last_instance(
    node_env: NodeEnv, admin_http: httpx.Client
) -> None:
    ns = node_env.namespace()
    script = "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n"
    script += "raise SystemExit(1)"
    ticker = {"name": "app", "image": STEPS_IMAGE, "command": ["python", "-c", script]}
    node_env.create_pod(ns, "ticker", {"restartPolicy": "OnFailure", "containers": [ticker]})
    node_env.wait_pod(ns, "ticker", "Running", lambda p: "running" in container_status(p, "app").get("state", {}))
    arrivals: list[tuple[float, str]] = []
    with admin_http.stream("GET", f"/api/v1/namespaces/{ns}/pods/ticker/log", params={"follow": "true"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            arrivals.append((time.monotonic(), line))
    ticks = [line for _, line in arrivals]
    assert ticks[-1] == "tick 3" and len(ticks) <= 4, ticks
    assert arrivals[-1][0] - arrivals[0][0] > 0.5, "lines arrive as they are written, not all at the end"
    restarted = node_env.wait_pod(
        ns, "ticker", "a restart", lambda p: container_status(p, "app").get("restartCount", 0) >= 1
    )
    assert restarted is not None
    previous = _logs(admin_http, ns, "ticker", previous="true")
    assert previous.status_code == 200
    assert previous.text.splitlines() == [f"tick {i}" for i in range(4)]


def test_a_waiting_container_has_no_logs_yet(node_env: NodeEnv, admin_http: httpx.Client) -> None:
    ns = node_env.namespace()
    node_env.create_pod(ns, "nothing", {"containers": [{"name": "app", "image": "registry.invalid/none:1"}]})
    node_env.wait_pod(ns, "nothing", "a waiting status", lambda p: bool(container_status(p, "app").get("state")))
    answer = _logs(admin_http, ns, "nothing")
    assert answer.status_code == 400
    assert 'container "app" in pod "nothing" is waiting to start' in answer.json()["message"]


def _client_cert(tmp: Path, user: str, signer_key: Any, signer_name: x509.Name) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(signer_key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{user}.crt", tmp / f"{user}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_the_endpoint_is_where_the_node_says_and_admits_only_authorised_cluster_certificates(
    node_env: NodeEnv, tmp_path: Path
) -> None:
    node = node_env.api.get(f"/api/v1/nodes/{node_env.agent.node_name}")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == KUBELET_PORT
    assert {"type": "InternalIP", "address": node_env.net.node_ip} in node["status"]["addresses"]
    base = f"https://{node_env.net.node_ip}:{KUBELET_PORT}"
    anonymous = ssl.create_default_context(cafile=str(node_env.pki.ca_cert))
    with httpx.Client(base_url=base, verify=anonymous) as client:
        assert client.get("/healthz").text == "ok", "the serving certificate is the cluster CA's, for the node address"
        assert client.get("/containerLogs/default/x/y").status_code == 401

    ca_key = serialization.load_pem_private_key(node_env.pki.ca_key.read_bytes(), password=None)
    ca_name = x509.load_pem_x509_certificate(node_env.pki.ca_cert.read_bytes()).subject
    nobody = ssl.create_default_context(cafile=str(node_env.pki.ca_cert))
    nobody.load_cert_chain(*_client_cert(tmp_path, "nobody", ca_key, ca_name))
    with httpx.Client(base_url=base, verify=nobody) as client:
        denied = client.get("/containerLogs/default/x/y")
        assert denied.status_code == 403 and "user=nobody" in denied.text

    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another-ca")])
    stranger = ssl.create_default_context(cafile=str(node_env.pki.ca_cert))
    stranger.load_cert_chain(*_client_cert(tmp_path, "intruder", stranger_key, stranger_name))
    with httpx.Client(base_url=base, verify=stranger) as client, pytest.raises(httpx.HTTPError):
        client.get("/containerLogs/default/x/y")

    admin = ssl.create_default_context(cafile=str(node_env.pki.ca_cert))
    admin.load_cert_chain(str(node_env.pki.admin_cert), str(node_env.pki.admin_key))
    with httpx.Client(base_url=base, verify=admin) as client:
        answer = client.get("/containerLogs/default/no-such-pod/app")
        assert answer.status_code == 404 and json.dumps("no-such-pod") in answer.text


def test_a_finished_pod_gives_its_volumes_back_and_keeps_its_logs(node_env: NodeEnv, admin_http: httpx.Client) -> None:
    """The kubelet tears down a terminated Pod's volumes at once; only deletion takes its logs.

    Every Argo step Pod copies the 100 MB executor into an emptyDir, so a node that kept them
    until the Workflow is deleted fills its disk after a few hundred steps.
    """
    ns = node_env.namespace()
    # The container ends only once the test has seen its volume on the node and says so through it.
    script = (
        "import os, time\n"
        "open('/scratch/blob', 'wb').write(b'x' * 4_000_000)\n"
        "print('wrote the blob', flush=True)\n"
        "deadline = time.monotonic() + 60\n"
        "while not os.path.exists('/scratch/finish') and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    created = node_env.create_pod(
        ns,
        "finisher",
        {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": STEPS_IMAGE,
                    "command": ["python", "-c", script],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    )
    volumes = node_env.workdir / "pods" / created["metadata"]["uid"] / "volumes"
    blob = volumes / "scratch" / "blob"
    _poll("the running Pod's emptyDir holding its blob on the node", lambda: blob.exists(), timeout=60)
    (volumes / "scratch" / "finish").touch()
    pod = node_env.wait_pod(
        ns, "finisher", "completion", lambda p: (p or {}).get("status", {}).get("phase") == "Succeeded"
    )
    assert pod is not None
    _poll("the finished Pod's volumes removed from the node", lambda: not volumes.exists(), timeout=30)
    answer = _logs(admin_http, ns, "finisher")
    assert answer.status_code == 200, answer.text
    assert answer.text == "wrote the blob\n"
