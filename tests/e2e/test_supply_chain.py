"""The supply-chain gate through the real Argo controller, with the real cosign, offline.

Images are pushed to go-containerregistry's registry, signed and attested with cosign keys made for the test, and
every deploy goes through ``argo submit ... --wait``: cosign runs in the official image's container (the node agent
runs the pinned build for it), ``verify-image`` decides, and each outcome is checked on the workflow, the record and
the slots. A refusal must leave every slot as it was.

Each refusal here costs a whole run, so this test keeps one per check cosign runs (the signature, the scan
attestation) and the missing key. The other ways to fail them are proven a layer down: cosign itself refusing another
key and a tag moved after signing (tests/integration/test_signed_images.py), and the verdict on an expired ignore entry
and a scan older than maxAge (tests/unit/test_image_verdict.py).

Of the workflows started past verify-image with another run's record, only deploy-green's runs here: it shows that in
a real Argo Pod a step knows its workflow from the Pod's label. Every step container gets that label the same way
(tests/unit/test_pipelines.py); switch's refusal of another run's record is proven on the real API server
(tests/integration/test_switch_gates.py), and verify-image's refusal, before any request, to record a made-up verdict
in another run's record through the step's command line (tests/unit/test_run_identity.py).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from testenv.demo_service import DEPLOY_TEMPLATE, NAMESPACE, ROLLBACK_TEMPLATE, DemoService, demo_image
from testenv.supply_chain import (
    DEMO_APP_REPOSITORY_PATH,
    KeyPair,
    LocalRegistry,
    attest_vuln,
    generate_key_pair,
    sign,
    vuln_predicate,
)
from testenv.workflow_run import WorkflowRun

pytestmark = [pytest.mark.cluster]

KEYS_CONFIGMAP = "cosign-keys"


def _kubectl(service: DemoService, *args: str, input_text: str | None = None) -> None:
    service.cluster.run_tool(["kubectl", *args, "-n", NAMESPACE], input_text=input_text)


def _publish_key(service: DemoService, name: str, key: KeyPair) -> None:
    """The platform team's step: the public key in a ConfigMap beside the service (applied, so it can be replaced)."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"cosign.pub": key.public_key_pem},
    }
    _kubectl(service, "apply", "-f", "-", input_text=json.dumps(configmap))


def _set_policy(service: DemoService, policy: dict[str, Any]) -> None:
    patch = json.dumps({"spec": {"imagePolicy": policy}})
    _kubectl(service, "patch", "bgd", service.name, "--type=merge", "-p", patch)


def _policy(configmap: str = KEYS_CONFIGMAP, **vulnerabilities: Any) -> dict[str, Any]:
    return {
        "signature": {"keys": [{"configMap": configmap}], "requireTransparencyLog": False},
        "vulnerabilities": {"maxSeverity": "HIGH", "maxAge": "168h", "ignore": [], **vulnerabilities},
    }


class Images:
    """Pushes, signs and attests demo-app images in the test registry."""

    def __init__(self, registry: LocalRegistry, key: KeyPair) -> None:
        self.registry = registry
        self.key = key

    def push(self, tag: str) -> str:
        """A new image under ``tag``; its digest-pinned reference."""
        digest = self.registry.push_random_image(DEMO_APP_REPOSITORY_PATH, tag)
        return self.registry.reference(DEMO_APP_REPOSITORY_PATH, digest=digest)

    def tagged(self, tag: str) -> str:
        return self.registry.reference(DEMO_APP_REPOSITORY_PATH, tag)

    def signed(self, tag: str, findings: list[tuple[str, str]] | None = None) -> str:
        """Push ``tag``, sign its digest, and attest a scan with ``findings`` (none: a clean scan)."""
        pinned = self.push(tag)
        sign(pinned, self.key.private_key)
        predicate = vuln_predicate(findings or [("CVE-2026-1000", "LOW")], datetime.now(UTC) - timedelta(hours=1))
        attest_vuln(pinned, self.key.private_key, predicate)
        return pinned


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[tuple[KeyPair, KeyPair]]:
    yield generate_key_pair(tmp_path / "ci-key"), generate_key_pair(tmp_path / "other-key")


def _slots(service: DemoService) -> dict[str, tuple[str, int]]:
    """Each slot's image and generation: a refusal must change neither."""
    found = {}
    for slot in ("blue", "green"):
        deployment = service.slot(slot)
        if deployment is not None:
            image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            found[slot] = (image, int(deployment["metadata"]["generation"]))
    return found


def _gate_seconds(run: WorkflowRun) -> float:
    """From the first cosign Pod's start to verify-image's end: what the gate adds to a deploy."""
    nodes = [n for n in run.steps() if n.template in {"cosign", "verify-image"}]
    start = min(datetime.fromisoformat(n.started_at.replace("Z", "+00:00")) for n in nodes)
    end = max(datetime.fromisoformat(n.finished_at.replace("Z", "+00:00")) for n in nodes)
    return (end - start).total_seconds()


def _refused(service: DemoService, run: WorkflowRun, before: dict[str, tuple[str, int]], rule: str) -> str:
    """The run failed at verify-image naming ``rule``, with no slot written; returns the record's reason."""
    assert run.phase == "Failed", run.summary()
    (verify,) = run.runs_of("verify-image")
    assert verify.phase == "Failed", run.summary()
    assert f"refused by {rule}" in verify.message, verify.message
    assert "deploy-green" not in run.step_order(), run.summary()
    assert _slots(service) == before, "a refused image must not reach any slot"
    record = service.record_of(run.name)
    assert record["status"]["verification"]["passed"] is False, record["status"]
    assert record["status"]["verification"]["rule"] == rule, record["status"]
    assert f"refused by {rule}" in record["status"]["reason"], record["status"]
    return str(record["status"]["reason"])


def test_only_signed_and_cleanly_scanned_images_are_deployed(
    demo_service: Callable[..., DemoService], oci_registry: LocalRegistry, keys: tuple[KeyPair, KeyPair]
) -> None:
    ci_key, other_key = keys
    service = demo_service(replicas=1)
    adopted = service.deploy(demo_image("v1"))
    assert adopted.phase == "Succeeded", adopted.summary()
    _publish_key(service, KEYS_CONFIGMAP, ci_key)
    _set_policy(service, _policy())
    images = Images(oci_registry, ci_key)
    gate_seconds: list[float] = []
    outcomes: list[tuple[str, str]] = []

    # 1. Signed by the trusted key, with a clean scan: deployed by digest, verdict recorded.
    good = images.signed("v2")
    run = service.deploy(images.tagged("v2"))
    assert run.phase == "Succeeded", run.summary()
    gate_seconds.append(_gate_seconds(run))
    record = service.record_of(run.name)
    first_verified = record
    verification = record["status"]["verification"]
    assert verification["passed"] is True and verification["signer"] == f"key {KEYS_CONFIGMAP}/cosign.pub"
    assert verification["vulnerabilities"]["highestSeverity"] == "LOW"
    assert record["spec"]["image"] == f"{images.tagged('v2')}@{good.rsplit('@', 1)[1]}", "the tag was pinned once"
    assert record["status"]["digest"] == good.rsplit("@", 1)[1]
    live = service.live_slot()
    assert _slots(service)[live][0] == record["spec"]["image"]
    assert service.serving_version() == "v2"
    outcomes.append(("1 signed, clean scan", run.phase))

    # 2. Unsigned: refused before any slot write; the exit handler has nothing to roll back.
    images.push("v3")
    before = _slots(service)
    run = service.deploy(images.tagged("v3"))
    _refused(service, run, before, "spec.imagePolicy.signature")
    assert service.serving_version() == "v2"
    outcomes.append(("2 unsigned", run.phase))

    # 5. A CRITICAL finding: refused, then accepted while an ignore entry covers it.
    images.signed("v6", [("CVE-2026-4242", "CRITICAL"), ("CVE-2026-1000", "LOW")])
    critical = images.tagged("v6")  # by tag: the demo app reports the tag as its version
    run = service.deploy(critical)
    reason = _refused(service, run, before, "spec.imagePolicy.vulnerabilities.maxSeverity")
    assert "CVE-2026-4242" in reason
    outcomes.append(("5a CRITICAL finding", run.phase))
    tomorrow = date.today() + timedelta(days=1)
    ignore = {"id": "CVE-2026-4242", "reason": "not reachable from the demo app", "expires": tomorrow.isoformat()}
    _set_policy(service, _policy(ignore=[ignore]))
    run = service.deploy(critical)
    assert run.phase == "Succeeded", run.summary()
    gate_seconds.append(_gate_seconds(run))
    accepted = service.record_of(run.name)["status"]["verification"]["vulnerabilities"]
    assert accepted["ignored"] == ["CVE-2026-4242"] and accepted["highestSeverity"] == "LOW", accepted
    assert service.serving_version() == "v6"
    outcomes.append(("5b ignored until tomorrow", run.phase))

    before = _slots(service)

    # 7. The key's ConfigMap is missing: preflight names it and how to publish it, before any write or cosign call.
    _set_policy(service, _policy(configmap="platform-keys"))
    run = service.deploy(images.tagged("v2"))
    assert run.phase == "Failed", run.summary()
    (preflight,) = run.runs_of("preflight")
    assert f"names ConfigMap {NAMESPACE}/platform-keys, which does not exist" in preflight.message, run.summary()
    assert "kubectl create configmap platform-keys" in preflight.message
    assert "cosign" not in run.step_order()
    assert _slots(service) == before and service.serving_version() == "v6"
    assert "platform-keys" in service.record_of(run.name)["status"]["reason"]
    outcomes.append(("7 key ConfigMap missing", run.phase))
    _set_policy(service, _policy(ignore=[ignore]))

    # 8. Started past verify-image, handed another run's record: deploy-green may not reuse the verdict of run 1 (v2,
    # verified for the slot that now retains it). The run's identity is the label Argo puts on the step's Pod.
    idle = "blue" if service.live_slot() == "green" else "green"
    stale = first_verified["metadata"]["name"]
    assert first_verified["spec"]["toSlot"] == idle, "run 1's slot retains v2 now"
    before = _slots(service)
    params = (f"image={first_verified['spec']['image']}", f"slot={idle}", f"record={stale}")
    run = service.submit(DEPLOY_TEMPLATE, *params, extra=("--entrypoint", "deploy-green"))
    assert run.phase == "Failed", run.summary()
    (step,) = run.runs_of("deploy-green")
    refusal = f"may use only its record {run.name}, not {stale}: a gate accepts only the verdicts of the run its Pod"
    assert refusal in step.message, run.summary()
    assert _slots(service) == before and service.serving_version() == "v6"
    outcomes.append(("8 --entrypoint deploy-green, another run's record", run.phase))

    # Re-verification on rollback: with the key rotated away, the retained v2 is refused; trusted again, it returns.
    _set_policy(service, {**_policy(ignore=[ignore]), "reverifyOnRollback": True})
    _publish_key(service, KEYS_CONFIGMAP, other_key)
    before = _slots(service)
    run = service.submit(ROLLBACK_TEMPLATE)
    assert run.phase == "Failed", run.summary()
    (verify,) = run.runs_of("verify-image")
    assert "refused by spec.imagePolicy.signature" in verify.message, run.summary()
    assert _slots(service) == before and service.serving_version() == "v6"
    outcomes.append(("rollback re-verify, key rotated away", run.phase))
    _publish_key(service, KEYS_CONFIGMAP, ci_key)
    run = service.submit(ROLLBACK_TEMPLATE)
    assert run.phase == "Succeeded", run.summary()
    assert run.runs_of("cosign"), "the retained image was verified again"
    assert service.serving_version() == "v2"
    outcomes.append(("rollback re-verify, trusted key", run.phase))

    print("\nsupply-chain scenarios:")
    for scenario, phase in outcomes:
        print(f"  {scenario:40} {phase}")
    print(
        f"gate time on passing deploys (cosign start to verify-image end): {[round(s, 1) for s in gate_seconds]} s, "
        f"median {statistics.median(gate_seconds):.1f} s"
    )
