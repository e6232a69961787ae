"""The images as ``make image`` builds them from this checkout, and a way to run a command in one as its user.

The build is images/build.py itself (cached layers make a second build of an unchanged tree take seconds). Commands
run in a container of the image: ``buildah run --isolation chroot`` where buildah built it, ``docker run`` where a
Docker engine did; either way with the image's own user, environment and working directory, so what passes here is
what a Pod of the image runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltImage:
    """One image ``make image`` built: its reference and the engine that holds it."""

    name: str
    reference: str
    image_id: str
    engine: str

    def config(self) -> dict[str, Any]:
        """The image's OCI config (User, Env, Entrypoint, Cmd, WorkingDir)."""
        if self.engine == "docker":
            inspected = subprocess.run(
                ["docker", "image", "inspect", self.reference], capture_output=True, text=True, check=True
            )
            config: dict[str, Any] = json.loads(inspected.stdout)[0]["Config"]
            return config
        inspected = subprocess.run(
            ["buildah", "inspect", "--type", "image", self.reference], capture_output=True, text=True, check=True
        )
        oci: dict[str, Any] = json.loads(inspected.stdout)["OCIv1"]["config"]
        return oci


class ImageRunner:
    """Runs commands in one long-lived container of an image (buildah), or a fresh one each time (docker)."""

    def __init__(self, image: BuiltImage) -> None:
        self.image = image
        self.container = ""
        if image.engine == "buildah":
            made = subprocess.run(
                ["buildah", "from", "--quiet", image.reference], capture_output=True, text=True, check=True
            )
            self.container = made.stdout.strip()

    def run(
        self, command: list[str], *, env: dict[str, str] | None = None, user: str = "", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``command`` in the image, bypassing its entrypoint, as the image's user unless ``user`` says otherwise."""
        settings: list[str] = []
        for name, value in (env or {}).items():
            settings += ["--env", f"{name}={value}"]
        if user:
            settings += ["--user", user]
        if self.image.engine == "docker":
            argv = ["docker", "run", "--rm", *settings, "--entrypoint", command[0], self.image.reference, *command[1:]]
        else:
            argv = ["buildah", "run", "--isolation", "chroot", *settings, self.container, "--", *command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        # buildah adds its own lines about the exit status after the program's; the program's last line is the news.
        own = ("subprocess exited with status", "Error: exit status")
        done.stderr = "".join(line for line in done.stderr.splitlines(True) if not line.startswith(own))
        return done

    def close(self) -> None:
        """Remove the container."""
        if self.container:
            subprocess.run(["buildah", "rm", self.container], capture_output=True, check=False)


def _engine() -> str:
    docker = shutil.which("docker") is not None and (
        subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    )
    return "docker" if docker else "buildah"


@pytest.fixture(scope="session")
def built_images() -> dict[str, BuiltImage]:
    """Every image of ``make image``, built now from the working tree."""
    engine = _engine()
    if engine == "buildah" and shutil.which("buildah") is None:
        message = "neither a Docker engine nor buildah is here to build the images (make image-deps installs buildah)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # images/build.py lets one build run at a time: of the workers that ask, the others find every layer cached.
    built = subprocess.run(
        [sys.executable, str(REPO / "images" / "build.py")], capture_output=True, text=True, timeout=1800, check=False
    )
    assert built.returncode == 0, f"make image failed:\n{built.stdout[-2000:]}\n{built.stderr[-3000:]}"
    listed = json.loads(built.stdout.strip().splitlines()[-1])
    return {item["name"]: BuiltImage(item["name"], item["reference"], item["id"], engine) for item in listed}


@pytest.fixture(scope="session")
def steps_image(built_images: dict[str, BuiltImage]) -> BuiltImage:
    return built_images["steps"]


@pytest.fixture(scope="session")
def in_steps_image(steps_image: BuiltImage) -> Iterator[ImageRunner]:
    runner = ImageRunner(steps_image)
    yield runner
    runner.close()
