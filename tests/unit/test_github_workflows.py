"""Every GitHub Actions workflow the project ships, linted with the pinned actionlint (``make tools``).

The release workflow cannot run outside GitHub and the example runs in a user's repository, so this is their check:
syntax, expressions and their types, job and step outputs, permissions and the inputs of known actions.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted(
    [*(REPO / ".github" / "workflows").glob("*.yaml"), REPO / "examples" / "ci" / "github-actions.yaml"]
)


def _actionlint(program: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    # -no-color keeps the findings readable in the assertion; the files are named explicitly because the example
    # lives outside .github/workflows.
    return subprocess.run(
        [str(program), "-no-color", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows_are_found() -> None:
    names = [path.relative_to(REPO).as_posix() for path in WORKFLOWS]
    assert names == [".github/workflows/release-steps-image.yaml", "examples/ci/github-actions.yaml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_actionlint_finds_nothing(workflow: Path, pinned_tool: Callable[[str], Path]) -> None:
    proc = _actionlint(pinned_tool("actionlint"), workflow)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_reports_a_broken_step_reference(tmp_path: Path, pinned_tool: Callable[[str], Path]) -> None:
    """The check can fail: a typo in a step id, which GitHub would only notice as an empty value at run time."""
    release = REPO / ".github" / "workflows" / "release-steps-image.yaml"
    broken = tmp_path / "release.yaml"
    broken.write_text(release.read_text().replace("steps.build.outputs.digest", "steps.bild.outputs.digest"))
    proc = _actionlint(pinned_tool("actionlint"), broken)
    assert proc.returncode == 1
    assert 'property "bild" is not defined' in proc.stdout, proc.stdout
