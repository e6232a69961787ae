"""The CI identity of ``manifests/rbac/ci-submitter``, with a real ServiceAccount token on the local cluster.

It runs the script the CI examples run (``argo submit --from workflowtemplate/blue-green-deploy ... --wait``, then
the record), so the Role is proved sufficient for what CI does, and it is refused everything else: by real requests
where cheap, and by the API server's authorizer (``kubectl auth can-i`` as the ServiceAccount) for the rest.

``create`` on Workflows is all RBAC can say about a Workflow; what it may run is the workflow-controller's to refuse,
under ``templateReferencing: Strict`` (``manifests/argo-controller/``), which the local cluster's controller runs
with. Each Workflow below is one way a submitter would otherwise run code of its own as ``bluegreen-deployer``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import ci_submitter, deploy_template, rollback_template, submit_policy
from pipelines.settings import SERVICE_ACCOUNT
from testenv.demo_service import NAMESPACE, REPO, DemoService, demo_image
from testenv.local_cluster import LocalCluster
from testenv.rest import request

pytestmark = [pytest.mark.cluster]

SCRIPT = REPO / "examples" / "ci" / "bluegreen-deploy.sh"
# A digest as a registry reports it after a push; the node agent runs the demo app by its tag and ignores it.
DIGEST = "@sha256:" + "5" * 64

ALLOWED = [
    ["create", "workflows.argoproj.io"],
    ["get", "workflows.argoproj.io"],
    ["list", "workflows.argoproj.io"],
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


#: Argo v4.0.5's words (workflow/controller/operator.go, workflow/util/merge.go) for a Workflow it will not run.
NOT_A_REFERENCE = "workflows must use workflowTemplateRef to be executed when the controller is in reference mode"
NOT_PERMITTED = "are not permitted when using workflowTemplateRef with templateReferencing restriction"
REFUSAL_SECONDS = 60.0


def _hostile_workflows(service: str) -> dict[str, tuple[dict[str, Any], str]]:
    """Each Workflow a CI identity could create to run code of its own as the deployer, and Argo's refusal."""
    own_code = {
        "name": "switch",
        "container": {"image": demo_image("v1"), "command": ["sh", "-c", "echo anything, as the deployer"]},
    }
    reference = {"workflowTemplateRef": {"name": deploy_template.NAME}}
    arguments = {"parameters": [{"name": "service", "value": service}, {"name": "image", "value": demo_image("v1")}]}
    return {
        "inline templates, as bluegreen-deployer": (
            {"serviceAccountName": SERVICE_ACCOUNT, "entrypoint": "switch", "templates": [own_code]},
            NOT_A_REFERENCE,
        ),
        # Without the restriction a Workflow's own templates replace the referenced template's of the same name.
        "the deploy template with its switch replaced": (
            {**reference, "arguments": arguments, "templates": [own_code]},
            f"fields [Templates] {NOT_PERMITTED}",
        ),
        "the deploy template as another ServiceAccount": (
            {**reference, "arguments": arguments, "serviceAccountName": "default"},
            f"fields [ServiceAccountName] {NOT_PERMITTED}",
        ),
        "the deploy template with a podSpecPatch": (
            {**reference, "arguments": arguments, "podSpecPatch": json.dumps({"hostNetwork": True})},
            f"fields [PodSpecPatch] {NOT_PERMITTED}",
        ),
        # The steps know their run by this label (steps/run_identity.py); a forged one would reuse its verdicts.
        "the deploy template with its Pods relabelled as another run": (
            {**reference, "arguments": arguments, "podMetadata": {"labels": {"workflows.argoproj.io/workflow": "x"}}},
            f"fields [PodMetadata] {NOT_PERMITTED}",
        ),
    }


def _refused(cluster: LocalCluster, name: str) -> dict[str, Any]:
    """The Workflow once the controller has judged it: its status, which must be Error, and it must have no Pod."""
    deadline = time.monotonic() + REFUSAL_SECONDS
    while True:
        workflow = request(cluster.api, "GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows/{name}")
        status: dict[str, Any] = workflow.get("status") or {}
        if status.get("phase") in ("Error", "Failed", "Succeeded"):
            break
        assert time.monotonic() < deadline, f"workflow {name} still {status.get('phase') or 'unjudged'}"
        time.sleep(0.2)
    pods = request(
        cluster.api,
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        query={"labelSelector": f"workflows.argoproj.io/workflow={name}"},
    )["items"]
    assert pods == [], f"workflow {name} ran Pods"
    return status


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


def _as_ci(
    cluster: LocalCluster, kubeconfig: Path, argv: list[str], input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=REPO,
        env=cluster.tool_env({"KUBECONFIG": str(kubeconfig), "BLUEGREEN_NAMESPACE": NAMESPACE, **env}),
        input=input,
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
    # Created directly, the same Workflow would be started by the controller with its own rights: admission refuses it.
    direct = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "ci-"},
        "spec": {
            "workflowTemplateRef": {"name": rollback_template.NAME},
            "arguments": {"parameters": [{"name": "service", "value": service.name}]},
        },
    }
    refused = _as_ci(installed, kubeconfig, ["kubectl", "create", "-f", "-"], input=json.dumps(direct))
    assert refused.returncode != 0 and f"[{submit_policy.RULE}]" in refused.stderr, refused.stdout + refused.stderr
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

    # What `create workflows` allows the API server cannot judge; the controller refuses it before any Pod exists.
    hostile = _hostile_workflows(service.name)
    created = {}
    for attack, (spec, _) in hostile.items():
        body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "ci-"}}
        create = ["kubectl", "create", "-o", "name", "-f", "-"]
        proc = _as_ci(installed, kubeconfig, create, input=json.dumps({**body, "spec": spec}))
        assert proc.returncode == 0, f"{attack}: {proc.stderr}"
        created[attack] = proc.stdout.strip().rpartition("/")[2]
    outcomes = {attack: _refused(installed, name) for attack, name in created.items()}
    wrong = {
        attack: status
        for attack, status in outcomes.items()
        if status["phase"] != "Error" or hostile[attack][1] not in status.get("message", "")
    }
    assert wrong == {}, wrong
