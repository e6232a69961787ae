"""The steps image's recipe, read without building it; tests/image/ builds and runs the image itself."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from steps import context
from steps.errors import BadInput

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "images" / "steps"
REQUIREMENTS = IMAGE_DIR / "requirements.txt"


def step_requirements() -> list[str]:
    return [line.strip() for line in REQUIREMENTS.read_text().splitlines() if line.strip() and line[0] != "#"]


def test_image_requirements_are_the_projects_own_pins_without_rendering_or_the_client() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {d.split("==")[0].split("[")[0]: d.split("==")[1] for d in project["dependencies"]}
    for requirement in step_requirements():
        name, version = requirement.split("==")
        assert pinned[name] == version, f"{name}: image pins {version}, pyproject {pinned[name]}"
    render_extra = {d.split("==")[0].split("[")[0] for d in project["optional-dependencies"]["render"]}
    names = {r.split("==")[0] for r in step_requirements()}
    assert not names & render_extra
    assert not names & {"rich", "kubernetes"}


def test_the_images_distribution_has_the_projects_modules_and_only_the_step_script() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    image = tomllib.loads((IMAGE_DIR / "pyproject.toml").read_text())
    assert image["tool"]["setuptools"]["py-modules"] == project["tool"]["setuptools"]["py-modules"]
    assert image["project"]["scripts"] == {"bluegreen-step": project["project"]["scripts"]["bluegreen-step"]}
    # The Dockerfile copies every module the distribution lists; one it left out would fail the build.
    copied = " ".join(
        line for line in (IMAGE_DIR / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ).split()
    assert [m for m in image["tool"]["setuptools"]["py-modules"] if f"{m}.py" not in copied] == []


def test_without_the_kubernetes_client_a_step_outside_a_pod_says_why_before_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as in the image: the import fails
    with pytest.raises(BadInput) as raised:
        context.api_transport()
    assert str(raised.value) == context.KUBECONFIG_NEEDS_CLIENT
