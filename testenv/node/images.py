"""The node agent's images: pulled from the registry mirror, or, for the rest, which local program stands for one.

The steps, executor and cosign images are pulled from the local registry (:mod:`testenv.node.image_store`) when the
agent has one: the steps image as ``make image`` built it from this tree, the others as images of the programs built
here, each run from its own root filesystem with its own config. The demo app's images, and every image of an agent
without a registry, are not pulled: the reference is reduced to its repository (tag and digest dropped) and looked
up in a table, whose hit describes the program the way an image config does (entrypoint, cmd, env, working dir).
Either way a container's ``command``/``args`` override the config exactly as in Kubernetes
(https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/), and a miss is
reported as the kubelet reports an image that cannot be pulled.

Paths are derived at run time from where this checkout is, never fixed, so a fresh clone
anywhere (including under ``/tmp``) works.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv import tools
from testenv.node.image_store import ImageStore, PullError

STEPS_REPOSITORY = "ghcr.io/argo-bluegreen/steps"
ARGOEXEC_REPOSITORY = "quay.io/argoproj/argoexec"
DEMO_APP_REPOSITORY = "ghcr.io/argo-bluegreen/demo-app"
# The demo app's path under any registry: the same program whether it was published to ghcr.io or pushed to the test
# registry of the supply-chain tests (``<host:port>/argo-bluegreen/demo-app``).
DEMO_APP_PATH = DEMO_APP_REPOSITORY.split("/", 1)[1]
# The official cosign image, a distroless image whose entrypoint is cosign itself.
COSIGN_REPOSITORY = "ghcr.io/sigstore/cosign/cosign"
# Where ko, which builds that image, puts the program (/ko-app/<name>); the image's entrypoint.
COSIGN_ENTRYPOINT = "/ko-app/cosign"
# distroless's `nonroot` user, which the cosign image runs as.
DISTROLESS_NONROOT = (65532, 65532)

#: The images pulled from the registry mirror (when the agent has one) rather than stood in for.
PULLED_REPOSITORIES = frozenset({STEPS_REPOSITORY, ARGOEXEC_REPOSITORY, COSIGN_REPOSITORY})

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
    #: Files the image has at paths of its own, as (host file, path in the container): a ko-built image's
    #: ``/ko-app/<name>``, which a template names in ``command`` so Argo's executor needs no registry lookup.
    image_files: tuple[tuple[Path, str], ...] = ()
    #: The unpacked root filesystem of an image pulled from the registry mirror; None for a table entry.
    rootfs: Path | None = None
    #: ``status.containerStatuses[].imageID``: ``<repository>@sha256:...`` for a pulled image.
    image_id: str = ""


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


def digest_of(image: str) -> str | None:
    """The ``sha256:...`` digest ``image`` is pinned to, None when it names only a tag."""
    return image.split("@", 1)[1] if "@" in image else None


def demo_app_version(image: str) -> str:
    """What the demo app reports as its version: the tag, or for a reference by digest alone the digest itself.

    A real demo image carries its version from build time; here the reference is all there is, and a digest-only
    reference still says exactly which pushed image runs.
    """
    name = image.split("@", 1)[0]
    has_tag = name.rfind(":") > name.rfind("/")
    digest = digest_of(image)
    return tag_of(image) if has_tag or digest is None else digest


def is_demo_app(repository: str) -> bool:
    """The demo app under any registry host (``ghcr.io``, or the test registry's ``host:port``)."""
    return repository == DEMO_APP_REPOSITORY or repository.partition("/")[2] == DEMO_APP_PATH


def _python_runtime() -> tuple[Path, ...]:
    # The venv's interpreter is a symlink into the base installation, which must be visible too; so must the venv
    # itself when it is a link to another checkout's (a copy of the tree that `make mutants` plants faults in).
    paths = (repo_root(), Path(sys.base_prefix).resolve())
    venv = venv_dir().resolve()
    return paths if venv.is_relative_to(repo_root()) else (*paths, venv)


def user_of(config: Mapping[str, Any], rootfs: Path) -> tuple[int, int] | None:
    """An image config's ``User`` as (uid, gid): numbers as they are, a name looked up in the image's /etc/passwd."""
    text = str(config.get("User") or "")
    if not text:
        return None
    user, _, group = text.partition(":")
    accounts = _id_table(rootfs / "etc" / "passwd")
    uid: int | None
    primary: int | None
    if user.isdigit():
        # A uid the image's passwd names takes that entry's group, as containerd has it; any other uid, group 0.
        uid = int(user)
        primary = next((gid for found, gid in accounts.values() if found == uid), None)
    else:
        uid, primary = accounts.get(user, (None, None))
    if uid is None:
        raise ImageNotFound(f"the image's user {user!r} is not in its /etc/passwd")
    if not group:
        return uid, primary if primary is not None else 0
    if group.isdigit():
        return uid, int(group)
    gid = _id_table(rootfs / "etc" / "group").get(group, (None, None))[0]
    if gid is None:
        raise ImageNotFound(f"the image's group {group!r} is not in its /etc/group")
    return uid, gid


def _id_table(path: Path) -> dict[str, tuple[int, int | None]]:
    """Each name of an image's passwd or group file, with its id and primary group; empty when the file is absent."""
    table: dict[str, tuple[int, int | None]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return table
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            table[fields[0]] = (int(fields[2]), int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None)
    return table


class ImageTable:
    """Resolves image references to :class:`ImageConfig`; the one place the mapping lives.

    With a registry mirror, the repositories in ``pulled`` are real images: pulled through it, unpacked, and run
    from their own root filesystems. Everything else still comes from the table below.
    """

    def __init__(
        self, argoexec: Path | None, store: ImageStore | None = None, pulled: frozenset[str] = frozenset()
    ) -> None:
        self.argoexec = argoexec
        self.store = store
        self.pulled = pulled
        self._present: dict[str, ImageConfig] = {}
        self._lock = threading.Lock()

    def _pull(self, image: str, always: bool) -> ImageConfig:
        """The image from the mirror: once per reference (IfNotPresent), or again for ``imagePullPolicy: Always``."""
        assert self.store is not None
        with self._lock:
            known = self._present.get(image)
        if known is not None and not always:
            return known
        try:
            pulled = self.store.pull(image)
        except PullError as error:
            raise ImageNotFound(f'failed to pull and unpack image "{image}": {error}') from None
        config = pulled.config
        resolved = ImageConfig(
            repository=repository_of(image),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item),
            working_dir=str(config.get("WorkingDir") or "/"),
            user=user_of(config, pulled.rootfs),
            rootfs=pulled.rootfs,
            image_id=pulled.image_id,
        )
        with self._lock:
            self._present[image] = resolved
        return resolved

    def resolve(self, image: str, pull_policy: str = "IfNotPresent") -> ImageConfig:
        """The config for ``image``, or :class:`ImageNotFound` with the kubelet's wording."""
        repository = repository_of(image)
        if self.store is not None and repository in self.pulled:
            return self._pull(image, always=pull_policy == "Always")
        venv_bin = venv_dir() / "bin"
        python_env = {
            "PATH": f"{venv_bin}:{DEFAULT_PATH}",
            # The checkout is bound read-only: no bytecode caches, and output as it happens.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            # This checkout's modules first, even when the venv's editable install points at another checkout.
            "PYTHONPATH": str(repo_root()),
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
        if is_demo_app(repository):
            app = repo_root() / "images" / "demo-app" / "demo_app.py"
            return ImageConfig(
                repository=repository,
                entrypoint=(str(venv_bin / "python"), str(app)),
                env={**python_env, "DEMO_APP_VERSION": demo_app_version(image)},
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
        if repository == COSIGN_REPOSITORY:
            return _cosign(image)
        raise ImageNotFound(
            f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
            f"{repository}: not found (the node agent's image table has no program for it)"
        )


def _cosign(image: str) -> ImageConfig:
    # Looked up per Pod, so a `make tools` run while the agent is up is seen at the next Pod.
    try:
        binary = tools.program("cosign").resolve()
    except tools.ToolsNotBuilt as exc:
        raise ImageNotFound(f'failed to pull and unpack image "{image}": {exc}') from None
    return ImageConfig(
        repository=COSIGN_REPOSITORY,
        # ko builds the official image: the program is /ko-app/cosign and is the entrypoint, so a container's args
        # are its subcommand and flags.
        entrypoint=(COSIGN_ENTRYPOINT,),
        env={
            "PATH": f"/ko-app:{DEFAULT_PATH}",
            # The runtime gives the real image's user the home directory /etc/passwd names, which it may write (cosign
            # caches TUF metadata under ~/.sigstore). Here the root is rebuilt per container and only /tmp is
            # writable by that user, so HOME points there.
            "HOME": "/tmp",
        },
        working_dir="/",
        image_files=((binary, COSIGN_ENTRYPOINT),),
        user=DISTROLESS_NONROOT,
    )
