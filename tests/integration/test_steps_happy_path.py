"""Deploying twice, blue -> green -> blue, step by step as the workflow's ServiceAccount."""

from __future__ import annotations

from pathlib import Path

import pytest

import bluegreen_spec as spec
from tests.integration.service_helpers import IMAGE_V1, IMAGE_V2, IMAGE_V3, ServiceFactory

pytestmark = pytest.mark.controlplane


@pytest.mark.parametrize("router", ["istio", "service", "gateway-api"])
def test_deploy_twice_blue_green_blue(
    make_service: ServiceFactory,
    tmp_path: Path,
    router: str,
) -> None:
    sut = make_service(
        "happy",
        router=router,
        smokeTests=[{"name": "users-api", "endpoint": "/api/users/health", "bodyContains": '"ok"'}],
    )
    # Probe and smoke tests reach the new slot's real Pods through its preview Service.
    first = sut.deploy(IMAGE_V2, "deploy-1", tmp_path / "1")
    assert first == "green"
    assert sut.live_slot() is spec.Slot.green
    status = sut.status()
    assert (status.phase, status.active_slot, status.active_image) == (
        spec.Phase.succeeded,
        spec.Slot.green,
        IMAGE_V2,
    )
    assert (status.previous_slot, status.previous_image) == (spec.Slot.blue, IMAGE_V1)
    assert status.workflow is None
    original = sut.deployment("cart")
    assert original is not None and original["spec"]["replicas"] == 0  # adopted, kept, scaled to zero
    blue = sut.deployment("cart-blue")
    assert blue is not None and blue["spec"]["replicas"] == 2  # retained warm
    assert blue["metadata"]["annotations"][spec.RETAIN_UNTIL_ANNOTATION] == status.retain_until
    record = sut.record("deploy-1")
    assert record["status"]["outcome"] == "Succeeded"
    assert record["spec"]["previousImage"] == IMAGE_V1
    assert record["spec"]["triggeredBy"] == "ci"

    second = sut.deploy(IMAGE_V3, "deploy-2", tmp_path / "2")
    assert second == "blue"
    assert sut.live_slot() is spec.Slot.blue
    status = sut.status()
    assert (status.active_slot, status.active_image, status.previous_image) == (spec.Slot.blue, IMAGE_V3, IMAGE_V2)
    assert [h.record for h in status.history] == ["deploy-2", "deploy-1"]
    assert {r["metadata"]["name"]: r["status"]["outcome"] for r in sut.records()} == {
        "deploy-1": "Succeeded",
        "deploy-2": "Succeeded",
    }
    # Traffic moved only after the new slot was available and had passed its probe and smoke tests.
    for name in ("deploy-1", "deploy-2"):
        events = [e["event"] for e in sut.record(name)["status"]["entries"]]
        assert events.index("slot-available") < events.index("probe-result") < events.index("smoke-result")
        assert events.index("smoke-result") < events.index("intent") < events.index("switched")
