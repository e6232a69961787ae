#!/usr/bin/env python3
"""Build Helm from the Go module pinned in ``testenv/helm/``, for the tests of the chart ``bluegreen-render`` writes.

The tests lint the chart, render it with ``helm template`` to compare it with the kustomize install, and install it
with ``helm install`` on the local cluster. So Helm is built like every other program here: from a pinned,
checksummed Go module, never from a downloaded binary.

The entry is keyed by ``helm/go.mod``, ``helm/go.sum`` and this file only, and lives in a cache root of its own beside
the cluster's, the tools' and Rollouts', so bumping Helm rebuilds nothing else and the reverse. It is published like
theirs: built in a temporary directory, ``helm version`` run once and made to report the pinned release, a READY
marker written last, and one rename.

``python3 testenv/helm_tool.py`` (``make helm``) builds or reuses the entry and prints its path; :func:`program` finds
the built binary without building anything. Stdlib only, like ``build.py``.
"""

from __future__ import annotations

import json
import os
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

MODULE_DIR = Path(__file__).resolve().parent / "helm"
CACHE_ENV = "BLUEGREEN_HELM_CACHE"
MAKE_TARGET = "make helm"

HELM_MODULE = "helm.sh/helm/v4"
HELM_PACKAGE = f"{HELM_MODULE}/cmd/helm"
# Where Helm's Makefile stamps the release (its LDFLAGS); `helm version` prints it back.
VERSION_PACKAGE = f"{HELM_MODULE}/internal/version"


class HelmNotBuilt(Exception):
    """Helm was asked for but its cache entry is missing or incomplete; the message says what to run."""


class HelmBuildError(Exception):
    """A build step failed; the message is meant for the person running ``make helm``."""


def key_inputs() -> tuple[Path, ...]:
    """Every file whose content decides what the entry holds."""
    return (
        MODULE_DIR / "go.mod",
        MODULE_DIR / "go.sum",
        Path(__file__).resolve(),
        Path(cache_entry.__file__).resolve(),
    )


def entry_dir() -> Path:
    """The cache entry the current pins map to, in a cache root of Helm's own."""
    return cache_entry.cache_root(CACHE_ENV, "helm") / cache_entry.content_key(key_inputs())


def program() -> Path:
    """The built ``helm``; raises :class:`HelmNotBuilt` when it is not there."""
    entry = entry_dir()
    built = entry / "bin" / "helm"
    if not cache_entry.is_ready(entry) or not os.access(built, os.X_OK):
        raise HelmNotBuilt(f"Helm not built (no {entry / READY_MARKER}): run `{MAKE_TARGET}` (needs Go >= 1.26)")
    return built


def run(args: list[str], state: Path, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the built ``helm`` with ``args``, its cache, config and data under ``state`` (never the user's own)."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(state / "cache"),
        "HELM_CONFIG_HOME": str(state / "config"),
        "HELM_DATA_HOME": str(state / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([str(program()), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-40:])
        raise HelmBuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def _go_env() -> dict[str, str]:
    # -mod=readonly: a go.sum mismatch must fail the build, never be "fixed" by rewriting go.sum.
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())


def pinned_version() -> str:
    """The Helm release ``go.mod`` pins, checked against ``go.sum`` by the download."""
    if shutil.which("go") is None:
        raise HelmBuildError("the Go toolchain >= 1.26 must be on PATH as `go` to build Helm")
    info = json.loads(_run(["go", "mod", "download", "-json", HELM_MODULE], cwd=MODULE_DIR, env=_go_env()))
    if info.get("Error"):
        raise HelmBuildError(f"go mod download {HELM_MODULE}: {info['Error']}")
    return str(info["Version"])


def ldflags(version: str) -> str:
    """The stamps Helm's Makefile sets: the release, and a clean tree (a module download has no git metadata)."""
    stamps = {"version": version, "gitTreeState": "clean"}
    return " ".join(["-s", "-w"] + [f"-X {VERSION_PACKAGE}.{name}={value}" for name, value in stamps.items()])


def check_reported_version(output: str, version: str) -> None:
    """``helm version --template '{{.Version}}'`` must print exactly the pinned release."""
    if output.strip() != version:
        raise HelmBuildError(f"`helm version` reported {output.strip()!r}, not the pinned {version}")


def build(force: bool = False) -> Path:
    """Ensure the entry for the current pins exists; return its directory."""
    entry = entry_dir()
    if cache_entry.is_ready(entry) and not force:
        return entry
    version = pinned_version()

    def fill(tmp: Path) -> None:
        binary = tmp / "bin" / "helm"
        cmd = ["go", "build", "-trimpath", "-ldflags", ldflags(version), "-o", str(binary), HELM_PACKAGE]
        _run(cmd, cwd=MODULE_DIR, env=_go_env())
        # Helm writes its cache and config under $HOME unless told otherwise; the check must not touch either.
        home = dict(os.environ, HELM_CACHE_HOME=str(tmp / "home"), HELM_CONFIG_HOME=str(tmp / "home"))
        reported = _run([str(binary), "version", "--template", "{{.Version}}"], cwd=tmp, env=home)
        check_reported_version(reported, version)
        shutil.rmtree(tmp / "home", ignore_errors=True)
        (tmp / "versions.json").write_text(json.dumps({HELM_MODULE: version}, indent=2) + "\n")

    return cache_entry.publish(entry, cache_entry.content_key(key_inputs()), fill)


def main(argv: list[str]) -> int:
    """Entry point of ``python3 testenv/helm_tool.py [--force]``: exits 0 built or reused, 1 build failed, 2 usage."""
    started = time.monotonic()
    unknown = sorted(set(argv) - {"--force"})
    if unknown:
        print(f"usage: helm_tool.py [--force] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    try:
        entry = build(force="--force" in argv)
    except HelmBuildError as exc:
        print(f"helm: {exc}", file=sys.stderr)
        return 1
    print(f"helm: ready ({time.monotonic() - started:.2f}s)", file=sys.stderr)
    print(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
