"""Where the built local-cluster artifacts live, and whether they are there.

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
    "argo/go.mod",
    "argo/go.sum",
    "dns/go.mod",
    "dns/go.sum",
    "crds/go.mod",
    "crds/go.sum",
    "build.py",
    "paths.py",
)

READY_MARKER = "READY"
CRD_SETS: tuple[str, ...] = ("argo", "istio", "gateway-api")


@dataclass(frozen=True)
class Artifacts:
    """Paths inside one complete cache entry: one field per program, then the data files."""

    root: Path
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kube_proxy: Path
    kubectl: Path
    coredns: Path
    workflow_controller: Path
    argo: Path
    argoexec: Path
    crd_dirs: dict[str, Path]
    argo_schema: Path
    versions_file: Path

    @property
    def programs(self) -> tuple[Path, ...]:
        """Every built executable, so checks for completeness cannot forget one."""
        return (
            self.etcd,
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kube_proxy,
            self.kubectl,
            self.coredns,
            self.workflow_controller,
            self.argo,
            self.argoexec,
        )


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
    bin_dir = root / "bin"
    return Artifacts(
        root=root,
        etcd=bin_dir / "etcd",
        kube_apiserver=bin_dir / "kube-apiserver",
        kube_controller_manager=bin_dir / "kube-controller-manager",
        kube_scheduler=bin_dir / "kube-scheduler",
        kube_proxy=bin_dir / "kube-proxy",
        kubectl=bin_dir / "kubectl",
        coredns=bin_dir / "coredns",
        workflow_controller=bin_dir / "workflow-controller",
        argo=bin_dir / "argo",
        argoexec=bin_dir / "argoexec",
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
        return Located(None, f"local cluster not built (no {root / READY_MARKER})")
    arts = layout(root)
    for program in arts.programs:
        if not os.access(program, os.X_OK):
            return Located(None, f"local cluster cache incomplete: {program} is not executable")
    return Located(arts, "")
