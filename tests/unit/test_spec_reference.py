"""docs/spec-reference.md is generated from the model and must be current."""

from __future__ import annotations

from pathlib import Path

import pytest

import bluegreen_spec as spec
from pipelines import spec_reference
from pipelines.crd import structural_schema

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "spec-reference.md"


def test_the_committed_reference_is_what_the_model_renders() -> None:
    assert REFERENCE.read_text() == spec_reference.render(), "docs/spec-reference.md is stale: run `make docs`"


def test_every_spec_field_has_a_row_in_its_section() -> None:
    text = spec_reference.render()
    schema = structural_schema(spec.BlueGreenDeploymentSpec, default_objects=True)
    pending = [("spec", schema)]
    while pending:
        path, node = pending.pop()
        section = text.split(f"## `{path}`\n", 1)[1].split("\n## ", 1)[0]
        for name, child in node["properties"].items():
            assert f"| `{name}` |" in section, f"{path}.{name} has no row"
            if child.get("properties"):
                pending.append((f"{path}.{name}", child))
            if child.get("items", {}).get("properties"):
                pending.append((f"{path}.{name}[]", child["items"]))


def test_check_fails_on_a_stale_file_and_writing_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "spec-reference.md"
    target.write_text(REFERENCE.read_text().replace("Seconds between probe attempts.", "Old text."))
    assert spec_reference.main([str(target), "--check"]) == 1
    assert f"stale: {target}" in capsys.readouterr().err
    assert spec_reference.main([str(target)]) == 0
    assert spec_reference.main([str(target), "--check"]) == 0
    assert target.read_text() == REFERENCE.read_text()


def test_expected_status_reads_as_a_number_or_text() -> None:
    assert '| `expectedStatus` | list of integer or string | `["2xx"]` |' in spec_reference.render()
