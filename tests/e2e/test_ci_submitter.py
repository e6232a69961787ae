"""The CI identity of ``manifests/rbac/ci-submitter``, with a real ServiceAccount token on the local cluster.

It runs the script the CI examples run (``argo submit --from workflowtemplate/blue-green-deploy ... --wait``, then
the record), so the Role is proved sufficient for what CI does, and it is refused everything else: by real requests
where cheap, and by the API server's authorizer (``kubectl auth can-i`` as the ServiceAccount) for the rest.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipelines import ci_submitter
from testenv.demo_service import NAMESPACE, REPO, DemoService, demo_image
from testenv.local_cluster import LocalCluster
from testenv.rest import request

pytestmark = [pytest.mark.cluster]

SCRIPT = REPO / "examples" / "ci" / "bluegreen-deploy.sh"
# A digest as a registry reports it after a push; the node agent runs the demo app by its tag and ignores it.
DIGEST = "@sha256:" + "5" * 64

ALLOWED = [
    ["create", "workflows.argoproj.io"],
    ["watch", "workflows.argoproj.io"],
    ["get", "workflowtemplates.argoproj.io/blue-green-deploy"],
    ["get", "deploymentrecords.argo-bluegreen.io/any-run"],
]
DENIED = [
    ["delete", "workflows.argoproj.io"],
    ["patch", "workflows.argoproj.io"],
    ["update", "workflows.argoproj.io"],
    ["get", "workflowtemplates.argoproj.io/blue-green-rollback"],
    ["list", "workflowtemplates.argoproj.io"],
    ["create", "workflowtemplates.argoproj.io"],
    ["create", "cronworkflows.argoproj.io"],
    ["get", "clusterworkflowtemplates.argoproj.io"],
    ["list", "deploymentrecords.argo-bluegreen.io"],
    ["delete", "deploymentrecords.argo-bluegreen.io"],
    ["patch", "bluegreendeployments.argo-bluegreen.io"],
    ["get", "secrets"],
    ["list", "secrets"],
    ["get", "pods", "--subresource=log"],
    ["create", "pods", "--subresource=exec"],
    ["create", "pods"],
    ["patch", "deployments.apps"],
    ["patch", "services"],
    ["create", "workflows.argoproj.io", "-n", "default"],
    ["create", "rolebindings.rbac.authorization.k8s.io"],
]


def _token_kubeconfig(cluster: LocalCluster, directory: Path) -> Path:
    """A kubeconfig holding a short-lived token of the CI ServiceAccount (TokenRequest), as a CI secret would."""
    token = request(
        cluster.api,
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ci_submitter.NAME}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": cluster.server, "certificate-authority": cluster.configuration().ssl_ca_cert},
            }
        ],
        "users": [{"name": "ci", "user": {"token": token}}],
        "contexts": [{"name": "ci", "context": {"cluster": "local", "user": "ci", "namespace": NAMESPACE}}],
        "current-context": "ci",
    }
    path = directory / "ci-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _as_ci(cluster: LocalCluster, kubeconfig: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=REPO,
        env=cluster.tool_env({"KUBECONFIG": str(kubeconfig), "BLUEGREEN_NAMESPACE": NAMESPACE, **env}),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_ci_identity_deploys_with_the_example_script_and_can_do_nothing_else(
    installed: LocalCluster, demo_service: Callable[..., DemoService], tmp_path: Path
) -> None:
    applied = installed.run_tool(["kubectl", "apply", "-k", f"manifests/{ci_submitter.DIRECTORY}"], cwd=REPO)
    assert f"serviceaccount/{ci_submitter.NAME}" in applied.stdout, applied.stdout
    kubeconfig = _token_kubeconfig(installed, tmp_path)
    service = demo_service()

    # A successful deploy: the script exits 0 and names the record.
    good = demo_image("v1") + DIGEST
    deployed = _as_ci(installed, kubeconfig, ["bash", str(SCRIPT), service.name, good], TRIGGERED_BY="ci-test")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [record] = service.records()
    assert f"record {record['metadata']['name']}, outcome Succeeded" in deployed.stdout, deployed.stdout
    assert record["spec"]["image"] == good and record["spec"]["triggeredBy"] == "ci-test", record["spec"]

    # A failed deploy: the script fails the job and prints the record's outcome and reason.
    bad = demo_image("v2-fail-smoke") + DIGEST
    failed = _as_ci(installed, kubeconfig, ["bash", str(SCRIPT), service.name, bad])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    record = next(r for r in service.records() if r["spec"]["image"] == bad)
    status = record["status"]
    assert "smoke" in status["reason"].lower(), status
    assert f"outcome {status['outcome']}" in failed.stderr, failed.stderr
    assert f"reason: {status['reason']}" in failed.stderr, failed.stderr
    assert service.live_slot() and service.serving_version() == "v1"

    # Real requests beyond the Role are refused by the API server.
    other_template = _as_ci(
        installed,
        kubeconfig,
        [
            "argo",
            "submit",
            "--from",
            "workflowtemplate/blue-green-rollback",
            "-n",
            NAMESPACE,
            "-p",
            f"service={service.name}",
        ],
    )
    assert other_template.returncode != 0 and "forbidden" in other_template.stderr.lower(), other_template.stderr
    delete = _as_ci(installed, kubeconfig, ["argo", "delete", record["metadata"]["name"], "-n", NAMESPACE])
    assert delete.returncode != 0 and "forbidden" in delete.stderr.lower(), delete.stderr
    secrets = _as_ci(installed, kubeconfig, ["kubectl", "get", "secrets", "-n", NAMESPACE])
    assert secrets.returncode != 0 and "forbidden" in secrets.stderr.lower(), secrets.stderr

    # And the authorizer's word for every other call that matters; `can-i` exits 0 for yes and 1 for no.
    def can(check: list[str]) -> bool:
        namespace = [] if "-n" in check else ["-n", NAMESPACE]
        proc = _as_ci(installed, kubeconfig, ["kubectl", "auth", "can-i", *check, *namespace])
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode == 0

    assert [c for c in ALLOWED if not can(c)] == []
    assert [c for c in DENIED if can(c)] == []
