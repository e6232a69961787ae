"""``kubectl logs`` (snapshot and ``-f``) and ``argo logs`` against the whole local cluster, through the node agent."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.local_cluster import LocalCluster

pytestmark = pytest.mark.cluster

STEPS_IMAGE = "ghcr.io/argo-bluegreen/steps:0.1.0"
TICKS = 4
TICK_SECONDS = 0.7


@pytest.fixture
def namespace(local_cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount has Argo's executor permissions; deleted afterwards."""
    name = f"logs-{uuid.uuid4().hex[:6]}"
    local_cluster.run_tool(["kubectl", "create", "namespace", name])
    executor = ["kubectl", "create", "role", "executor", "-n", name, "--verb=create,patch"]
    local_cluster.run_tool([*executor, "--resource=workflowtaskresults.argoproj.io"])
    binding = ["kubectl", "create", "rolebinding", "executor", "-n", name, "--role=executor"]
    local_cluster.run_tool([*binding, f"--serviceaccount={name}:default"])
    yield name
    local_cluster.run_tool(["kubectl", "delete", "namespace", name, "--wait=false"], check=False)


def test_kubectl_logs_and_follow(local_cluster: LocalCluster, namespace: str) -> None:
    script = f"import time\nfor i in range({TICKS}):\n    print(f'tick {{i}}', flush=True)\n"
    script += f"    time.sleep({TICK_SECONDS})"
    run = ["kubectl", "run", "ticker", "-n", namespace, f"--image={STEPS_IMAGE}", "--restart=Never", "--command"]
    local_cluster.run_tool([*run, "--", "python", "-c", script])
    ready = ["kubectl", "wait", "-n", namespace, "--for=condition=Ready", "pod/ticker", "--timeout=60s"]
    local_cluster.run_tool(ready)
    with subprocess.Popen(
        ["kubectl", "logs", "-f", "-n", namespace, "ticker"],
        env=local_cluster.tool_env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as follow:
        assert follow.stdout is not None
        arrivals = [(time.monotonic(), line.rstrip("\n")) for line in follow.stdout]
        assert follow.wait(timeout=60) == 0, "`kubectl logs -f` ends by itself when the container ends"
    assert [line for _, line in arrivals][-1] == f"tick {TICKS - 1}"
    assert arrivals[-1][0] - arrivals[0][0] > TICK_SECONDS, "lines arrive while the container writes them"

    snapshot = local_cluster.run_tool(["kubectl", "logs", "-n", namespace, "ticker"]).stdout
    assert snapshot.splitlines() == [f"tick {i}" for i in range(TICKS)]
    tail = local_cluster.run_tool(["kubectl", "logs", "-n", namespace, "ticker", "--tail=1", "--timestamps"]).stdout
    stamp, text = tail.rstrip("\n").split(" ", 1)
    assert text == f"tick {TICKS - 1}" and stamp.endswith("Z")


def test_argo_logs_of_a_workflow(local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    # The cluster's controller runs only Workflows made from a WorkflowTemplate (templateReferencing: Strict).
    template = f"""
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: hello
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: {STEPS_IMAGE}
      command: [python, -c, "print('hello from the step')"]
"""
    manifest = tmp_path / "hello.yaml"
    manifest.write_text(template)
    local_cluster.run_tool(["kubectl", "create", "-n", namespace, "-f", str(manifest)])
    submit = ["argo", "submit", "-n", namespace, "--from", "workflowtemplate/hello", "--name", "hello", "--wait"]
    local_cluster.run_tool(submit, timeout=180)
    logs = local_cluster.run_tool(["argo", "logs", "-n", namespace, "hello", "--no-color"]).stdout
    assert "hello from the step" in logs
