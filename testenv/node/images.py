"""The node agent's image table: which local program stands for which container image.

Nothing is pulled. An image reference is reduced to its repository (tag and digest dropped) and
looked up here; a hit describes the program the way an image config does (entrypoint, cmd, env,
working dir), so a container's ``command``/``args`` override it exactly as in Kubernetes
(https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/).
A miss is reported as the kubelet reports an image that cannot be pulled.

Paths are derived at run time from where this checkout is, never fixed, so a fresh clone
anywhere (including under ``/tmp``) works.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STEPS_REPOSITORY = "ghcr.io/argo-bluegreen/steps"
ARGOEXEC_REPOSITORY = "quay.io/argoproj/argoexec"
DEMO_APP_REPOSITORY = "ghcr.io/argo-bluegreen/demo-app"

# The PATH a Debian-based image's config carries; each program's own directory goes first.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def repo_root() -> Path:
    """This checkout's root (testenv/node/images.py is three levels below it)."""
    return Path(__file__).resolve().parents[2]


def venv_dir() -> Path:
    """This checkout's virtualenv, created by ``make install``."""
    return repo_root() / ".venv"


@dataclass(frozen=True)
class ImageConfig:
    """What an image's config would say: the program to run and its environment.

    ``runtime_paths`` are host directories or files the program needs to see at their real
    paths inside the container (the checkout, its virtualenv, the Python installation behind it,
    a built binary). The sandbox binds them read-only.
    """

    repository: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    runtime_paths: tuple[Path, ...] = ()
    user: tuple[int, int] | None = None


class ImageNotFound(LookupError):
    """The image is not in the table; the message is what a registry miss would say."""


def repository_of(image: str) -> str:
    """``image`` without its digest and tag (a ``:`` after the last ``/`` starts the tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def tag_of(image: str) -> str:
    """The tag of ``image``, ``latest`` when it has none (as a runtime would resolve it)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[colon + 1 :] if colon > slash else "latest"


def _python_runtime() -> tuple[Path, ...]:
    # The venv's interpreter is a symlink into the base installation, which must be visible too.
    return (repo_root(), Path(sys.base_prefix).resolve())


class ImageTable:
    """Resolves image references to :class:`ImageConfig`; the one place the mapping lives."""

    def __init__(self, argoexec: Path | None) -> None:
        self.argoexec = argoexec

    def resolve(self, image: str) -> ImageConfig:
        """The config for ``image``, or :class:`ImageNotFound` with the kubelet's wording."""
        repository = repository_of(image)
        venv_bin = venv_dir() / "bin"
        python_env = {
            "PATH": f"{venv_bin}:{DEFAULT_PATH}",
            # The checkout is bound read-only: no bytecode caches, and output as it happens.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if repository == STEPS_REPOSITORY:
            return ImageConfig(
                repository=repository,
                entrypoint=(str(venv_bin / "bluegreen-step"),),
                env=python_env,
                working_dir="/",
                runtime_paths=_python_runtime(),
                # The steps Dockerfile's `USER 65532:65532`.
                user=(65532, 65532),
            )
        if repository == DEMO_APP_REPOSITORY:
            app = repo_root() / "images" / "demo-app" / "demo_app.py"
            return ImageConfig(
                repository=repository,
                entrypoint=(str(venv_bin / "python"), str(app)),
                env={**python_env, "DEMO_APP_VERSION": tag_of(image)},
                working_dir="/",
                runtime_paths=_python_runtime(),
            )
        if repository == ARGOEXEC_REPOSITORY and self.argoexec is not None:
            binary = self.argoexec.resolve()
            # `argoexec init` copies itself from PATH into /var/run/argo, so PATH must name it.
            return ImageConfig(
                repository=repository,
                entrypoint=("argoexec",),
                env={"PATH": f"{binary.parent}:{DEFAULT_PATH}"},
                working_dir="/",
                runtime_paths=(binary,),
                # Argo's executor image runs as its non-root user 8737.
                user=(8737, 8737),
            )
        raise ImageNotFound(
            f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
            f"{repository}: not found (the node agent's image table has no program for it)"
        )
