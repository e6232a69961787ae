"""The local cluster's registry mirror: crane's registry, holding the images ``make image`` built from this tree.

A node pulls by the names the manifests use (``ghcr.io/argo-bluegreen/steps:0.1.0``); its agent sends every such pull
to this registry, as containerd's registry mirrors do (:mod:`testenv.node.image_store`). The cluster builds the steps
image from the working tree when it starts (``images/build.py``; a tree the last build saw costs a few seconds of
cached layers) and pushes it under its public repository path and tag, so every step Pod runs the image a user would
pull, and a change to the steps reaches the Pods only through a build. Argo's executor and cosign are pushed too, as
images of the programs built from their pinned modules, laid out as their upstream images are (:func:`assemble`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testenv.node.image_store import Reference

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "images" / "build.py"
#: How long the cold build may take: a Debian base and the dependencies' layer from the package index.
BUILD_TIMEOUT_SECONDS = 1200
PUSH_TIMEOUT_SECONDS = 300


class MirrorError(RuntimeError):
    """An image could not be built or pushed; the message says which and why."""


@dataclass(frozen=True)
class MirroredImage:
    """An image pushed to the mirror: its public reference, manifest digest and image ID (config digest)."""

    name: str
    reference: str
    digest: str
    image_id: str


def build_images(names: list[str]) -> list[dict[str, str]]:
    """Build ``names`` from this tree with images/build.py; what it reports of each."""
    built = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), *names],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if built.returncode != 0:
        raise MirrorError(f"make image failed (images/build.py {' '.join(names)}):\n{built.stderr[-3000:]}")
    reported: list[dict[str, str]] = json.loads(built.stdout.strip().splitlines()[-1])
    return reported


#: A distroless-like root's accounts: root, and the `nonroot` user that ko's and distroless images run as.
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"


@dataclass(frozen=True)
class BinaryImage:
    """An image of one static program, laid out as its upstream image lays it out (distroless, or ko's)."""

    name: str
    reference: str
    binary: Path
    path: str
    user: str
    env_path: str


def assemble(image: BinaryImage) -> dict[str, str]:
    """Build ``image`` from scratch with buildah: the program, /tmp, the accounts, the upstream image's config.

    The upstream images (Argo's executor, cosign) are published for these exact programs, which this machine
    builds from their pinned modules; their registries cannot be reached here, so the images are made again.
    """
    with tempfile.TemporaryDirectory(prefix="binary-image-") as scratch:
        context = Path(scratch)
        root = context / "root"
        (root / "tmp").mkdir(parents=True)
        (root / "tmp").chmod(0o1777)
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_text(PASSWD)
        (root / "etc" / "group").write_text(GROUP)
        target = root / image.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image.binary, target)
        target.chmod(0o755)
        (context / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY root/ /\n"
            f"ENV PATH={image.env_path}\n"
            f"USER {image.user}\n"
            "WORKDIR /\n"
            f"ENTRYPOINT {json.dumps([image.path])}\n"
        )
        _run(
            ["buildah", "bud", "--isolation", "chroot", "--layers", "--quiet", "--tag", image.reference, str(context)],
            f"assembling {image.reference}",
        )
        found = _run(["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", image.reference], "id")
    return {"name": image.name, "reference": image.reference, "id": "sha256:" + found.strip().removeprefix("sha256:")}


def wait_until_serving(address: str, timeout: float = 30.0) -> None:
    """Return once the registry answers the distribution API's ``GET /v2/`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise MirrorError(f"the registry at {address} does not answer /v2/ after {timeout:.0f}s")
        time.sleep(0.1)


def push(image: dict[str, str], mirror: str) -> MirroredImage:
    """Push a built image to ``mirror`` under its public repository path and tag; its manifest digest."""
    public = Reference.parse(image["reference"])
    target = f"{mirror}/{public.repository}:{public.tag}"
    with tempfile.TemporaryDirectory(prefix="mirror-push-") as scratch:
        digest_file = Path(scratch) / "digest"
        if shutil.which("buildah") is not None and _buildah_has(image["reference"]):
            command = ["buildah", "push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file)]
            command += [image["reference"], f"docker://{target}"]
            _run(command, f"pushing {image['reference']} to {target}")
            digest = digest_file.read_text().strip()
        else:
            _run(["docker", "tag", image["reference"], target], f"tagging {image['reference']}")
            pushed = _run(["docker", "push", target], f"pushing {image['reference']} to {target}")
            digest = next((word for word in pushed.split() if word.startswith("sha256:")), "")
    if not digest.startswith("sha256:"):
        raise MirrorError(f"pushing {image['reference']} to {target} reported no digest")
    return MirroredImage(image["name"], image["reference"], digest, image["id"])


def _buildah_has(reference: str) -> bool:
    found = subprocess.run(["buildah", "inspect", "--type", "image", reference], capture_output=True, check=False)
    return found.returncode == 0


def _run(command: list[str], what: str) -> str:
    if shutil.which(command[0]) is None:
        raise MirrorError(
            f"{what}: {command[0]} is not installed; the local cluster builds and pushes its images with buildah "
            "(make image-deps installs it where no Docker engine runs; apt-get install buildah otherwise)"
        )
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PUSH_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise MirrorError(f"{what}: no answer in {PUSH_TIMEOUT_SECONDS}s") from None
    if done.returncode != 0:
        raise MirrorError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout


__all__ = ["BinaryImage", "MirrorError", "MirroredImage", "assemble", "build_images", "push", "wait_until_serving"]
