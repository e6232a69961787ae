"""The README is part of the interface: its commands and its RBAC table must match the code."""

from __future__ import annotations

from pathlib import Path

from pipelines.rbac import RULES

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    commands = [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("    make ")][:2]
    assert commands == ["make manifests", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert "make test" in script


def test_rbac_table_explains_every_rule_exactly() -> None:
    rows = {line for line in README.splitlines() if line.startswith("| `")}
    for rule in RULES:
        resources = ", ".join(f"`{r}`" for r in rule.resources)
        row = f"| `{rule.api_group or 'core'}` | {resources} | {', '.join(rule.verbs)} | {rule.why} |"
        assert row in rows, f"README RBAC table lacks or misstates: {row}"
