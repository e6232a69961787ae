"""The steps image, the way its Dockerfile builds it, without a Docker engine: wheel, clean venv, entrypoint."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from steps.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "images" / "steps" / "requirements.txt"


def step_requirements() -> list[str]:
    return [line.strip() for line in REQUIREMENTS.read_text().splitlines() if line.strip() and line[0] != "#"]


def test_image_requirements_are_the_projects_own_pins_minus_hera() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {d.split("==")[0].split("[")[0]: d.split("==")[1] for d in project["dependencies"]}
    for requirement in step_requirements():
        name, version = requirement.split("==")
        assert pinned[name] == version, f"{name}: image pins {version}, pyproject {pinned[name]}"
    assert not any(r.startswith("hera") for r in step_requirements())
    # Nor anything else of rendering: the image's steps run with the base install, without the render extra.
    render_extra = {d.split("==")[0].split("[")[0] for d in project["optional-dependencies"]["render"]}
    assert not {r.split("==")[0] for r in step_requirements()} & render_extra


def test_the_image_build_copies_every_top_level_module_the_package_lists() -> None:
    """The wheel is built from the files the Dockerfile copies; a module it leaves out fails the build."""
    modules = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["py-modules"]
    copied = " ".join(
        line for line in (REPO / "images" / "steps" / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ).split()
    assert [m for m in modules if f"{m}.py" not in copied] == []


@pytest.mark.package_index
def test_wheel_installs_into_a_clean_venv_and_runs_like_the_image(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "image"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if installed.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"installing the steps' dependencies failed: {installed.stderr[-500:]}")
        pytest.skip("the package index is not reachable to install the steps' dependencies")
    subprocess.run([*pip, "--no-deps", *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    environment = {"PATH": str(venv / "bin"), "HOME": str(tmp_path)}
    helped = subprocess.run(
        [str(venv / "bin" / "bluegreen-step"), "--help"], capture_output=True, text=True, env=environment, cwd=tmp_path
    )
    assert helped.returncode == 0, helped.stderr
    for step in COMMANDS:
        assert step in helped.stdout
    # Every step module imports without Hera, which the image does not have.
    probe = (
        "import importlib, steps.cli\n"
        "[importlib.import_module(m) for m in steps.cli.COMMANDS.values()]\n"
        "import importlib.util; assert importlib.util.find_spec('hera') is None"
    )
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, env=environment, cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
