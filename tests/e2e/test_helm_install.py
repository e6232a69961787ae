"""The chart on the local cluster: `helm install` into a namespace of its own, a deploy through it, `helm uninstall`.

The cluster-wide part (the CRDs and admission policies) is already there, installed by the README's commands as
the first namespace's install would have it; this release is a second namespace's, so it leaves the policies to
that one (``admissionPolicies.enabled=false``) and Helm skips the CRDs it finds.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from testenv.demo_service import create_demo_service, demo_image
from testenv.local_cluster import LocalCluster

pytestmark = [pytest.mark.cluster]

CHART = Path(__file__).resolve().parents[2] / "charts" / "argo-bluegreen"
RELEASE = "argo-bluegreen"


def _names(cluster: LocalCluster, kind: str, namespace: str) -> list[str]:
    proc = cluster.run_tool(["kubectl", "get", kind, "-n", namespace, "-o", "json"])
    return sorted(item["metadata"]["name"] for item in json.loads(proc.stdout)["items"])


def test_helm_install_runs_a_deploy_and_helm_uninstall_leaves_the_service_serving(
    installed: LocalCluster, helm: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    kubeconfig = installed.kubeconfig_path
    proc = helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        "admissionPolicies.enabled=false",
        kubeconfig=kubeconfig,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _names(installed, "workflowtemplates", namespace) == [
        "blue-green-cleanup",
        "blue-green-deploy",
        "blue-green-rollback",
    ]
    assert _names(installed, "cronworkflows", namespace) == ["blue-green-cleanup"]

    service = create_demo_service(installed, replicas=1, namespace=namespace)
    try:
        run = service.deploy(demo_image("v2"))
        assert run.phase == "Succeeded", run.summary()
        assert service.serving_version() == "v2"

        proc = helm("uninstall", RELEASE, "--namespace", namespace, kubeconfig=kubeconfig)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _names(installed, "workflowtemplates", namespace) == []
        assert _names(installed, "serviceaccounts", namespace) == ["default"]
        # The services, their specs and the audit trail are the teams'; the chart never owned them.
        assert service.serving_version() == "v2"
        assert [r["status"].get("outcome") for r in service.records()] == ["Succeeded"]
    finally:
        service.retire()
