"""Probes and smoke tests reach only the new slot: the wait for a retargeted Service's endpoints, on the real API.

A Service retargeted from the live slot to the idle one keeps offering the live pods until the endpoints controller
rewrites its EndpointSlices; on a loaded cluster that is long enough for a smoke test to pass against the live version
and let a failing one go live. Here the slices are written by hand, so the lag lasts exactly as long as the test
wants, and the wait is run as the deployer's ServiceAccount, whose Role must let it read them.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bluegreen_contract import ENDPOINT_SLICES, PODS, SERVICES
from bluegreen_spec import SERVICE_LABEL, SLOT_LABEL, Slot
from steps.endpoints import SERVICE_NAME_LABEL, wait_serving_slot
from steps.errors import CheckFailed
from tests.integration.service_helpers import ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane

SERVICE = "cart"
PREVIEW = f"{SERVICE}-preview"


def endpoint_slice(pods: list[str], *, ready: bool = True) -> dict[str, Any]:
    """A slice of the preview as a controller of its own would write it (the endpoints controller leaves it be)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{PREVIEW}-by-hand",
            "labels": {SERVICE_NAME_LABEL: PREVIEW, "endpointslice.kubernetes.io/managed-by": "tests.argo-bluegreen"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [f"10.99.0.{n + 1}"],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "name": p},
            }
            for n, p in enumerate(pods)
        ],
    }


@pytest.fixture
def sut(make_service: ServiceFactory) -> ServiceUnderTest:
    service = make_service(SERVICE, replicas=1)
    # No selector: the endpoints controller keeps out, and the slices below are the only ones.
    service.admin_kube.create(
        SERVICES,
        service.namespace,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": PREVIEW}, "spec": {"ports": [{"port": 80}]}},
    )
    return service


def green_pod(sut: ServiceUnderTest) -> str:
    """The team's running pod, labelled as green's: a Ready pod of the slot, as the wait finds them by labels."""
    [pod] = [p for p in sut.admin_kube.list(PODS, sut.namespace) if not p["metadata"].get("deletionTimestamp")]
    name = str(pod["metadata"]["name"])
    labels = {SERVICE_LABEL: SERVICE, SLOT_LABEL: Slot.green.value}
    sut.admin_kube.merge_patch(PODS, sut.namespace, name, {"metadata": {"labels": labels}})
    return name


def test_the_wait_ends_only_once_the_slices_offer_the_slots_current_pods_alone(sut: ServiceUnderTest) -> None:
    live = ["cart-blue-5c5f4c74f9-mhcdz", "cart-blue-5c5f4c74f9-x2k9p"]
    green = green_pod(sut)
    created = sut.admin_kube.create(ENDPOINT_SLICES, sut.namespace, endpoint_slice(live))
    done = threading.Event()
    outcome: list[str | BaseException] = []

    def wait() -> None:
        try:
            outcome.append(wait_serving_slot(sut.steps_kube, sut.namespace, PREVIEW, SERVICE, Slot.green, 120))
        except BaseException as failure:
            outcome.append(failure)
        done.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    # The preview still offers the live slot: the wait must hold through several reads of it.
    assert not done.wait(1.0), outcome
    # The controller catches up halfway: a new pod is ready beside the old ones. Still not only green.
    both = endpoint_slice([*live, green])
    both["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    created = sut.admin_kube.replace(ENDPOINT_SLICES, sut.namespace, both)
    assert not done.wait(1.0), outcome
    # Only green's pods are ready now; the old ones linger as not ready, which kube-proxy skips.
    only_green = endpoint_slice([green])
    only_green["endpoints"] += endpoint_slice(live, ready=False)["endpoints"]
    only_green["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    sut.admin_kube.replace(ENDPOINT_SLICES, sut.namespace, only_green)
    assert done.wait(60), "the wait did not end once the preview offered only green"
    assert isinstance(outcome[0], str) and "green's 1 pods" in outcome[0], outcome


def test_a_preview_that_never_follows_fails_naming_what_it_still_offers(sut: ServiceUnderTest) -> None:
    green_pod(sut)
    sut.admin_kube.create(ENDPOINT_SLICES, sut.namespace, endpoint_slice(["cart-blue-5c5f4c74f9-mhcdz"]))
    with pytest.raises(CheckFailed) as failure:
        wait_serving_slot(sut.steps_kube, sut.namespace, PREVIEW, SERVICE, Slot.green, 2)
    message = str(failure.value)
    assert f"Service {sut.namespace}/{PREVIEW} still offers cart-blue-5c5f4c74f9-mhcdz" in message
    assert "kube-controller-manager" in message


def test_no_ready_endpoint_is_not_yet_serving(sut: ServiceUnderTest) -> None:
    sut.admin_kube.create(ENDPOINT_SLICES, sut.namespace, endpoint_slice(["cart-green-594d96bbb6-pnjx2"], ready=False))
    with pytest.raises(CheckFailed, match="still offers no ready pod"):
        wait_serving_slot(sut.steps_kube, sut.namespace, PREVIEW, SERVICE, Slot.green, 2)
