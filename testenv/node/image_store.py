"""Pull an image from a registry, as a node's container runtime does, into a root filesystem cached by digest.

The public names Pods use (``ghcr.io/argo-bluegreen/steps:0.1.0``, ``quay.io/argoproj/argoexec:v4.0.0``) are treated
as mirrored to one local registry, the way containerd's ``registry.mirrors`` setting sends every pull for a host to
a mirror: the repository path and the tag or digest stay the same, only the host changes. The pull follows the OCI
distribution API (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pull): the manifest by tag
or digest (an index is narrowed to linux/amd64), then the config and each layer by digest, each checked against its
digest before use.

Layers are unpacked in order into one directory per list of layers, with OCI whiteouts
(https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts): ``.wh.<name>`` deletes ``<name>`` of the
layers below, and ``.wh..wh..opq`` empties its directory of them. The directory is published whole (a READY marker,
one rename), so a second Pod of the same image starts from it at once.

What runs is the image's config (Entrypoint, Cmd, Env, WorkingDir, User), with a container's ``command`` and
``args`` over it by Kubernetes' rules (:func:`testenv.node.env.command_line`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from testenv.cache_entry import is_ready, publish

#: What this node is, for choosing from an image index.
PLATFORM = {"os": "linux", "architecture": "amd64"}
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = frozenset({MANIFEST_TYPES[0], MANIFEST_TYPES[2]})
#: Layer media types this store unpacks: tar, gzip-compressed or not.
GZIP_LAYERS = frozenset(
    {"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"}
)
PLAIN_LAYERS = frozenset({"application/vnd.oci.image.layer.v1.tar"})
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
DOCKER_HUB = "docker.io"


class PullError(Exception):
    """The image cannot be pulled; the text is what the kubelet would put in ErrImagePull's message."""


@dataclass(frozen=True)
class Reference:
    """An image reference, split: ``registry/repository`` with a tag, a digest or both."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse as the container runtimes do: a first part with a dot, a colon or ``localhost`` is a registry."""
        rest, _, digest = text.partition("@")
        name, tag = rest, ""
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = rest.rsplit(":", 1)
        first, _, remainder = name.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, remainder
        else:
            registry, repository = DOCKER_HUB, name
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not repository or (digest and not digest.startswith("sha256:")):
            raise PullError(f"{text!r} is not an image reference this node can pull")
        return cls(registry, repository, tag or ("" if digest else "latest"), digest)

    @property
    def wanted(self) -> str:
        """What the manifest request names: the digest when pinned, else the tag."""
        return self.digest or self.tag


@dataclass(frozen=True)
class PulledImage:
    """An image unpacked on this node: its manifest digest (the container's imageID), config and root filesystem."""

    reference: str
    digest: str
    rootfs: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def image_id(self) -> str:
        """``<repository>@sha256:...``, as the kubelet reports ``status.containerStatuses[].imageID``."""
        parsed = Reference.parse(self.reference)
        return f"{parsed.registry}/{parsed.repository}@{self.digest}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ImageStore:
    """Pulls through one mirror into ``root``: ``root/blobs`` by digest, ``root/rootfs/<digest>`` per image."""

    def __init__(self, mirror: str, root: Path, timeout: float = 60.0) -> None:
        self.mirror = mirror
        self.root = root
        self.client = httpx.Client(base_url=f"http://{mirror}", timeout=timeout)
        self._pulling = threading.Lock()

    def close(self) -> None:
        """Close the connection to the mirror."""
        self.client.close()

    def _get(self, path: str, accept: Sequence[str] = ()) -> httpx.Response:
        try:
            response = self.client.get(path, headers={"Accept": ", ".join(accept)} if accept else {})
        except httpx.HTTPError as error:
            raise PullError(f"the registry mirror {self.mirror} did not answer: {error}") from None
        if response.status_code == 404:
            raise PullError(f"not found at the registry mirror {self.mirror}: {path}")
        if response.status_code != 200:
            raise PullError(f"{path} at {self.mirror}: HTTP {response.status_code}")
        return response

    def resolve(self, reference: Reference) -> tuple[str, dict[str, Any]]:
        """The image manifest's digest and content for this node's platform."""
        response = self._get(f"/v2/{reference.repository}/manifests/{reference.wanted}", MANIFEST_TYPES)
        digest = reference.digest or response.headers.get("Docker-Content-Digest", "") or _sha256(response.content)
        if _sha256(response.content) != digest:
            raise PullError(f"the manifest of {reference.repository} does not match its digest {digest}")
        manifest: dict[str, Any] = json.loads(response.content)
        media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "")
        if media_type in INDEX_TYPES or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                platform = entry.get("platform") or {}
                if all(platform.get(key) == value for key, value in PLATFORM.items()):
                    return self.resolve(Reference(reference.registry, reference.repository, digest=entry["digest"]))
            raise PullError(
                f"{reference.repository}@{digest} has no image for {PLATFORM['os']}/{PLATFORM['architecture']}"
            )
        return digest, manifest

    def blob(self, repository: str, digest: str) -> Path:
        """A blob on disk, fetched once and checked against its digest."""
        path = self.root / "blobs" / digest.replace(":", "-")
        if path.is_file():
            return path
        data = self._get(f"/v2/{repository}/blobs/{digest}").content
        if _sha256(data) != digest:
            raise PullError(f"blob {digest} of {repository} does not match its digest")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)  # whole or not at all: a reader never sees half a blob
        return path

    def pull(self, text: str) -> PulledImage:
        """The image ``text`` names, unpacked (once per list of layers).

        One pull at a time, as the kubelet's default ``serializeImagePulls: true`` has it: the Pods of one image that
        start together wait for its first pull instead of each fetching and unpacking it.
        """
        with self._pulling:
            try:
                return self._pull(text)
            except (KeyError, TypeError, ValueError, OSError) as error:  # a manifest or config not as the spec says
                raise PullError(f"{text}: the registry's answer is not a usable image ({error!r})") from None

    def _pull(self, text: str) -> PulledImage:
        reference = Reference.parse(text)
        digest, manifest = self.resolve(reference)
        config = json.loads(self.blob(reference.repository, manifest["config"]["digest"]).read_bytes())
        # Keyed by the layers, not the manifest: images that differ only in their config (one build per tag, its
        # version in Env) share one root filesystem, as a snapshotter shares their layers.
        chain = hashlib.sha256("\n".join(item["digest"] for item in manifest["layers"]).encode()).hexdigest()
        rootfs = self.root / "rootfs" / chain
        if not is_ready(rootfs):
            layers = [
                (layer["mediaType"], self.blob(reference.repository, layer["digest"])) for layer in manifest["layers"]
            ]

            def unpack_all(directory: Path) -> None:
                for media_type, layer in layers:
                    unpack_layer(media_type, layer, directory / "root")

            publish(rootfs, digest, unpack_all)
        return PulledImage(text, digest, rootfs / "root", config.get("config") or {})


def _member_path(name: str) -> list[str]:
    """A member's path as its parts below the root: ``./a/b`` and ``/a/b`` are ``a/b``; ``..`` is refused."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PullError(f"layer member {name!r} climbs out of the root filesystem")
    return parts


def _below(root: Path, parts: list[str]) -> Path:
    """``root`` joined with ``parts``, refused when a directory on the way is a symlink.

    A whiteout deletes; followed through a symlink an earlier layer planted (``etc -> /etc``), it would delete on the
    node itself.
    """
    path = root
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink():
            raise PullError(f"{'/'.join(parts)} goes through the symlink /{path.relative_to(root)} of a lower layer")
    return path / parts[-1] if parts else path


def _apply_whiteouts(members: list[tarfile.TarInfo], root: Path) -> list[tarfile.TarInfo]:
    """Delete what this layer's whiteouts hide in the layers below; the members left to extract."""
    kept = []
    for member in members:
        parts = _member_path(member.name)
        name = parts[-1] if parts else ""
        if name == OPAQUE:
            target = _below(root, parts).parent
            if target.is_dir() and not target.is_symlink():
                for child in target.iterdir():
                    _remove(child)
        elif name.startswith(WHITEOUT):
            _remove(_below(root, [*parts[:-1], name[len(WHITEOUT) :]]))
        else:
            kept.append(member)
    return kept


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def unpack_layer(media_type: str, layer: Path, root: Path) -> None:
    """Apply one layer to ``root``: its whiteouts first, then its entries, modes and owners (by number) as they are.

    Every entry is checked here rather than by a tarfile filter, because a node must both keep an image's modes
    (``tarfile``'s ``tar`` filter clears setuid, sticky and group-write bits: ``/tmp`` would lose its 1777) and never
    touch the node itself:

    - no path climbs out (``..``) or goes through a symlink a lower layer left (``etc -> /etc``);
    - a hard link names an entry inside the root, never an absolute host path (tarfile would join ``/etc/shadow``
      as the node's own file);
    - device nodes are skipped (the container's ``/dev`` is the node agent's), and setuid bits are inert anyway: the
      root is mounted ``nosuid``;
    - an entry of another kind at the same path is removed first, as a snapshotter does, so a file never writes
      through a lower layer's symlink, and a file may replace a directory or the other way round.
    """
    if media_type not in GZIP_LAYERS | PLAIN_LAYERS:
        raise PullError(f"layer {layer.name} has media type {media_type}, which this node does not unpack")
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(layer, "r:gz" if media_type in GZIP_LAYERS else "r:") as archive:
            for member in _apply_whiteouts(archive.getmembers(), root):
                _extract(archive, member, root)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise PullError(f"layer {layer.name} cannot be unpacked: {error}") from None


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    """One checked entry of a layer (see :func:`unpack_layer`)."""
    if member.isdev():
        return
    parts = _member_path(member.name)
    if not parts:
        return  # the root directory itself
    target = _below(root, parts)
    existing = target.is_symlink() or target.exists()
    if existing and not (member.isdir() and target.is_dir() and not target.is_symlink()):
        _remove(target)
    if member.islnk():
        link = _member_path(member.linkname)
        source = _below(root, link)
        if not link or source.is_symlink() or not source.is_file():
            raise PullError(f"hard link {member.name} -> {member.linkname} names no file inside the image")
        member = member.replace(linkname="/".join(link), deep=False)
    archive.extract(member.replace(name="/".join(parts), deep=False), root, numeric_owner=True, filter="fully_trusted")


__all__ = ["ImageStore", "PullError", "PulledImage", "Reference", "unpack_layer"]
