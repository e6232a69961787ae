"""How the tests read a run whose steps share the release Pod, from node shapes the real controller wrote.

The shapes (types, boundaries, children, phases and the message of a step that did not run) were read
off runs of the deploy template on the local cluster.
"""

from __future__ import annotations

from typing import Any

from kubectl_bluegreen.run_steps import place_in_pod
from testenv.workflow_run import WorkflowRun


def _node(node_id: str, name: str, kind: str, phase: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    node = {"id": node_id, "displayName": name, "type": kind, "phase": phase, "startedAt": start, "finishedAt": end}
    return {**node, **extra}


def _run(smoke_phase: str = "Succeeded", promotion_required: str = "false") -> WorkflowRun:
    # The steps order themselves, so Argo's graph leads each of them to `main` only.
    never_ran = 'switch: Error (exit code 1): dependency "smoke" exited with non-zero code: 1; this step did not run'
    switch = (
        _node("w", "switch", "Container", "Succeeded", "10:00:00Z", "10:00:17Z", boundaryID="r", children=["m"])
        if smoke_phase == "Succeeded"
        else _node(
            "w",
            "switch",
            "Container",
            "Failed",
            "10:00:00Z",
            "10:00:16Z",
            boundaryID="r",
            children=["m"],
            message=never_ran,
        )
    )
    outputs = {
        "target-slot": "green",
        "switch-seconds": "0.412",
        "promotion-required": promotion_required,
        "verification-required": "false",
    }
    nodes = [
        _node(
            "r",
            "release",
            "Pod",
            "Succeeded",
            "10:00:00Z",
            "10:00:18Z",
            templateName="release",
            children=["p", "d", "b", "s", "w", "m"],
            inputs={"parameters": [{"name": "image", "value": "demo:v2"}]},
            outputs={"parameters": [{"name": k, "value": v} for k, v in outputs.items()], "exitCode": "0"},
        ),
        _node(
            "p",
            "preflight",
            "Container",
            "Succeeded",
            "10:00:00Z",
            "10:00:03Z",
            templateName="release",
            boundaryID="r",
            children=["m"],
        ),
        _node(
            "d",
            "deploy-green",
            "Container",
            "Succeeded",
            "10:00:00Z",
            "10:00:14Z",
            templateName="release",
            boundaryID="r",
            children=["m"],
        ),
        _node(
            "b",
            "probe",
            "Container",
            "Succeeded",
            "10:00:00Z",
            "10:00:15Z",
            templateName="release",
            boundaryID="r",
            children=["m"],
        ),
        _node(
            "s",
            "smoke",
            "Container",
            smoke_phase,
            "10:00:00Z",
            "10:00:16Z",
            templateName="release",
            boundaryID="r",
            children=["m"],
        ),
        {**switch, "templateName": "release"},
        _node("m", "main", "Container", "Succeeded", "10:00:00Z", "10:00:18Z", templateName="release", boundaryID="r"),
    ]
    if promotion_required == "true":
        nodes.append(
            _node("g", "deploy-green", "Pod", "Succeeded", "10:00:20Z", "10:00:31Z", templateName="deploy-green")
        )
    for node in nodes:
        for key in ("startedAt", "finishedAt"):
            node[key] = "2026-11-27T" + node[key]
    return WorkflowRun({"metadata": {"name": "run"}, "status": {"nodes": {n["id"]: n for n in nodes}}})


def test_each_step_of_the_release_pod_is_a_step_in_the_order_it_ran() -> None:
    run = _run()
    raw = run.raw["status"]["nodes"]
    assert [place_in_pod(raw, n.id) for n in run.steps()] == [1, 2, 3, 4, 5]
    assert run.step_order() == ["preflight", "deploy-green", "probe", "smoke", "switch"]
    # A later step starts when the one it waits for finished, not with the Pod.
    assert run.finished_before("deploy-green", "probe")
    assert run.finished_before("smoke", "switch")
    assert not run.finished_before("probe", "deploy-green")


def test_a_step_in_the_release_pod_has_the_pods_inputs_and_outputs() -> None:
    run = _run()
    assert run.output("switch", "switch-seconds") == "0.412"
    assert run.input("probe", "image") == "demo:v2"
    assert run.output("preflight", "target-slot") == "green"
    (switch,) = run.runs_of("switch")
    assert switch.pod_node == "r" and switch.exit_code == "0"


def test_a_step_the_executor_never_started_is_not_a_step_that_ran() -> None:
    run = _run(smoke_phase="Failed")
    assert "switch" not in run.step_order()
    (smoke,) = run.runs_of("smoke")
    assert smoke.phase == "Failed"


def test_steps_the_controller_marked_finished_at_once_keep_the_pods_order() -> None:
    run = _run()
    for node in run.raw["status"]["nodes"].values():
        if node["type"] == "Container":
            node["finishedAt"] = "2026-11-27T10:00:18Z"
    assert run.step_order() == ["preflight", "deploy-green", "probe", "smoke", "switch"]


def test_containers_after_preflight_did_nothing_when_it_left_the_release_to_pods_of_their_own() -> None:
    run = _run(promotion_required="true")
    # A service that waits for promotion: the set's later containers ended at once and its own Pods ran the steps.
    assert run.step_order() == ["preflight", "deploy-green"]
    (deploy,) = run.runs_of("deploy-green")
    assert deploy.pod_node == "g"
