"""``kubectl bluegreen`` on the local cluster: found by the real kubectl as a plugin, driving the real Argo controller.

One service walks the whole operator story, to keep the cluster time small: the plugin's deploy creates the same
Workflow as ``argo submit --from`` (compared with argo's own object from a server-side dry run), runs to Succeeded
and moves traffic while ``status --watch`` follows it; ``status -o json`` and ``history -o json`` report it;
``route`` switches traffic without Argo and writes a record; the plugin's rollback goes the same way as its deploy;
and ``route`` refuses the slot the rollback scaled down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testenv.demo_service import NAMESPACE, REPO, DemoService, demo_image
from testenv.local_cluster import LocalCluster

pytestmark = [pytest.mark.cluster]

PLUGIN_FIELD_MANAGER = "kubectl-bluegreen"


class Plugin:
    """``kubectl bluegreen ...`` as a user runs it: the real kubectl, finding ``kubectl-bluegreen`` on PATH."""

    def __init__(self, cluster: LocalCluster, bin_dir: Path) -> None:
        # The installed console script runs the installed package; this one runs the checkout under test.
        script = bin_dir / "kubectl-bluegreen"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kubectl_bluegreen "$@"\n')
        script.chmod(0o755)
        self.env = cluster.tool_env({"PATH": f"{bin_dir}{os.pathsep}{cluster.tool_env()['PATH']}"})
        self.env["PYTHONPATH"] = str(REPO)

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", "bluegreen", *args]

    def __call__(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def argo_submit_dry_run(service: DemoService, template: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """The Workflow ``argo submit --from`` creates, as the API server would store it, without running it."""
    args = ["submit", "--from", f"workflowtemplate/{template}", "--server-dry-run", "-o", "json"]
    for name, value in params:
        args += ["-p", f"{name}={value}"]
    return dict(json.loads(service.argo(*args)))


def submitted_fields(workflow: dict[str, Any], manager: str) -> dict[str, Any]:
    """The fields ``manager`` wrote when it created the workflow, from the API server's own managedFields."""
    for entry in workflow["metadata"].get("managedFields") or []:
        if entry["manager"] == manager:
            return dict(entry["fieldsV1"])
    raise AssertionError(f"{manager} wrote nothing in {json.dumps(workflow['metadata'], indent=1)}")


def assert_same_submission(plugin_run: dict[str, Any], argo_run: dict[str, Any]) -> None:
    """The plugin wrote the fields ``argo submit --from`` writes, with equal values; the controller adds the rest."""
    fields = submitted_fields(plugin_run, PLUGIN_FIELD_MANAGER)
    side_by_side = json.dumps({"plugin": plugin_run["metadata"], "argo": argo_run["metadata"]}, indent=1)
    argo_fields = submitted_fields(argo_run, "argo")
    # Argo's submit validates the run first and keeps the templates it resolved in status.storedTemplates, a cache
    # the controller fills itself on its first pass (checked on the finished run by the caller); nothing else.
    argo_status = dict(argo_run.get("status") or {})
    assert set(argo_status["storedTemplates"]) and not any(v for k, v in argo_status.items() if k != "storedTemplates")
    assert argo_fields.pop("f:status") == {".": {}, "f:storedTemplates": {}}, argo_fields
    assert fields == argo_fields, side_by_side
    written_labels = {key.removeprefix("f:") for key in fields["f:metadata"]["f:labels"] if key != "."}
    assert written_labels == set(argo_run["metadata"]["labels"]), side_by_side
    assert {k: plugin_run["metadata"]["labels"][k] for k in written_labels} == argo_run["metadata"]["labels"]
    assert "workflows.argoproj.io/creator" in written_labels, side_by_side
    assert plugin_run["metadata"]["generateName"] == argo_run["metadata"]["generateName"]
    assert plugin_run["spec"] == argo_run["spec"], json.dumps({"plugin": plugin_run["spec"], "argo": argo_run["spec"]})


def test_plugin_deploys_routes_and_rolls_back_like_argo(
    demo_service: Callable[..., DemoService], tmp_path: Path
) -> None:
    service = demo_service()
    cluster = service.cluster
    kubectl = Plugin(cluster, tmp_path)
    ns = ["-n", NAMESPACE]
    user = cluster.run_tool(["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]).stdout

    # kubectl itself finds the plugin.
    helped = kubectl("--help")
    assert helped.returncode == 0 and "route" in helped.stdout and "exit codes:" in helped.stdout, helped.stderr

    # deploy without --wait: the Workflow argo submit --from creates, the name, and how to follow it.
    started = kubectl("deploy", service.name, "--image", demo_image("v1"), *ns)
    assert started.returncode == 0, started.stderr
    name = started.stdout.split("workflow.argoproj.io/", 1)[1].split()[0]
    assert f"kubectl bluegreen status {service.name} -n {NAMESPACE} --watch" in started.stdout
    created = service.workflow(name).raw
    expected = argo_submit_dry_run(
        service, "blue-green-deploy", [("service", service.name), ("image", demo_image("v1")), ("triggered-by", user)]
    )
    assert_same_submission(created, expected)
    first = service.wait_workflow(name)
    assert first.phase == "Succeeded", first.summary()
    assert set(first.raw["status"]["storedTemplates"]) == set(expected["status"]["storedTemplates"])
    assert service.record_of(name)["spec"]["triggeredBy"] == user
    old = service.live_slot()  # serves v1 now
    new = "green" if old == "blue" else "blue"

    # deploy --wait, followed by status --watch (JSON lines for the checks, the table for people) until Ctrl-C.
    sinks = [(tmp_path / "watch.jsonl").open("w"), (tmp_path / "status-watch.txt").open("w")]
    watchers = [
        subprocess.Popen(
            kubectl.argv("status", service.name, *ns, "--watch", *output),
            # PYTHONFAULTHANDLER: a watcher that does not end on Ctrl-C prints every thread's stack on SIGABRT.
            env={**kubectl.env, "COLUMNS": "150", "PYTHONFAULTHANDLER": "1"},
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_at_a_terminal,
        )
        for output, sink in zip((["-o", "json"], []), sinks, strict=True)
    ]
    try:
        deployed = kubectl("deploy", service.name, "--image", demo_image("v2"), "--wait", *ns, timeout=600)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        seen = wait_for_watch(tmp_path / "watch.jsonl", lambda s: s["phase"] == "Succeeded" and s["liveSlot"] == new)
        for watcher in watchers:
            watcher.send_signal(signal.SIGINT)
        for watcher in watchers:
            try:
                _, err = watcher.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                watcher.send_signal(signal.SIGABRT)
                _, err = watcher.communicate(timeout=30)
                pytest.fail(f"status --watch did not end within 30 s of Ctrl-C; its threads:\n{err}")
            assert watcher.returncode == 0 and "Traceback" not in err, err
    finally:
        for watcher in watchers:
            if watcher.poll() is None:
                watcher.kill()
                watcher.communicate()
            if watcher.stderr is not None:
                watcher.stderr.close()
        for sink in sinks:
            sink.close()
    assert "switch" in deployed.stdout and "Succeeded" in deployed.stdout, deployed.stdout
    assert service.live_slot() == new and service.settles_on("v2") == "v2"
    status = kubectl.json("status", service.name, *ns)
    assert (status["liveSlot"], status["liveImage"], status["idleSlot"]) == (new, demo_image("v2"), old)
    assert status["traffic"] == {old: 0, new: 100}
    assert status["previousSlot"] == old and status["previousImage"] == demo_image("v1") and status["retainUntil"]
    assert status["phase"] == "Succeeded" and status["workflow"] is None
    second = status["recentRuns"][0]["workflow"]
    assert status["recentRuns"][0]["outcome"] == "Succeeded"
    # The watch redraws from a fresh read after each burst of changes, so a phase shorter than one read (Switching,
    # Verifying) may pass unseen on a busy machine; what it shows must still follow the pipeline's order.
    phases = [phase for i, phase in enumerate(s["phase"] for s in seen) if i == 0 or seen[i - 1]["phase"] != phase]
    order = iter(["Succeeded", "Deploying", "Switching", "Verifying", "Succeeded"])
    assert "Deploying" in phases and phases[-1] == "Succeeded", phases
    assert all(phase in order for phase in phases), f"phases out of the pipeline's order: {phases}"
    assert any(s["workflow"] and s["workflow"]["name"] == second and s["workflow"]["currentSteps"] for s in seen)
    table = (tmp_path / "status-watch.txt").read_text()
    assert "Current step" in table and f"{new} 100%" in table, table

    # route: the old slot still holds v1 within its retention, so traffic may go back to it without Argo.
    routed = kubectl("route", service.name, "--to", old, "--reason", "drill", *ns)
    assert routed.returncode == 0, routed.stderr
    assert service.live_slot() == old and service.settles_on("v1") == "v1"
    record = service.records()[-1]
    assert record["spec"]["workflow"].startswith("kubectl-bluegreen-route-"), record["spec"]
    assert (record["spec"]["fromSlot"], record["spec"]["toSlot"], record["spec"]["triggeredBy"]) == (new, old, user)
    assert (record["status"]["outcome"], record["spec"]["reason"]) == ("Succeeded", "drill")
    events = [e["event"] for e in record["status"]["entries"]]
    assert events.index("intent") < events.index("switched"), events
    after_route = kubectl.json("status", service.name, *ns)
    assert (after_route["liveSlot"], after_route["previousSlot"]) == (old, new) and after_route["retainUntil"]

    # rollback: the same object as argo submit --from blue-green-rollback; back to the retained new slot (v2).
    rolled = kubectl("rollback", service.name, "--wait", *ns, timeout=600)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    rollback_name = rolled.stdout.split("workflow.argoproj.io/", 1)[1].split()[0]
    assert_same_submission(
        service.workflow(rollback_name).raw,
        argo_submit_dry_run(service, "blue-green-rollback", [("service", service.name), ("triggered-by", user)]),
    )
    assert service.live_slot() == new and service.settles_on("v2") == "v2"

    # route refuses the slot the rollback scaled down, writes nothing and leaves traffic alone.
    records_before = len(service.records())
    refused = kubectl("route", service.name, "--to", old, *ns)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "is not fully available (0/0 ready)" in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert service.live_slot() == new and len(service.records()) == records_before

    history = kubectl.json("history", service.name, *ns)
    assert [r["spec"]["workflow"] for r in history[:3]] == [
        rollback_name,
        record["spec"]["workflow"],
        second,
    ], [r["spec"]["workflow"] for r in history]

    missing = kubectl("status", "no-such-service", *ns)
    assert missing.returncode == 3 and "does not exist" in missing.stderr, missing.stderr


def _as_at_a_terminal() -> None:
    """Child-process hook: Ctrl-C is delivered, as in a terminal.

    A shell that starts a job in the background without job control (``pytest ... &`` in a script) makes it ignore
    SIGINT, every child inherits that, and Python then installs no KeyboardInterrupt handler: the watch could never
    be ended the way this test ends it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_watch(path: Path, done: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> list[dict[str, Any]]:
    """The states a ``status --watch -o json`` printed, once one of them satisfies ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        states = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if any(done(s) for s in states):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"status --watch never showed the end state; it printed {states}")
        time.sleep(0.2)  # bounded poll of a file another process appends to
