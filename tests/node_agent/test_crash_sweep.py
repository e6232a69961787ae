"""A SIGKILLed node agent leaves nothing behind once the next agent of the same node starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testenv.node import network
from testenv.node.images import repo_root
from testenv.node.processes import PodCgroups
from tests.node_agent.conftest import NodeEnv, delete_pod

pytestmark = pytest.mark.controlplane

STEPS_IMAGE = "ghcr.io/argo-bluegreen/steps:0.1.0"
# A main process with a grandchild that ignores SIGHUP and outlives its parent: what
# PR_SET_PDEATHSIG alone would miss.
FORKING = (
    "import subprocess, time;"
    "subprocess.Popen(['python', '-c', 'import time\\nwhile True: time.sleep(1)'], start_new_session=True);"
    "time.sleep(3600)"
)


def _start_agent(
    env: NodeEnv, net: network.ClusterNetwork, workdir: Path, node: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "testenv.node",
                "--kubeconfig",
                str(env.kubeconfig),
                "--network-index",
                str(net.index),
                "--workdir",
                str(workdir),
                "--node-name",
                node,
            ],
            cwd=repo_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for_log(log: Path, message: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("msg") == message:
                return
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    pytest.fail(f"agent never logged {message!r}:\n{log.read_text()[-3000:]}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkilled_agent_leaves_nothing_after_the_next_start(node_env: NodeEnv, tmp_path: Path) -> None:
    # Its own network index: the session's agent owns the other one, and a starting agent
    # sweeps everything of its index.
    net = network.create_cluster_network()
    agent_log = tmp_path / "agent.log"
    workdir = tmp_path / "work"
    node = f"crash-node-{net.index}"
    first = second = None
    try:
        first = _start_agent(node_env, net, workdir, node, agent_log)
        _wait_for_log(agent_log, "node agent started", first)
        ns = node_env.namespace()
        node_env.api.create(
            f"/api/v1/namespaces/{ns}/pods",
            {
                "metadata": {"name": "forker"},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "main", "image": STEPS_IMAGE, "command": ["python", "-c", FORKING]}],
                },
            },
        )
        cgroups = PodCgroups(net.index)
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while time.monotonic() < deadline:
            netns = [n for n in network.list_netns() if n.startswith(f"bgpod-{net.index}-")]
            if netns:
                out = subprocess.run(["ip", "netns", "pids", netns[0]], capture_output=True, text=True).stdout
                pids = [int(p) for p in out.split()]
                if len(pids) >= 2:
                    break
            time.sleep(0.2)
        assert len(pids) >= 2, f"the pod's two processes never appeared:\n{agent_log.read_text()[-3000:]}"
        if cgroups.base is not None:
            for pid in pids:
                assert f"/argo-bluegreen/node-{net.index}/" in Path(f"/proc/{pid}/cgroup").read_text()

        first.send_signal(signal.SIGKILL)
        first.wait()
        # Nothing may wait for the next start to re-run the Pod; the point is what the sweep removes.
        delete_pod(node_env, ns, "forker", grace=0)
        second_log = tmp_path / "agent-after-crash.log"
        second = _start_agent(node_env, net, workdir, node, second_log)
        _wait_for_log(second_log, "node agent started", second)

        assert [p for p in pids if _alive(p)] == []
        assert [n for n in network.list_netns() if n.startswith(f"bgpod-{net.index}-")] == []
        assert (
            cgroups.base is None
            or list(cgroups.base.iterdir()) == []
            or all(not any(child.iterdir()) for child in cgroups.base.iterdir() if child.is_dir())
        )
        assert list((workdir / "pods").iterdir()) == [] if (workdir / "pods").exists() else True
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        network.destroy_cluster_network(net)
        assert os.path.exists("/") and net.node_netns not in network.list_netns()
