"""The step-set builder refuses a graph Argo would refuse or run wrongly, and adds ``main`` only for outputs."""

from __future__ import annotations

from typing import Any

import pytest
from hera.workflows import WorkflowTemplate

from bluegreen_contract import Output, Step
from pipelines.settings import RenderSettings
from pipelines.step_container import StepSpec
from pipelines.step_set import POD_MARGIN_SECONDS, SetStep, step_set


def _spec(template: str, step: Step, outputs: tuple[Output, ...] = ()) -> StepSpec:
    return StepSpec(template=template, step=step, inputs=["service", "record"], outputs=outputs, retry=True)


def _render(*steps: SetStep) -> dict[str, Any]:
    with WorkflowTemplate(name="t", entrypoint="set") as workflow:
        step_set("set", steps, RenderSettings(), description="test")
    (template,) = [t for t in workflow.to_dict()["spec"]["templates"] if t["name"] == "set"]
    return dict(template)


def test_a_set_without_outputs_has_no_outputs_container() -> None:
    template = _render(SetStep(spec=_spec("retain", Step.retain)))
    assert [c["name"] for c in template["containerSet"]["containers"]] == ["retain"]
    assert "outputs" not in template


def test_a_set_with_outputs_ends_with_main_after_every_step() -> None:
    template = _render(
        SetStep(spec=_spec("retain", Step.retain)),
        SetStep(spec=_spec("switch", Step.switch, (Output.switched_at,)), after=["retain"]),
    )
    containers = {c["name"]: c for c in template["containerSet"]["containers"]}
    assert containers["main"]["dependencies"] == ["retain", "switch"]
    assert containers["main"]["command"] == ["true"]
    (output,) = template["outputs"]["parameters"]
    assert output == {"name": "switched-at", "valueFrom": {"path": "/tmp/outputs/switched-at", "default": ""}}


def test_steps_keep_their_order_themselves_each_wait_bounded_by_the_deadlines_before_it() -> None:
    template = _render(
        SetStep(spec=_spec("retain", Step.retain)),
        SetStep(spec=_spec("cleanup", Step.cleanup), after=["retain"]),
        SetStep(spec=_spec("verify", Step.verify), after=["retain"]),
        SetStep(spec=_spec("notify", Step.notify), after=["cleanup", "verify"]),
    )
    containers = {c["name"]: c for c in template["containerSet"]["containers"]}
    # No step waits through Argo's executor: each program starts with the Pod and waits on the shared emptyDir.
    assert all("dependencies" not in c for c in containers.values())
    for name, container in containers.items():
        assert "--set-state=/tmp/steps" in container["args"], name
    assert not any(a.startswith("--wait") for a in containers["retain"]["args"])
    assert [a for a in containers["notify"]["args"] if a.startswith("--wait-for=")] == [
        "--wait-for=cleanup",
        "--wait-for=verify",
    ]
    caps = {step: StepSpec(template=step.value, step=step).deadline_seconds for step in Step}
    # Its wait covers every step it comes after, directly or not, plus the set's margin.
    expected = caps[Step.retain] + caps[Step.cleanup] + caps[Step.verify] + POD_MARGIN_SECONDS
    assert f"--wait-seconds={expected}" in containers["notify"]["args"]
    assert f"--wait-seconds={caps[Step.retain] + POD_MARGIN_SECONDS}" in containers["cleanup"]["args"]


def test_a_step_may_wait_only_for_steps_of_its_set() -> None:
    with pytest.raises(ValueError, match=r"switch waits for \['smoke'\], which are not in the set"):
        _render(SetStep(spec=_spec("switch", Step.switch), after=["smoke"]))


def test_no_step_may_take_the_outputs_containers_name() -> None:
    with pytest.raises(ValueError, match="no step may be called main"):
        _render(SetStep(spec=_spec("main", Step.retain)))


def test_a_step_reading_preflights_files_waits_for_preflight_in_the_set() -> None:
    preflight = SetStep(spec=_spec("preflight", Step.preflight, (Output.record,)))
    reader = _spec("probe", Step.probe)
    with pytest.raises(ValueError, match="probe reads preflight's outputs but does not wait for preflight"):
        _render(preflight, SetStep(spec=reader, from_preflight=True))
    # Waiting for it through another step is enough.
    template = _render(
        preflight,
        SetStep(spec=_spec("retain", Step.retain), after=["preflight"]),
        SetStep(spec=reader, after=["retain"], from_preflight=True),
    )
    (probe,) = [c for c in template["containerSet"]["containers"] if c["name"] == "probe"]
    assert "--preflight-outputs=/tmp/outputs" in probe["args"]
    assert not any(arg.startswith("--record") for arg in probe["args"]), "the record comes from preflight's file"
    # With every deadline fixed, the Pod's is a plain number: their sum and the margin.
    assert template["activeDeadlineSeconds"] == str(3 * 300 + 60)
