"""The rendered templates and the step CLI speak the same contract: every container's arguments parse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows import Env

from bluegreen_contract import (
    ARGO_UI_URL_ENV,
    PUSHGATEWAY_URL_ENV,
    RUN_WORKFLOW_ENV,
    RUN_WORKFLOW_UID_ENV,
    SLACK_WEBHOOK_URL_ENV,
    STEP_OUTPUTS,
    USER_COMMANDS,
    WEBHOOK_URL_ENV,
    Step,
)
from pipelines.settings import RenderSettings
from pipelines.step_container import POD_LOSS_RETRY_EXPRESSION, StepSpec, step_container, step_env
from steps.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]

# Plausible runtime values for every placeholder the templates use.
VALUES = {
    "workflow.namespace": "apps",
    "workflow.name": "blue-green-deploy-x7k2p",
    "workflow.status": "Failed",
    "workflow.failures": '"[{\\"displayName\\":\\"probe\\",\\"message\\":\\"Error (exit code 1)\\"}]"',
    "inputs.parameters.service": "user-service",
    "inputs.parameters.image": "ghcr.io/acme/user-service:1.2.3",
    "inputs.parameters.slot": "green",
    "inputs.parameters.record": "blue-green-deploy-x7k2p",
    "inputs.parameters.workflow": "blue-green-deploy-x7k2p",
    "inputs.parameters.workflow-status": "Failed",
    "inputs.parameters.failures": "null",
    "inputs.parameters.triggered-by": "-ci-bot",  # starts with "-": must still parse as a value
    "inputs.parameters.commit": "",
    "inputs.parameters.reason": "",
    "inputs.parameters.timeout": "1800",
    "inputs.parameters.plan": "[]",
    "inputs.parameters.verified": "[]",
    "inputs.parameters.deploy-green-deadline": "1200",
    "inputs.parameters.probe-deadline": "600",
    "inputs.parameters.smoke-deadline": "300",
}


def substitute(text: str) -> str:
    return re.sub(r"\{\{([^}]+)\}\}", lambda m: VALUES[m.group(1).strip()], text)


def set_members(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each container of a containerSet as a template of its own: its container, the set's inputs and retries, and
    the set's outputs that its step writes (the set declares the outputs of all of them)."""
    members = []
    for container in template["containerSet"]["containers"]:
        args = container.get("args") or []
        written = {output.value for output in STEP_OUTPUTS.get(Step(args[0]), ())} if args else set()
        outputs = [p for p in (template.get("outputs") or {}).get("parameters", []) if p["name"] in written]
        member = {"name": container["name"], "container": container, "inputs": template.get("inputs"), "in_set": True}
        members.append((f"{template['name']}.{container['name']}", {**member, "outputs": {"parameters": outputs}}))
    return members


def rendered_templates(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every template of every rendered workflow object, named ``<file>/<template>``."""
    found = []
    for file in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(file.read_text())
        spec = document["spec"].get("workflowSpec", document["spec"])
        # The cleanup CronWorkflow has no templates of its own: it starts the sweep's WorkflowTemplate.
        found += [(f"{file.stem}/{t['name']}", t) for t in spec.get("templates", [])]
    return found


def all_containers(directory: Path = REPO / "manifests" / "workflows") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, template in rendered_templates(directory):
        if "container" in template:
            found.append((name, template))
        elif "containerSet" in template:
            workflow = name.split("/", 1)[0]
            found += [(f"{workflow}/{member_name}", member) for member_name, member in set_members(template)]
    return found


def container_sets(directory: Path = REPO / "manifests" / "workflows") -> list[tuple[str, dict[str, Any]]]:
    return [(name, template) for name, template in rendered_templates(directory) if "containerSet" in template]


def is_step(template: dict[str, Any]) -> bool:
    """A container running the steps image's CLI; the one other kind is sigstore's cosign (see test_cosign_call)."""
    return bool(template["container"].get("command") == ["bluegreen-step"])


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, template) for name, template in all_containers() if is_step(template)]


def test_every_container_runs_a_step_or_cosign() -> None:
    others = {name for name, template in all_containers() if not is_step(template)}
    # ... or it is the release Pod's `main`, which only hands the Pod's outputs to Argo.
    assert others == {"blue-green-deploy/cosign", "blue-green-rollback/cosign", "blue-green-deploy/release.main"}


@pytest.mark.parametrize(("name", "template"), containers(), ids=[n for n, _ in containers()])
def test_container_arguments_parse_with_the_step_cli(name: str, template: dict[str, Any]) -> None:
    args = [substitute(a) for a in template["container"]["args"]]
    parsed = build_parser().parse_args(args)
    step = Step(parsed.step)
    assert parsed.namespace == "apps"
    declared = [p["name"] for p in (template.get("outputs") or {}).get("parameters", [])]
    assert set(declared) <= set(STEP_OUTPUTS.get(step, ())), f"{name} reads outputs the step never writes"
    if declared:
        assert parsed.output_dir is not None
        paths = {p["name"]: p["valueFrom"]["path"] for p in template["outputs"]["parameters"]}
        assert all(path == f"{parsed.output_dir}/{output}" for output, path in paths.items())


@pytest.mark.parametrize(("name", "template"), containers(), ids=[n for n, _ in containers()])
def test_every_variable_a_template_sets_is_one_the_steps_read(name: str, template: dict[str, Any]) -> None:
    names = {variable["name"] for variable in template["container"].get("env") or []}
    read = {SLACK_WEBHOOK_URL_ENV, WEBHOOK_URL_ENV, ARGO_UI_URL_ENV, PUSHGATEWAY_URL_ENV}
    assert names <= read | {RUN_WORKFLOW_ENV, RUN_WORKFLOW_UID_ENV}
    assert {SLACK_WEBHOOK_URL_ENV, WEBHOOK_URL_ENV} <= names, f"{name} gets no notification URLs"


def test_render_settings_reach_the_steps_as_the_variables_they_read() -> None:
    settings = RenderSettings(argo_ui_url="https://argo.example.com", pushgateway_url="http://pushgateway:9091")
    values = {variable.name: getattr(variable, "value", None) for variable in step_env(settings)}
    assert values[ARGO_UI_URL_ENV] == "https://argo.example.com"
    assert values[PUSHGATEWAY_URL_ENV] == "http://pushgateway:9091"
    env = step_container(StepSpec(template="notify", step=Step.notify), settings).env
    assert isinstance(env, list)
    assert PUSHGATEWAY_URL_ENV in {variable.name for variable in env if isinstance(variable, Env)}
    assert PUSHGATEWAY_URL_ENV not in {variable.name for variable in step_env(RenderSettings())}


def test_every_step_is_used_by_some_template() -> None:
    used = {t["container"]["args"][0] for _, t in containers()}
    assert used == {step.value for step in Step}


def test_steps_in_pods_of_their_own_retry_the_transient_exit_code_themselves_and_argo_the_pod_errors() -> None:
    retried = []
    for name, template in containers():
        if template.get("in_set"):
            continue  # a step in a shared Pod: see the next test
        strategy = template.get("retryStrategy")
        parsed = build_parser().parse_args([substitute(a) for a in template["container"]["args"]])
        if strategy is None:
            assert parsed.transient_retries == 0, f"{name} retries in its process but not its Pod's errors"
            continue
        # Argo waits out a backoff before it reads the expression, so any backoff would delay every failed check.
        assert "backoff" not in strategy, name
        assert strategy["expression"] == POD_LOSS_RETRY_EXPRESSION, name
        assert parsed.transient_retries == 3, name
        retried.append(name)
    assert retried, "no step template retries"


def test_steps_sharing_a_pod_retry_the_transient_exit_code_themselves_and_the_pod_its_errors() -> None:
    sets = container_sets()
    assert [name for name, _ in sets] == ["blue-green-deploy/release"]
    for name, template in sets:
        # Argo's inner retry for a container set re-runs any failed container; none is set, the steps do it.
        assert "retryStrategy" not in template["containerSet"], name
        assert template["retryStrategy"]["expression"] == POD_LOSS_RETRY_EXPRESSION, name
        for container in template["containerSet"]["containers"]:
            if container["name"] == "main":
                continue
            parsed = build_parser().parse_args([substitute(a) for a in container["args"]])
            assert parsed.transient_retries == 3, f"{name}.{container['name']}"
            assert parsed.deadline_seconds and parsed.deadline_seconds > 0, f"{name}.{container['name']}"
        steps = [Step(c["args"][0]) for c in template["containerSet"]["containers"] if c.get("args")]
        written = {output.value for step in steps for output in STEP_OUTPUTS.get(step, ())}
        declared = {p["name"] for p in template["outputs"]["parameters"]}
        assert declared <= written, f"{name} declares outputs no step of it writes"
        # Every container mounts the one /tmp its outputs are written to, so Argo finds them there.
        assert template["containerSet"]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_every_step_and_user_command_has_an_implementation() -> None:
    import importlib

    assert set(COMMANDS) == {*(step.value for step in Step), *USER_COMMANDS}
    for module in COMMANDS.values():
        assert callable(importlib.import_module(module).run)


def test_the_pushgateway_option_reaches_every_step_container_of_every_rendered_workflow(tmp_path: Path) -> None:
    from pipelines.render import main as render

    gateway = "http://pushgateway.monitoring:9091"
    assert render(["--out", str(tmp_path), "--pushgateway-url", gateway]) == 0
    seen = 0
    for name, template in all_containers(tmp_path / "workflows"):
        if not is_step(template):
            continue
        env = {variable["name"]: variable.get("value") for variable in template["container"].get("env") or []}
        assert env.get(PUSHGATEWAY_URL_ENV) == gateway, name
        seen += 1
    assert seen >= 10
