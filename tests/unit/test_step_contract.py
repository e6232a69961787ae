"""The rendered templates and the step CLI speak the same contract: every container's arguments parse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.step_container import TRANSIENT_EXIT_CODE
from steps import exit_codes
from steps.cli import OUTPUTS, STEPS, build_parser

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
}


def substitute(text: str) -> str:
    return re.sub(r"\{\{([^}]+)\}\}", lambda m: VALUES[m.group(1).strip()], text)


def containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for file in sorted((REPO / "manifests" / "workflows").glob("*.yaml")):
        document = yaml.safe_load(file.read_text())
        spec = document["spec"].get("workflowSpec", document["spec"])
        found += [(f"{file.stem}/{t['name']}", t) for t in spec["templates"] if "container" in t]
    return found


@pytest.mark.parametrize(("name", "template"), containers(), ids=[n for n, _ in containers()])
def test_container_arguments_parse_with_the_step_cli(name: str, template: dict[str, Any]) -> None:
    args = [substitute(a) for a in template["container"]["args"]]
    parsed = build_parser().parse_args(args)
    assert parsed.step in STEPS
    assert parsed.namespace == "apps"
    declared = [p["name"] for p in (template.get("outputs") or {}).get("parameters", [])]
    assert set(declared) <= set(OUTPUTS.get(parsed.step, ())), f"{name} reads outputs the step never writes"
    if declared:
        assert parsed.output_dir is not None


def test_every_step_is_used_by_some_template() -> None:
    used = {t["container"]["args"][0] for _, t in containers()}
    assert used == set(STEPS)


def test_transient_exit_code_is_the_one_templates_retry_on() -> None:
    assert exit_codes.TRANSIENT == TRANSIENT_EXIT_CODE


def test_every_step_and_user_command_has_an_implementation() -> None:
    import importlib

    from steps.cli import COMMANDS

    assert set(COMMANDS) == {*STEPS, "history", "status"}
    for module in COMMANDS.values():
        assert callable(importlib.import_module(module).run)
