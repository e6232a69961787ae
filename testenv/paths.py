"""Where the built control-plane artifacts live, and whether they are there.

The binaries and CRDs are large and derived entirely from the pinned Go modules, so they are
kept in a per-user cache outside the repository, keyed by a hash of everything that decides
their content. Both the builder (``build.py``) and the pytest plugin use this module, so the two
always agree on the location. Stdlib only: it runs before the project's dependencies exist.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

TESTENV_DIR = Path(__file__).resolve().parent

# Every file whose content changes what build.py produces; editing any of them yields a new key,
# so a stale cache is never reused.
KEY_INPUTS: tuple[str, ...] = (
    "go.mod",
    "go.sum",
    "crds/go.mod",
    "crds/go.sum",
    "build.py",
    "paths.py",
)

READY_MARKER = "READY"
CRD_SETS: tuple[str, ...] = ("argo", "istio", "gateway-api")


@dataclass(frozen=True)
class Artifacts:
    """Paths inside one complete cache entry."""

    root: Path
    etcd: Path
    kube_apiserver: Path
    crd_dirs: dict[str, Path]
    argo_schema: Path
    versions_file: Path


@dataclass(frozen=True)
class Located:
    """Result of :func:`locate`: the artifacts, or ``None`` and why not."""

    artifacts: Artifacts | None
    reason: str


def cache_root() -> Path:
    """The directory holding all cache entries (one per key)."""
    explicit = os.environ.get("BLUEGREEN_TESTENV_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "argo-bluegreen" / "testenv"


def cache_key() -> str:
    """Short content hash of :data:`KEY_INPUTS`."""
    digest = hashlib.sha256()
    for rel in KEY_INPUTS:
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update((TESTENV_DIR / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def layout(root: Path) -> Artifacts:
    """The artifact paths for a cache entry rooted at ``root`` (whether or not it exists)."""
    return Artifacts(
        root=root,
        etcd=root / "bin" / "etcd",
        kube_apiserver=root / "bin" / "kube-apiserver",
        crd_dirs={name: root / "crds" / name for name in CRD_SETS},
        argo_schema=root / "argo" / "schema.json",
        versions_file=root / "versions.json",
    )


def entry_dir() -> Path:
    """The cache entry the current sources map to."""
    return cache_root() / cache_key()


def locate() -> Located:
    """Find the built artifacts without building anything."""
    root = entry_dir()
    if not (root / READY_MARKER).is_file():
        return Located(None, f"control plane not built (no {root / READY_MARKER})")
    arts = layout(root)
    for binary in (arts.etcd, arts.kube_apiserver):
        if not os.access(binary, os.X_OK):
            return Located(None, f"control plane cache incomplete: {binary} is not executable")
    return Located(arts, "")
