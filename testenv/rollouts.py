#!/usr/bin/env python3
"""Build Argo Rollouts' controller and gather its CRDs from the module pinned in ``testenv/rollouts/``.

The benchmark sets the project's blue-green deploys beside Argo Rollouts' on the local cluster, so Rollouts has to
be the real controller at a known release, built like every other program here: from a pinned, checksummed Go
module, never from a downloaded binary or committed manifests. The CRDs are copied out of the same module download,
so they always match the controller that serves them.

The entry is keyed by ``rollouts/go.mod``, ``rollouts/go.sum`` and this file only, and lives in a cache root of its
own beside the cluster's and the tools', so bumping Rollouts rebuilds nothing else and the reverse. It is published
like theirs: built in a temporary directory, the controller run once and made to report its pinned version, a READY
marker written last, and one rename.

``python3 testenv/rollouts.py`` (``make rollouts``) builds or reuses the entry and prints its path; :func:`controller`
and :func:`crd_files` find the built files without building anything. Stdlib only, like ``build.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so `testenv.cache_entry` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testenv import cache_entry
from testenv.cache_entry import READY_MARKER

TESTENV_DIR = Path(__file__).resolve().parent
MODULE_DIR = TESTENV_DIR / "rollouts"
CACHE_ENV = "BLUEGREEN_ROLLOUTS_CACHE"
MAKE_TARGET = "make rollouts"

ROLLOUTS_MODULE = "github.com/argoproj/argo-rollouts"
CONTROLLER_PACKAGE = f"{ROLLOUTS_MODULE}/cmd/rollouts-controller"
CONTROLLER_NAME = "rollouts-controller"
# The variables Rollouts' Makefile stamps with -X; `rollouts-controller --version` prints what they make of it.
VERSION_PACKAGE = f"{ROLLOUTS_MODULE}/utils/version"
MODULE_CRD_DIR = "manifests/crds"
# The one CRD the benchmark cannot do without; its absence means the module's layout changed.
ROLLOUT_CRD_NAME = "rollouts.argoproj.io"
UNKNOWN_BUILD_DATE = "1970-01-01T00:00:00Z"


class RolloutsNotBuilt(Exception):
    """The controller or its CRDs were asked for but the cache entry is missing or incomplete."""


class RolloutsBuildError(Exception):
    """A build step failed; the message is meant for the person running ``make rollouts``."""


def key_inputs() -> tuple[Path, ...]:
    """Every file whose content decides what the entry holds."""
    return (
        MODULE_DIR / "go.mod",
        MODULE_DIR / "go.sum",
        Path(__file__).resolve(),
        Path(cache_entry.__file__).resolve(),
    )


def cache_key() -> str:
    """Short content hash of :func:`key_inputs`."""
    return cache_entry.content_key(key_inputs())


def cache_root() -> Path:
    """Where the entries live: beside the cluster's and the tools' cache roots, never inside either."""
    return cache_entry.cache_root(CACHE_ENV, "rollouts")


def entry_dir() -> Path:
    """The cache entry the current pins map to."""
    return cache_root() / cache_key()


def _ready_entry() -> Path:
    entry = entry_dir()
    if not cache_entry.is_ready(entry):
        raise RolloutsNotBuilt(
            f"Argo Rollouts not built (no {entry / READY_MARKER}): run `{MAKE_TARGET}` (needs Go >= 1.26)"
        )
    return entry


def controller() -> Path:
    """The built ``rollouts-controller``; raises :class:`RolloutsNotBuilt` when it is not there."""
    built = _ready_entry() / "bin" / CONTROLLER_NAME
    if not os.access(built, os.X_OK):
        raise RolloutsNotBuilt(f"Argo Rollouts cache entry incomplete ({built} missing): run `{MAKE_TARGET}`")
    return built


def crd_files() -> list[Path]:
    """The pinned release's CRD files, sorted; raises :class:`RolloutsNotBuilt` when they are not there."""
    crds_dir = _ready_entry() / "crds"
    found = sorted(crds_dir.glob("*.yaml"))
    if not found:
        raise RolloutsNotBuilt(f"Argo Rollouts cache entry incomplete (no CRDs in {crds_dir}): run `{MAKE_TARGET}`")
    return found


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-40:])
        raise RolloutsBuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def _go_env() -> dict[str, str]:
    # -mod=readonly: a go.sum mismatch must fail the build, never be "fixed" by rewriting go.sum.
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())


def download_module() -> dict[str, str]:
    """`go mod download` the pinned Rollouts module, checked against go.sum; its Version, Dir and Info paths."""
    if shutil.which("go") is None:
        raise RolloutsBuildError("the Go toolchain >= 1.26 must be on PATH as `go` to build Argo Rollouts")
    info = json.loads(_run(["go", "mod", "download", "-json", ROLLOUTS_MODULE], cwd=MODULE_DIR, env=_go_env()))
    if info.get("Error"):
        raise RolloutsBuildError(f"go mod download {ROLLOUTS_MODULE}: {info['Error']}")
    return {key: str(info[key]) for key in ("Version", "Dir", "Info")}


def ldflags(version: str, proxy_info: dict[str, object]) -> str:
    """Linker flags stamping the release as Rollouts' Makefile does, from the pin and the proxy's ``.info`` record.

    The Makefile sets ``version`` to the tag without its "v", plus the build date, commit and tree state. The
    proxy records the tag's date, and its commit only sometimes; without a commit the controller reports
    ``v<version>+unknown``, as any Rollouts build outside a git checkout does. (The Makefile's gitTag stamp names
    the module's root package, which has no such variable, so it is left out here too.)
    """
    origin = proxy_info.get("Origin")
    commit = str(origin.get("Hash") or "") if isinstance(origin, dict) else ""
    stamps = {
        "version": version.removeprefix("v"),
        "buildDate": str(proxy_info.get("Time") or UNKNOWN_BUILD_DATE),
        "gitCommit": commit,
        "gitTreeState": "clean",
    }
    return " ".join(["-s", "-w"] + [f"-X {VERSION_PACKAGE}.{name}={value}" for name, value in stamps.items() if value])


def check_reported_version(output: str, version: str) -> None:
    """The controller's ``--version`` line must name exactly the pinned release, build metadata aside."""
    reported = output.strip().splitlines()[0].strip() if output.strip() else ""
    if reported.split("+", 1)[0] != version:
        raise RolloutsBuildError(f"`{CONTROLLER_NAME} --version` reported {reported!r}, not the pinned {version}")


def check_controller(binary: Path, version: str) -> str:
    """Run the built controller once: it must start and report its pinned version; returns what it printed."""
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RolloutsBuildError(f"{CONTROLLER_NAME} did not run: {exc}") from exc
    if proc.returncode != 0:
        raise RolloutsBuildError(
            f"`{CONTROLLER_NAME} --version` exited {proc.returncode}:\n{(proc.stdout + proc.stderr).strip()[-2000:]}"
        )
    check_reported_version(proc.stdout, version)
    return proc.stdout.strip()


def _is_crd(text: str) -> bool:
    return re.search(r"^kind:\s*CustomResourceDefinition\s*$", text, flags=re.MULTILINE) is not None


def copy_crds(module_dir: Path, dest: Path) -> list[str]:
    """Copy the CRD files (not the kustomization beside them) out of the module; returns their names."""
    source = module_dir / MODULE_CRD_DIR
    crds = [path for path in sorted(source.glob("*.yaml")) if _is_crd(path.read_text())]
    if not any(re.search(rf"^\s*name:\s*{re.escape(ROLLOUT_CRD_NAME)}\s*$", p.read_text(), re.M) for p in crds):
        raise RolloutsBuildError(f"{source} holds no CRD named {ROLLOUT_CRD_NAME}; the module's layout changed")
    dest.mkdir(parents=True)
    for path in crds:
        # Module cache files are read-only; copy the content only, so the entry stays deletable.
        shutil.copyfile(path, dest / path.name)
    return [path.name for path in crds]


def build(force: bool = False) -> Path:
    """Ensure the entry for the current pins exists; return its directory."""
    entry = entry_dir()
    if cache_entry.is_ready(entry) and not force:
        return entry
    module = download_module()
    version = module["Version"]

    def fill(tmp: Path) -> None:
        binary = tmp / "bin" / CONTROLLER_NAME
        flags = ldflags(version, json.loads(Path(module["Info"]).read_text()))
        cmd = ["go", "build", "-trimpath", "-ldflags", flags, "-o", str(binary), CONTROLLER_PACKAGE]
        _run(cmd, cwd=MODULE_DIR, env=_go_env())
        reported = check_controller(binary, version)
        crds = copy_crds(Path(module["Dir"]), tmp / "crds")
        manifest = {ROLLOUTS_MODULE: version, "reported": reported, "crds": crds}
        (tmp / "versions.json").write_text(json.dumps(manifest, indent=2) + "\n")

    return cache_entry.publish(entry, cache_key(), fill)


def main(argv: list[str]) -> int:
    """Entry point of ``python3 testenv/rollouts.py [--force]``: exits 0 built or reused, 1 build failed, 2 usage."""
    started = time.monotonic()
    unknown = sorted(set(argv) - {"--force"})
    if unknown:
        print(f"usage: rollouts.py [--force] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    try:
        entry = build(force="--force" in argv)
    except RolloutsBuildError as exc:
        print(f"rollouts: {exc}", file=sys.stderr)
        return 1
    print(f"rollouts: ready ({time.monotonic() - started:.2f}s)", file=sys.stderr)
    print(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
