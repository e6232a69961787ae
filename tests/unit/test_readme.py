"""The README and the docs are part of the interface: their commands, RBAC table and invariants must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.rbac import readme_table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
#: The invariants I1 to I6 are stated once, in the concepts.
CONCEPTS = (REPO / "docs" / "concepts.md").read_text()
#: The RBAC table is generated into the RBAC reference by `make manifests`.
RBAC_REFERENCE = REPO / "docs" / "reference" / "rbac.md"


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    commands = [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("    make ")][:2]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert "make test" in script


def test_rbac_table_is_the_one_generated_from_the_rules() -> None:
    stale = f"the RBAC table of {RBAC_REFERENCE.relative_to(REPO)} is stale: run `make manifests` and commit it"
    assert readme_table() in RBAC_REFERENCE.read_text(), stale


def test_invariants_are_stated_once_and_every_citation_names_one() -> None:
    stated = re.findall(r"^- \*\*(I\d)\.\*\*", CONCEPTS, flags=re.MULTILINE)
    assert stated == ["I1", "I2", "I3", "I4", "I5", "I6"]
    cited = set()
    for folder in ("steps", "pipelines", "tests", "benchmarks"):
        for source in (REPO / folder).rglob("*.py"):
            cited |= set(re.findall(r"\bI(\d+)\b", source.read_text()))
    assert cited and {f"I{n}" for n in cited} <= set(stated)
