"""A release Pod run again from its first step, as Argo retries a lost Pod: the run's record, not the route, decides.

The steps run in-process as the workflow's ServiceAccount, in the order a retried release Pod runs them: preflight,
deploy-green, probe, smoke and switch again, each with the same workflow name, after the first attempt got as far as
the point under test. The end-to-end tests in ``tests/e2e/test_pod_loss.py`` do the same through Argo with real Pod
deletions; this layer pins each boundary exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import bluegreen_spec as spec
from steps.kube import Kube
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


def image_of(sut: ServiceUnderTest, slot: spec.Slot) -> str:
    found = sut.deployment(f"{sut.name}-{slot.value}")
    assert found is not None, slot
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


class Lost(BaseException):
    """The Pod is gone here: no handler in the step runs."""


class LostAfterMovingTraffic(Kube):
    """The steps' client, in a Pod that is lost right after its switch wrote the Service's selector."""

    def __init__(self, sut: ServiceUnderTest) -> None:
        super().__init__(sut.steps_kube.api, retry=sut.steps_kube.retry)
        self.service_path = f"/namespaces/{sut.namespace}/services/{sut.name}"

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = super()._send(method, path, **kwargs)
        if method in {"PUT", "PATCH"} and path.endswith(self.service_path):
            raise Lost(f"{method} {path}")
        return answer


def retried_release(sut: ServiceUnderTest, image: str, workflow: str, out: Path) -> spec.Slot:
    """The release Pod's steps again, as a retry runs them; returns the slot the retried preflight chose."""
    target, record = sut.preflight(image, workflow, out)
    assert sut.run_deploy_green(image, target, record) == 0
    sut.prove(target, record)
    assert sut.run_switch(target, record) == 0
    return spec.Slot(target)


@pytest.mark.parametrize("lost_after", ["preflight", "deploy-green", "smoke", "the switch's route write", "switch"])
def test_a_retried_release_pod_resumes_its_run(make_service: ServiceFactory, tmp_path: Path, lost_after: str) -> None:
    sut = make_service("retry", router="service", replicas=1)
    sut.deploy(IMAGE_V2, "wf-v2", tmp_path / "v2", cleanup=False)
    previous = sut.live_slot()
    assert previous is not None
    target, record = sut.preflight(IMAGE_V3, "wf-v3", tmp_path / "first")
    if lost_after != "preflight":
        assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    if lost_after in ("smoke", "the switch's route write", "switch"):
        sut.prove(target, record)
    if lost_after == "the switch's route write":
        with pytest.raises(Lost):
            dataclasses.replace(sut, steps_kube=LostAfterMovingTraffic(sut)).run_switch(target, record)
        assert sut.live_slot() is spec.Slot(target), "the switch was lost before it moved traffic"
    if lost_after == "switch":
        assert sut.run_switch(target, record) == 0

    again = retried_release(sut, IMAGE_V3, "wf-v3", tmp_path / "again")

    assert again is spec.Slot(target), "the retried preflight chose another slot than its run's record"
    assert sut.live_slot() is again and image_of(sut, again) == IMAGE_V3
    assert image_of(sut, previous) == IMAGE_V2, "the retried Pod deployed over the version the run keeps warm"
    assert sut.run_retain(record) == 0
    status = sut.status()
    assert (status.active_slot, status.previous_slot, status.previous_image) == (again, previous, IMAGE_V2), status
    closed = sut.record("wf-v3")["status"]
    assert closed["outcome"] == spec.Phase.succeeded.value, closed
    switched = [e for e in closed["entries"] if e["event"] == "switched"]
    assert len(switched) == 1, "a retried switch moved traffic a second time"


def test_a_retried_preflight_of_a_closed_run_changes_nothing(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("retry-closed", router="service", replicas=1)
    sut.deploy(IMAGE_V2, "wf-v2", tmp_path / "v2", cleanup=False)
    before = sut.bgd()["status"]

    assert sut.run_preflight(IMAGE_V2, "wf-v2", out=tmp_path / "again") != 0

    assert sut.bgd()["status"] == before
