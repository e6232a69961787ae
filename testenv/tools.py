#!/usr/bin/env python3
"""Build the pinned test tools from Go modules under ``testenv/tools/`` into a cache entry.

They are not part of the local cluster. promtool and actionlint check what the project ships (alerting rules, CI
workflows); crane (whose ``registry serve`` is a real OCI registry) and cosign sign and verify images for the
supply-chain tests, and the node agent runs the same cosign for the official cosign image. Each tool has its own
module (``testenv/tools/<tool>/go.mod``) because their dependency graphs disagree: Prometheus needs a newer
pre-release of ``go.yaml.in/yaml/v4`` whose API actionlint does not compile against, and cosign pins an older
go-containerregistry than the crane release it is tested against. Their
entry is keyed by this module and those go.mod and go.sum files only, so bumping a tool
never invalidates the cluster's much larger entry, and rebuilding the cluster never rebuilds the tools. The entry is
published like the cluster's: built in a temporary directory, every program run once and made to report its pinned
version, a READY marker written last, and one rename.

``python3 testenv/tools.py`` (``make tools``) builds or reuses the entry and prints where it is;
:func:`program` finds one built tool without building anything. Stdlib only, like ``build.py``.
"""

from __future__ import annotations

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

TOOLS_DIR = Path(__file__).resolve().parent / "tools"
READY_MARKER = "READY"
CACHE_ENV = "BLUEGREEN_TOOLS_CACHE"
MAKE_TARGET = "make tools"

PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
ACTIONLINT_MODULE = "github.com/rhysd/actionlint"
COSIGN_MODULE = "github.com/sigstore/cosign/v2"
GGCR_MODULE = "github.com/google/go-containerregistry"
# Where cosign's release build stamps its version (its Makefile's LDFLAGS), read back by `cosign version`.
COSIGN_VERSION_PACKAGE = "sigs.k8s.io/release-utils/version"


@dataclass(frozen=True)
class Tool:
    """One pinned program: the Go main package it is built from and the module whose version it reports."""

    package: str
    module: str

    @property
    def name(self) -> str:
        """The program's file name, which is also its module directory's name under ``testenv/tools/``."""
        return self.package.rsplit("/", 1)[-1]

    @property
    def module_dir(self) -> Path:
        """The Go module that pins this tool and its dependencies."""
        return TOOLS_DIR / self.name


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(f"{PROMETHEUS_MODULE}/cmd/promtool", PROMETHEUS_MODULE),
        Tool(f"{ACTIONLINT_MODULE}/cmd/actionlint", ACTIONLINT_MODULE),
        Tool(f"{COSIGN_MODULE}/cmd/cosign", COSIGN_MODULE),
        Tool(f"{GGCR_MODULE}/cmd/crane", GGCR_MODULE),
    )
}


class ToolsNotBuilt(Exception):
    """A tool was asked for but its cache entry is missing or incomplete; the message says what to run."""


class ToolsBuildError(Exception):
    """A build step failed; the message is meant for the person running ``make tools``."""


def _key_inputs() -> tuple[Path, ...]:
    modules = [tool.module_dir / name for tool in TOOLS.values() for name in ("go.mod", "go.sum")]
    return (*modules, Path(__file__).resolve())


def cache_key() -> str:
    """Short content hash of every tool module's go.mod and go.sum and of this file."""
    digest = hashlib.sha256()
    for path in _key_inputs():
        digest.update(f"{path.parent.name}/{path.name}".encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """The directory holding the tools' entries: beside the cluster's cache, never inside it (its prune clears it)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "argo-bluegreen" / "tools"


def entry_dir() -> Path:
    """The cache entry the current pins map to."""
    return cache_root() / cache_key()


def program(name: str) -> Path:
    """The built executable ``name`` (one of :data:`TOOLS`); raises :class:`ToolsNotBuilt` when it is not there."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; the pinned tools are {', '.join(sorted(TOOLS))}")
    entry = entry_dir()
    built = entry / "bin" / name
    if not (entry / READY_MARKER).is_file() or not os.access(built, os.X_OK):
        raise ToolsNotBuilt(f"{name} not built: run `{MAKE_TARGET}` (needs Go >= 1.26)")
    return built


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-40:])
        raise ToolsBuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def pinned_versions() -> dict[str, str]:
    """Each tool's module version as required in its own go.mod."""
    if shutil.which("go") is None:
        raise ToolsBuildError("the Go toolchain >= 1.26 must be on PATH as `go` to build the pinned tools")
    versions = {}
    for name, tool in TOOLS.items():
        doc = json.loads(_run(["go", "mod", "edit", "-json"], cwd=tool.module_dir))
        required = {req["Path"]: req["Version"] for req in doc.get("Require") or []}
        if tool.module not in required:
            raise ToolsBuildError(f"testenv/tools/{name}/go.mod does not require {tool.module}")
        versions[name] = required[tool.module]
    return versions


def prometheus_release(module_version: str) -> str:
    """Prometheus tags its Go module v0.3XY.Z for release 3.XY.Z; promtool reports the release."""
    match = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", module_version)
    if not match:
        raise ToolsBuildError(f"{PROMETHEUS_MODULE} {module_version} does not map to a Prometheus 3.x release")
    return f"3.{int(match.group(1))}.{match.group(2)}"


def ldflags(name: str, version: str) -> str:
    """Version stamps, as the tools' own release builds set them, so each reports its pin."""
    if name == "promtool":
        return f"-s -w -X github.com/prometheus/common/version.Version={prometheus_release(version)}"
    if name == "cosign":
        return f"-s -w -X {COSIGN_VERSION_PACKAGE}.gitVersion={version} -X {COSIGN_VERSION_PACKAGE}.gitTreeState=clean"
    if name == "crane":
        # crane's goreleaser stamps the tag without its leading "v".
        return f"-s -w -X {GGCR_MODULE}/cmd/crane/cmd.Version={version.removeprefix('v')}"
    return f"-s -w -X {ACTIONLINT_MODULE}.version={version}"


def version_checks(versions: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    """Per tool: the arguments that print its version, and the text the output must contain."""
    return {
        "promtool": (["--version"], f"promtool, version {prometheus_release(versions['promtool'])}"),
        "actionlint": (["-version"], versions["actionlint"]),
        "cosign": (["version"], f"GitVersion:    {versions['cosign']}"),
        "crane": (["version"], versions["crane"].removeprefix("v")),
    }


def check_programs(bin_dir: Path, versions: dict[str, str]) -> None:
    """Run every built tool once: it must start and report its pinned version."""
    for name, (args, expected) in version_checks(versions).items():
        try:
            proc = subprocess.run(
                [str(bin_dir / name), *args], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolsBuildError(f"{name} did not run: {exc}") from exc
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or expected not in output:
            raise ToolsBuildError(
                f"`{name} {' '.join(args)}` exited {proc.returncode} without reporting {expected!r}:\n"
                f"{output.strip()[-2000:]}"
            )


def build(force: bool = False) -> Path:
    """Ensure the entry for the current pins exists; return its directory."""
    entry = entry_dir()
    if (entry / READY_MARKER).is_file() and not force:
        return entry
    versions = pinned_versions()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        # -mod=readonly: a go.sum mismatch must fail the build, never be "fixed" by rewriting go.sum.
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())
        for name, tool in TOOLS.items():
            cmd = ["go", "build", "-trimpath", "-ldflags", ldflags(name, versions[name]), "-o", str(bin_dir / name)]
            _run([*cmd, tool.package], cwd=tool.module_dir, env=env)
        check_programs(bin_dir, versions)
        (tmp / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
        # The marker goes in last and the rename publishes the whole entry at once.
        (tmp / READY_MARKER).write_text(cache_key() + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        try:
            tmp.rename(entry)
        except OSError:
            # A concurrent build published first; its entry is equivalent.
            if not (entry / READY_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry


def main(argv: list[str]) -> int:
    """Entry point of ``python3 testenv/tools.py [--force]``: exits 0 built or reused, 1 build failed, 2 usage."""
    started = time.monotonic()
    unknown = sorted(set(argv) - {"--force"})
    if unknown:
        print(f"usage: tools.py [--force] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    try:
        entry = build(force="--force" in argv)
    except ToolsBuildError as exc:
        print(f"tools: {exc}", file=sys.stderr)
        return 1
    print(f"tools: ready at {entry} ({time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
