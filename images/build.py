"""``make image``: build the steps image and the demo app's image from this checkout, with or without a Docker engine.

With a running Docker engine, ``docker build`` builds each Dockerfile on its default ``BASE``: the upstream Python
image, pinned by digest. Without one, buildah builds the same Dockerfiles (``buildah bud --isolation chroot``, which
needs no daemon and no OCI runtime). buildah first tries to pull that pinned base; where the registry cannot be
reached, the base is a Python 3.11 root filesystem made with mmdebstrap from Debian bookworm's own packages, imported
as ``localhost/argo-bluegreen/python-base:<key>`` and kept under ``~/.cache/argo-bluegreen/images/``, keyed by the
recipe below, so it is made once per machine.

A machine whose TLS to the package index goes through its own certificate authority hands its CA bundle to the
builds as the secret ``ca-certificates``, mounted only into the steps that install packages.

The last line on standard output is JSON: each image's name, its reference and its image ID, for the tests.
Stdlib only: it runs before (and without) the project's virtualenv.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERSION_FILE = REPO / "bluegreen_version.py"
STEPS_REPOSITORY = "ghcr.io/argo-bluegreen/steps"
DEMO_APP_REPOSITORY = "ghcr.io/argo-bluegreen/demo-app"
#: The demo app's release the demo deploys first; other tags differ only in the VERSION build argument.
DEMO_APP_VERSION = "v1"

#: The Debian base: Python 3.11 with venv, `useradd`, nothing for documentation. The merged-/usr hook does what the
#: `usrmerge` package would, without the Perl that package pulls in (about 45 MB).
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "passwd")
MMDEBSTRAP_OPTIONS = (
    "--variant=essential",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    *(f"--dpkgopt=path-exclude=/usr/share/{folder}/*" for folder in ("doc", "man", "locale", "info")),
)
#: What an image's config says, as the upstream Python image says it.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Where a base that cannot be pulled comes from instead; the tag carries the recipe's key.
DEBIAN_BASE_REPOSITORY = "localhost/argo-bluegreen/python-base"
#: How long a pull of the pinned base may take before the Debian base is made instead.
PULL_TIMEOUT_SECONDS = 120
CA_BUNDLES = (
    os.environ.get("PIP_CERT", ""),
    os.environ.get("SSL_CERT_FILE", ""),
    "/etc/ssl/certs/ca-certificates.crt",
)


class BuildError(Exception):
    """A build that cannot go on; the text says what failed and what to do."""


@dataclass(frozen=True)
class ImageRecipe:
    """One image: its Dockerfile, its build context and reference, and the build arguments it takes."""

    name: str
    dockerfile: Path
    context: Path
    reference: str
    build_args: tuple[tuple[str, str], ...] = ()


def project_version() -> str:
    """The one version number, as bluegreen_version.py writes it."""
    found = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), re.MULTILINE)
    if found is None:
        raise BuildError(f"{VERSION_FILE} has no __version__ line")
    return found.group(1)


def recipes(steps_reference: str = "") -> list[ImageRecipe]:
    """The images ``make image`` builds; the steps image under ``steps_reference`` when one is given."""
    steps = steps_reference or f"{STEPS_REPOSITORY}:{project_version()}"
    return [
        ImageRecipe("steps", REPO / "images/steps/Dockerfile", REPO, steps),
        ImageRecipe(
            "demo-app",
            REPO / "images/demo-app/Dockerfile",
            REPO / "images/demo-app",
            f"{DEMO_APP_REPOSITORY}:{DEMO_APP_VERSION}",
            (("VERSION", DEMO_APP_VERSION),),
        ),
    ]


def default_base(dockerfile: Path) -> str:
    """The ``BASE`` build argument's default in ``dockerfile``: the pinned upstream image."""
    found = re.search(r"^ARG BASE=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    if found is None:
        raise BuildError(f"{dockerfile} has no `ARG BASE=<image>` line")
    return found.group(1)


def ca_bundle() -> Path | None:
    """The CA bundle this machine trusts, handed to the builds that reach the package index."""
    for candidate in CA_BUNDLES:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def run(command: list[str], what: str, timeout: float | None = None) -> str:
    """Run ``command``; its standard output, or a BuildError naming ``what`` with the end of its output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as expired:
        raise BuildError(f"{what}: no answer in {timeout:.0f}s ({' '.join(command[:3])} ...)") from expired
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise BuildError(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def docker_engine() -> bool:
    """Whether a Docker engine answers here (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def debian_base_key() -> str:
    """The Debian base's cache key: everything that decides what mmdebstrap makes."""
    recipe = json.dumps([DEBIAN_SUITE, DEBIAN_PACKAGES, MMDEBSTRAP_OPTIONS, BASE_PATH])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """``$BLUEGREEN_IMAGE_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/argo-bluegreen/images``."""
    explicit = os.environ.get("BLUEGREEN_IMAGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argo-bluegreen" / "images"


def buildah_has(reference: str) -> bool:
    """Whether buildah's local storage holds ``reference``."""
    found = subprocess.run(["buildah", "inspect", "--type", "image", reference], capture_output=True, check=False)
    return found.returncode == 0


def debian_rootfs() -> Path:
    """The Debian base's root filesystem as a tar, made once per recipe and kept in the cache."""
    key = debian_base_key()
    tarball = cache_dir() / f"debian-python-{key}.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("mmdebstrap") is None:
        raise BuildError(
            "the pinned base image cannot be pulled here, and making one from Debian's packages needs mmdebstrap: "
            "apt-get install mmdebstrap (make image-deps does it)"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkstemp(prefix=f".{tarball.name}.", suffix=".tar", dir=tarball.parent)[1])
    started = time.monotonic()
    print(f"image: making the Python base from Debian {DEBIAN_SUITE}'s packages (mmdebstrap, once per recipe)")
    try:
        include = ",".join(DEBIAN_PACKAGES)
        run(
            ["mmdebstrap", "--format=tar", *MMDEBSTRAP_OPTIONS, f"--include={include}", DEBIAN_SUITE, str(partial)],
            "mmdebstrap",
        )
        partial.rename(tarball)  # whole or not at all: a reader never sees half a root filesystem
    finally:
        partial.unlink(missing_ok=True)
    print(f"image: Debian base made in {time.monotonic() - started:.0f}s")
    return tarball


def debian_base() -> str:
    """The Debian base as an image in buildah's storage; its reference."""
    reference = f"{DEBIAN_BASE_REPOSITORY}:{debian_base_key()}"
    if buildah_has(reference):
        return reference
    tarball = debian_rootfs()
    container = run(["buildah", "from", "scratch"], "buildah from scratch").strip()
    try:
        run(["buildah", "add", "--quiet", container, str(tarball), "/"], "unpacking the Debian base")
        run(["buildah", "config", "--env", f"PATH={BASE_PATH}", "--cmd", "python3", container], "buildah config")
        run(["buildah", "commit", "--quiet", "--rm", container, reference], "committing the Debian base")
    except BuildError:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
        raise
    return reference


def buildah_base(pinned: str) -> str:
    """The base buildah builds on: the pinned upstream image when it can be had, else the Debian base."""
    if buildah_has(pinned):
        return pinned
    try:
        pulled = subprocess.run(
            ["buildah", "pull", "--quiet", "--retry", "0", pinned],
            capture_output=True,
            text=True,
            timeout=PULL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        reason = f"no answer in {PULL_TIMEOUT_SECONDS}s"
    else:
        if pulled.returncode == 0:
            return pinned
        reason = (pulled.stderr.strip().splitlines() or ["no reason given"])[-1]
    print(f"image: {pinned} cannot be pulled ({reason[:160]}); building on Debian's packages instead")
    return debian_base()


def build_command(engine: str, recipe: ImageRecipe, base: str | None) -> list[str]:
    """The build of one recipe with ``engine`` (docker or buildah), on ``base`` or the Dockerfile's default."""
    arguments = list(recipe.build_args) + ([("BASE", base)] if base else [])
    command = [engine, "build"] if engine == "docker" else ["buildah", "bud", "--isolation", "chroot", "--layers"]
    for name, value in arguments:
        command += ["--build-arg", f"{name}={value}"]
    bundle = ca_bundle()
    if bundle is not None:
        command += ["--secret", f"id=ca-certificates,src={bundle}"]
    return [*command, "--file", str(recipe.dockerfile), "--tag", recipe.reference, str(recipe.context)]


def image_id(engine: str, reference: str) -> str:
    """The built image's ID, ``sha256:<hex>``: the digest of its config, whatever compression a push picks."""
    if engine == "docker":
        found = run(["docker", "image", "inspect", "--format", "{{.Id}}", reference], "docker image inspect")
    else:
        found = run(["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", reference], "inspect")
    return "sha256:" + found.strip().removeprefix("sha256:")


def build_all(only: list[str], steps_reference: str = "") -> list[dict[str, str]]:
    """Build the chosen images (all when ``only`` is empty); what was built, for the JSON line."""
    if docker_engine():
        engine = "docker"
    elif shutil.which("buildah") is not None:
        engine = "buildah"
    else:
        raise BuildError(
            "no Docker engine answers here and buildah is not installed: start Docker, or "
            "apt-get install buildah mmdebstrap (make image-deps does it)"
        )
    built = []
    bases: dict[str, str] = {}
    for recipe in recipes(steps_reference):
        if only and recipe.name not in only:
            continue
        pinned = default_base(recipe.dockerfile)
        if engine == "buildah" and pinned not in bases:
            bases[pinned] = buildah_base(pinned)
        base = bases.get(pinned)
        started = time.monotonic()
        run(build_command(engine, recipe, base), f"building {recipe.name} ({recipe.dockerfile.relative_to(REPO)})")
        seconds = time.monotonic() - started
        print(f"image: {recipe.reference} built with {engine} on {base or pinned} in {seconds:.1f}s")
        identity = image_id(engine, recipe.reference)
        built.append({"name": recipe.name, "reference": recipe.reference, "id": identity, "base": base or pinned})
    return built


def main(argv: list[str] | None = None) -> int:
    """``python3 images/build.py [NAME ...]``."""
    parser = argparse.ArgumentParser(prog="images/build.py", description=__doc__.split("\n\n")[0])
    names = [recipe.name for recipe in recipes()]
    parser.add_argument("images", nargs="*", metavar="NAME", help=f"only these of {', '.join(names)}")
    parser.add_argument(
        "--steps-tag",
        default="",
        metavar="REFERENCE",
        help="tag the steps image so, such as registry.example.com/platform/bluegreen-steps:<version> "
        f"(default {STEPS_REPOSITORY}:<version>, a placeholder no registry serves)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.images if name not in names]
    if unknown:
        parser.error(f"no image is named {', '.join(unknown)}; choose from {', '.join(names)}")
    try:
        # One build at a time on this machine: a test session's workers and its cluster may all ask at once, and
        # the first builds while the others then find every layer cached.
        with open(Path(tempfile.gettempdir()) / "argo-bluegreen-image-build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            built = build_all(args.images, args.steps_tag)
    except BuildError as error:
        print(f"make image: {error}", file=sys.stderr)
        return 1
    print(json.dumps(built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
