"""The README is part of the interface: its commands and its RBAC table must match the code."""

from __future__ import annotations

from pathlib import Path

from pipelines.rbac import readme_table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    commands = [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("    make ")][:2]
    assert commands == ["make manifests", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert "make test" in script


def test_rbac_table_is_the_one_generated_from_the_rules() -> None:
    assert readme_table() in README, "the README's RBAC table is stale: run `make manifests` and commit README.md"
