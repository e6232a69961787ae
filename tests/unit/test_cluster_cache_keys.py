"""The local cluster's cache: one entry per component, keyed by that component's own pins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testenv import paths


@pytest.fixture
def pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of every file the keys read, so a test can bump one pin."""
    copy = tmp_path / "testenv"
    for rel in paths.KEY_INPUTS:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.TESTENV_DIR / rel, copy / rel)
    monkeypatch.setattr(paths, "TESTENV_DIR", copy)
    return copy


def keys() -> dict[str, str]:
    return {name: paths.component_key(name) for name in paths.COMPONENT_INPUTS}


@pytest.mark.parametrize(
    ("bumped", "changed"),
    [
        ("go.sum", {"kubernetes"}),
        ("dns/go.sum", {"coredns"}),
        ("crds/go.sum", {"crds"}),
        # The CRDs must match the controller, so a new Argo rebuilds both.
        ("argo/go.mod", {"argo", "crds"}),
        ("build.py", set(paths.COMPONENT_INPUTS)),
    ],
)
def test_bumping_one_pin_changes_only_its_components_keys(pins: Path, bumped: str, changed: set[str]) -> None:
    before, cluster_before = keys(), paths.cache_key()
    (pins / bumped).write_text((pins / bumped).read_text() + "\n// bumped\n")
    after = keys()
    assert {name for name in before if before[name] != after[name]} == changed
    assert paths.cache_key() != cluster_before, "the cluster entry names its components, so it follows any of them"


def test_every_program_lives_in_its_components_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEGREEN_TESTENV_CACHE", str(tmp_path))
    artifacts = paths.layout()
    for program in artifacts.programs:
        component = paths.PROGRAM_COMPONENTS[program.name]
        assert program.parent.parent == paths.component_dir(component), program
    assert artifacts.argo_schema.is_relative_to(paths.component_dir("crds"))
    assert artifacts.root == paths.entry_dir() != paths.component_dir("kubernetes")


def test_an_entry_without_its_marker_is_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEGREEN_TESTENV_CACHE", str(tmp_path))
    for name in paths.COMPONENT_INPUTS:
        (paths.component_dir(name) / paths.READY_MARKER).parent.mkdir(parents=True)
        (paths.component_dir(name) / paths.READY_MARKER).write_text("ready\n")
    found = paths.locate()
    assert found.artifacts is None and str(paths.entry_dir()) in found.reason
