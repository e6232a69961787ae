"""Where the built local-cluster artifacts live, and whether they are there.

The binaries and CRDs are large and derived entirely from the pinned Go modules, so they are
kept in a per-user cache outside the repository: one entry per component (Kubernetes with etcd,
Argo, CoreDNS, the CRDs), each keyed by a hash of that component's pins and the build recipe,
and a small cluster entry keyed by the four, holding the versions used and the saved etcd
stores. Both the builder (``build.py``) and the pytest plugin use this module, so the two
always agree on the location. Stdlib only: it runs before the project's dependencies exist.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

TESTENV_DIR = Path(__file__).resolve().parent

# The cluster's programs and data come from four Go modules, each with an entry of its own keyed by its own pins, so
# bumping one module rebuilds one component. The build recipe (build.py, paths.py) is part of every key.
COMPONENT_INPUTS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("go.mod", "go.sum"),
    "argo": ("argo/go.mod", "argo/go.sum"),
    "coredns": ("dns/go.mod", "dns/go.sum"),
    # The CRDs must be the controller's own release: the build checks crds/go.mod against argo/go.mod.
    "crds": ("crds/go.mod", "crds/go.sum", "argo/go.mod"),
}
RECIPE_INPUTS: tuple[str, ...] = ("build.py", "paths.py")
# Every file whose content changes what build.py produces.
KEY_INPUTS: tuple[str, ...] = tuple(
    dict.fromkeys(rel for inputs in COMPONENT_INPUTS.values() for rel in (*inputs, *RECIPE_INPUTS))
)
# Program file name -> the component that builds it.
PROGRAM_COMPONENTS: dict[str, str] = {
    **dict.fromkeys(
        ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl"), "kubernetes"
    ),
    **dict.fromkeys(("workflow-controller", "argo", "argoexec"), "argo"),
    "coredns": "coredns",
}

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


def _content_key(inputs: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for rel in inputs:
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update((TESTENV_DIR / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def component_key(component: str) -> str:
    """Short content hash of one component's pins and the build recipe."""
    return _content_key((*COMPONENT_INPUTS[component], *RECIPE_INPUTS))


def component_dir(component: str) -> Path:
    """The cache entry of one component for the current pins."""
    return cache_root() / f"{component}-{component_key(component)}"


def cache_key() -> str:
    """The cluster entry's key: its components' keys together."""
    digest = hashlib.sha256()
    for component in COMPONENT_INPUTS:
        digest.update(f"{component}={component_key(component)}\n".encode())
    return digest.hexdigest()[:16]


def entry_dir() -> Path:
    """The cluster entry for the current pins: every version used, and the saved etcd stores of this combination."""
    return cache_root() / f"cluster-{cache_key()}"


def layout(root: Path | None = None, components: dict[str, Path] | None = None) -> Artifacts:
    """The artifact paths for a cluster entry ``root`` over component entries (the current pins' by default)."""
    root = root or entry_dir()
    where = {name: (components or {}).get(name) or component_dir(name) for name in COMPONENT_INPUTS}

    def program(name: str) -> Path:
        return where[PROGRAM_COMPONENTS[name]] / "bin" / name

    return Artifacts(
        root=root,
        etcd=program("etcd"),
        kube_apiserver=program("kube-apiserver"),
        kube_controller_manager=program("kube-controller-manager"),
        kube_scheduler=program("kube-scheduler"),
        kube_proxy=program("kube-proxy"),
        kubectl=program("kubectl"),
        coredns=program("coredns"),
        workflow_controller=program("workflow-controller"),
        argo=program("argo"),
        argoexec=program("argoexec"),
        crd_dirs={name: where["crds"] / "crds" / name for name in CRD_SETS},
        argo_schema=where["crds"] / "argo" / "schema.json",
        versions_file=root / "versions.json",
    )


def locate() -> Located:
    """Find the built artifacts without building anything."""
    for entry in (*(component_dir(name) for name in COMPONENT_INPUTS), entry_dir()):
        if not (entry / READY_MARKER).is_file():
            return Located(None, f"local cluster not built (no {entry / READY_MARKER})")
    arts = layout()
    for program in arts.programs:
        if not os.access(program, os.X_OK):
            return Located(None, f"local cluster cache incomplete: {program} is not executable")
    return Located(arts, "")
