"""The step-set builder refuses a graph Argo would refuse or run wrongly, and adds ``main`` only for outputs."""

from __future__ import annotations

from typing import Any

import pytest
from hera.workflows import WorkflowTemplate

from bluegreen_contract import Output, Step
from pipelines.settings import RenderSettings
from pipelines.step_container import StepSpec
from pipelines.step_set import SetStep, step_set


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
