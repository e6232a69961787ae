"""The node agent's image table for the supply-chain images: the demo app from any registry, and cosign."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testenv import tools
from testenv.node.images import COSIGN_REPOSITORY, ImageNotFound, ImageTable

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/argo-bluegreen/demo-app:v2-never-ready", "v2-never-ready"),
        ("10.243.0.1:5000/argo-bluegreen/demo-app:v1", "v1"),
        (f"10.243.0.1:5000/argo-bluegreen/demo-app:v1@{DIGEST}", "v1"),
        (f"10.243.0.1:5000/argo-bluegreen/demo-app@{DIGEST}", DIGEST),
        ("10.243.0.1:5000/argo-bluegreen/demo-app", "latest"),
    ],
)
def test_the_demo_app_runs_from_any_registry_with_its_tag_or_digest_as_version(image: str, version: str) -> None:
    config = ImageTable(argoexec=None).resolve(image)
    assert config.entrypoint[-1].endswith("demo_app.py")
    assert config.env["DEMO_APP_VERSION"] == version


def test_other_paths_of_a_registry_are_not_the_demo_app() -> None:
    with pytest.raises(ImageNotFound, match="not found"):
        ImageTable(argoexec=None).resolve("10.243.0.1:5000/shop/demo-app:v1")


def test_the_cosign_image_needs_the_built_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path))
    with pytest.raises(ImageNotFound, match=r"cosign not built: run `make tools`"):
        ImageTable(argoexec=None).resolve(f"{COSIGN_REPOSITORY}:v2.6.5")


def test_the_cosign_image_is_the_built_cosign_as_distroless_nonroot(pinned_tool: Callable[[str], Path]) -> None:
    built = pinned_tool("cosign")
    config = ImageTable(argoexec=None).resolve(f"{COSIGN_REPOSITORY}:v2.6.5@{DIGEST}")
    # As ko lays the official image out: the program at /ko-app/cosign, which is also the entrypoint.
    assert config.entrypoint == ("/ko-app/cosign",)
    assert config.image_files == ((built.resolve(), "/ko-app/cosign"),)
    assert config.user == (65532, 65532)
    assert config.env["HOME"] == "/tmp"
