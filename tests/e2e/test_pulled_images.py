"""Pods of the steps image on the local cluster: pulled from the registry mirror, run from the image's own root.

The cluster built the image from this tree and pushed it to its mirror when it started (testenv/image_mirror.py);
these Pods name it by its public name, as the templates do, and the node agent pulls it through the mirror.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bluegreen_version import __version__
from testenv.local_cluster import ARGO_VERSION_TAG, EXECUTOR_IMAGE, LocalCluster
from testenv.node.images import STEPS_REPOSITORY
from testenv.rest import KubeApiError, request, request_text
from testenv.supply_chain import COSIGN_IMAGE, COSIGN_VERSION

pytestmark = [pytest.mark.cluster]

STEPS_IMAGE = f"{STEPS_REPOSITORY}:{__version__}"
REPO = Path(__file__).resolve().parents[2]
#: A bounded wait for a Pod of an image already on the node, or for its pull to fail.
POD_DEADLINE_SECONDS = 120.0


@pytest.fixture
def namespace(local_cluster: LocalCluster) -> Iterator[str]:
    name = f"pulled-{uuid.uuid4().hex[:8]}"
    request(local_cluster.api, "POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    try:
        request(local_cluster.api, "DELETE", f"/api/v1/namespaces/{name}")
    except KubeApiError as error:
        if error.status != 404:
            raise


def run_pod(cluster: LocalCluster, namespace: str, name: str, container: dict[str, Any]) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": STEPS_IMAGE, **container}],  # container may name another image
        },
    }
    request(cluster.api, "POST", f"/api/v1/namespaces/{namespace}/pods", body=body)


def wait_pod(
    cluster: LocalCluster, namespace: str, name: str, what: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + POD_DEADLINE_SECONDS
    while True:
        pod = request(cluster.api, "GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        if done(pod):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {namespace}/{name} never {what}: {pod.get('status')}")
        time.sleep(0.5)


def finished(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in {"Succeeded", "Failed"}


def log_of(cluster: LocalCluster, namespace: str, name: str) -> str:
    return request_text(cluster.api, f"/api/v1/namespaces/{namespace}/pods/{name}/log")


def test_a_pod_whose_args_replace_the_images_cmd_runs_its_entrypoint(
    local_cluster: LocalCluster, namespace: str
) -> None:
    run_pod(local_cluster, namespace, "version", {"args": ["--version"]})
    pod = wait_pod(local_cluster, namespace, "version", "finished", finished)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert log_of(local_cluster, namespace, "version").strip() == f"bluegreen-step {__version__}"
    status = pod["status"]["containerStatuses"][0]
    assert status["imageID"].startswith(f"{STEPS_REPOSITORY}@sha256:"), status
    if local_cluster.mirrored:  # known to the process that started the cluster and pushed the image
        assert status["imageID"] == f"{STEPS_REPOSITORY}@{local_cluster.mirrored['steps'].digest}"


def test_a_pod_whose_command_replaces_the_entrypoint_runs_in_the_images_root(
    local_cluster: LocalCluster, namespace: str
) -> None:
    script = (
        "import os, sys; print(os.getuid(), os.getgid(), os.getcwd(), sys.executable, "
        "os.path.exists('/opt/bluegreen/lib/python3.11/site-packages/steps/cli.py'), "
        f"os.path.exists({str(REPO)!r}))"
    )
    run_pod(local_cluster, namespace, "command", {"command": ["python3", "-c", script]})
    pod = wait_pod(local_cluster, namespace, "command", "finished", finished)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    # The image's user and working directory, its virtualenv's Python, its files, and none of the node's checkout.
    assert log_of(local_cluster, namespace, "command").split() == [
        "65532",
        "65532",
        "/",
        "/opt/bluegreen/bin/python3",
        "True",
        "False",
    ]


def test_an_image_the_mirror_does_not_hold_cannot_be_pulled(local_cluster: LocalCluster, namespace: str) -> None:
    missing = f"{STEPS_REPOSITORY}:no-such-tag"
    body = {
        "metadata": {"name": "missing"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": missing}]},
    }
    request(local_cluster.api, "POST", f"/api/v1/namespaces/{namespace}/pods", body=body)
    seen: set[str] = set()

    def both_reasons(pod: dict[str, Any]) -> bool:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in {"ErrImagePull", "ImagePullBackOff"}:
                seen.add(waiting["reason"])
                assert "no-such-tag" in waiting.get("message", ""), waiting
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    pod = wait_pod(local_cluster, namespace, "missing", "reported ErrImagePull then ImagePullBackOff", both_reasons)
    assert pod["status"]["phase"] == "Pending"


@pytest.mark.parametrize(
    ("image", "args", "expected"),
    [
        pytest.param(COSIGN_IMAGE, ["version"], COSIGN_VERSION, id="cosign"),
        pytest.param(EXECUTOR_IMAGE, ["version"], ARGO_VERSION_TAG, id="argoexec"),
    ],
)
def test_the_executor_and_cosign_images_run_their_program_as_their_entrypoint(
    local_cluster: LocalCluster, namespace: str, image: str, args: list[str], expected: str
) -> None:
    name = image.rsplit("/", 1)[-1].split(":")[0]
    run_pod(local_cluster, namespace, name, {"image": image, "args": args})
    pod = wait_pod(local_cluster, namespace, name, "finished", finished)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert expected in log_of(local_cluster, namespace, name)
    repository = image.rsplit(":", 1)[0]
    assert pod["status"]["containerStatuses"][0]["imageID"].startswith(f"{repository}@sha256:")
