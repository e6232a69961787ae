"""The signed-image kit against the real programs: crane's registry, cosign's keys, signatures and attestations.

These are the verdicts the deploy gate builds on, seen from cosign itself: a keyed signature and a ``vuln``
attestation verify offline; another key, an unsigned image, a missing attestation and a tag moved after signing do not.
The last test runs the official cosign image in a Pod of the local cluster against the same registry.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testenv.cluster import KubeCluster
from testenv.rest import KubeApiError, request
from testenv.supply_chain import (
    COSIGN_IMAGE,
    DEMO_APP_REPOSITORY_PATH,
    VULN_PREDICATE_TYPE,
    LocalRegistry,
    attest_vuln,
    generate_key_pair,
    run_cosign,
    sign,
    vuln_predicate,
)

POD_SECONDS = 60.0
# cosign's exit codes (cmd/cosign/errors): what the gate tells apart.
IMAGE_WITHOUT_SIGNATURE = 10
NO_MATCHING_SIGNATURE = 12


@pytest.fixture(scope="module")
def loopback_registry(pinned_tool: Callable[[str], Path]) -> Iterator[LocalRegistry]:
    """The registry on loopback (plain HTTP to cosign and crane, as an RFC 1918 address is): no cluster needed."""
    crane = pinned_tool("crane")
    pinned_tool("cosign")
    with LocalRegistry("127.0.0.1", crane=crane) as registry:
        yield registry


def _verify(image: str, public_key: Path, output: Path) -> tuple[int, str]:
    proc = run_cosign(
        ["verify", "--key", str(public_key), "--insecure-ignore-tlog=true", "--output-file", str(output), image]
    )
    return proc.returncode, proc.stderr


def _verify_vuln_attestation(image: str, public_key_pem: str, output: Path) -> tuple[int, str]:
    proc = run_cosign(
        [
            "verify-attestation",
            "--type",
            "vuln",
            "--key",
            "env://COSIGN_PUBLIC_KEY",
            "--insecure-ignore-tlog=true",
            "--output-file",
            str(output),
            image,
        ],
        env={"COSIGN_PUBLIC_KEY": public_key_pem},
    )
    return proc.returncode, proc.stderr


def test_keyed_signatures_and_vuln_attestations_verify_offline_and_only_for_their_key_and_digest(
    loopback_registry: LocalRegistry, tmp_path: Path
) -> None:
    registry, repository = loopback_registry, DEMO_APP_REPOSITORY_PATH
    digest = registry.push_random_image(repository, "v1")
    assert registry.digest(repository, "v1") == digest
    image = registry.reference(repository, digest=digest)
    signer, stranger = generate_key_pair(tmp_path / "signer"), generate_key_pair(tmp_path / "stranger")
    signer_pub, stranger_pub = tmp_path / "signer.pub", tmp_path / "stranger.pub"
    signer_pub.write_text(signer.public_key_pem)
    stranger_pub.write_text(stranger.public_key_pem)
    scanned_at = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    sign(image, signer.private_key)
    attest_vuln(image, signer.private_key, vuln_predicate([("CVE-2026-0001", "CRITICAL")], scanned_at))

    code, stderr = _verify(image, signer_pub, tmp_path / "verify.json")
    assert code == 0, stderr
    [payload] = json.loads((tmp_path / "verify.json").read_text())
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
    assert payload["critical"]["identity"]["docker-reference"] == registry.reference(repository)

    code, stderr = _verify(image, stranger_pub, tmp_path / "stranger.json")
    assert code == NO_MATCHING_SIGNATURE, stderr
    assert "no matching signatures" in stderr

    code, stderr = _verify_vuln_attestation(image, signer.public_key_pem, tmp_path / "attestation.json")
    assert code == 0, stderr
    [envelope] = [json.loads(line) for line in (tmp_path / "attestation.json").read_text().splitlines()]
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == VULN_PREDICATE_TYPE
    assert statement["subject"][0]["digest"]["sha256"] == digest.removeprefix("sha256:")
    predicate = statement["predicate"]
    assert predicate["metadata"]["scanFinishedOn"] == "2026-11-27T01:02:03Z"
    [result] = predicate["scanner"]["result"]["Results"]
    findings = [(v["VulnerabilityID"], v["Severity"]) for v in result["Vulnerabilities"]]
    assert findings == [("CVE-2026-0001", "CRITICAL")]

    unsigned = registry.push_random_image(repository, "v2")
    code, stderr = _verify(registry.reference(repository, digest=unsigned), signer_pub, tmp_path / "unsigned.json")
    assert code == IMAGE_WITHOUT_SIGNATURE, stderr
    assert "no signatures found" in stderr

    # Signed but never attested: the signature alone does not pass the attestation check.
    sign(registry.reference(repository, digest=unsigned), signer.private_key)
    code, stderr = _verify_vuln_attestation(
        registry.reference(repository, digest=unsigned), signer.public_key_pem, tmp_path / "missing.json"
    )
    assert code != 0
    assert "no matching attestations" in stderr

    # A tag moved after signing: the signature stays with the digest it was made for.
    other = registry.push_random_image(repository, "elsewhere")
    registry.move_tag(repository, "v1", other)
    assert registry.digest(repository, "v1") == other
    code, stderr = _verify(registry.reference(repository, "v1"), signer_pub, tmp_path / "moved.json")
    assert code == IMAGE_WITHOUT_SIGNATURE, stderr


@pytest.mark.cluster
def test_a_pod_of_the_cosign_image_verifies_an_image_of_the_test_registry(
    oci_registry: LocalRegistry, kube_cluster: KubeCluster, make_namespace: Callable[..., str], tmp_path: Path
) -> None:
    digest = oci_registry.push_random_image(DEMO_APP_REPOSITORY_PATH, "v1")
    image = oci_registry.reference(DEMO_APP_REPOSITORY_PATH, digest=digest)
    signer = generate_key_pair(tmp_path / "signer")
    sign(image, signer.private_key)

    api = kube_cluster.admin_api_client()
    ns = make_namespace("cosign")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "verify"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "cosign",
                    "image": COSIGN_IMAGE,
                    "args": [
                        "verify",
                        "--key=env://COSIGN_PUBLIC_KEY",
                        "--insecure-ignore-tlog=true",
                        "--output-file=/tmp/out.json",
                        image,
                    ],
                    "env": [{"name": "COSIGN_PUBLIC_KEY", "value": signer.public_key_pem}],
                    # cosign's output file is the termination message, so the verdict comes back in the Pod's status.
                    "terminationMessagePath": "/tmp/out.json",
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }
    deadline = time.monotonic() + POD_SECONDS
    # The ServiceAccount admission plugin wants the `default` ServiceAccount, which the real controller creates.
    while True:
        try:
            request(api, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
            break
        except KubeApiError:
            assert time.monotonic() < deadline, f"no default ServiceAccount in {ns} after {POD_SECONDS:.0f}s"
            time.sleep(0.1)
    request(api, "POST", f"/api/v1/namespaces/{ns}/pods", body=pod)
    while True:
        live = request(api, "GET", f"/api/v1/namespaces/{ns}/pods/verify")
        if live["status"].get("phase") in {"Succeeded", "Failed"}:
            break
        assert time.monotonic() < deadline, f"cosign Pod not finished after {POD_SECONDS:.0f}s: {live['status']}"
        time.sleep(0.2)
    [container] = live["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (live["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated.get("message")
    [payload] = json.loads(terminated["message"])
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
