#!/usr/bin/env python3
"""Build the test control plane (etcd, kube-apiserver) and fetch the third-party CRDs.

Tests run against a real API server so that admission, RBAC, CEL validation and server-side
apply behave as in production. Everything is derived from pinned, checksummed Go modules
(``testenv/go.mod`` for the binaries, ``testenv/crds/go.mod`` for the CRDs), so nothing large is
committed and nothing is taken from outside the module proxy. Results go to a per-user cache
keyed by the content of those pins (see ``testenv/paths.py``); a complete entry is reused
instantly. Stdlib only, because ``make testenv`` runs it before any Python dependency exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so `testenv.paths` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testenv import paths

MIN_GO = (1, 26)
GO_HELP = (
    "the Go toolchain >= 1.26 must be on PATH as `go` (Debian's `golang` package is too old): "
    "install it from https://go.dev/dl/, or use any Go >= 1.21 with GOTOOLCHAIN=auto."
)

APISERVER_PKG = "k8s.io/kubernetes/cmd/kube-apiserver"
ETCD_PKG = "go.etcd.io/etcd/server/v3"

# Module -> list of (glob inside the module, destination relative to the cache entry).
CRD_SOURCES: dict[str, list[tuple[str, str]]] = {
    "github.com/argoproj/argo-workflows/v4": [
        ("manifests/base/crds/full/argoproj.io_*.yaml", "crds/argo"),
        ("api/jsonschema/schema.json", "argo"),
    ],
    "istio.io/api": [("kubernetes/customresourcedefinitions.gen.yaml", "crds/istio")],
    "sigs.k8s.io/gateway-api": [("config/crd/standard/*.yaml", "crds/gateway-api")],
}


class BuildError(Exception):
    """A step failed; the message is meant for the person running `make testenv`."""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{proc.stderr.strip()}")
    return proc.stdout


def check_go() -> str:
    """Return the Go version string, or raise with install instructions."""
    if shutil.which("go") is None:
        raise BuildError(GO_HELP)
    # Asked from inside the module so GOTOOLCHAIN=auto can switch to the version go.mod needs.
    version = _run(["go", "env", "GOVERSION"], cwd=paths.TESTENV_DIR).strip()
    match = re.match(r"go(\d+)\.(\d+)", version)
    if not match or (int(match.group(1)), int(match.group(2))) < MIN_GO:
        raise BuildError(f"found {version}; {GO_HELP}")
    return version


def module_versions(module_dir: Path) -> dict[str, str]:
    """Required module versions as written in ``module_dir/go.mod``."""
    doc = json.loads(_run(["go", "mod", "edit", "-json"], cwd=module_dir))
    return {req["Path"]: req["Version"] for req in doc.get("Require") or []}


def version_ldflags(k8s_version: str) -> str:
    """Linker flags stamping the release into the binary, so /version reports it."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", k8s_version)
    if not match:
        raise BuildError(f"unexpected k8s.io/kubernetes version {k8s_version!r} in go.mod")
    major, minor = match.group(1), match.group(2)
    stamps = {
        "k8s.io/component-base/version.gitVersion": k8s_version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": k8s_version,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
    }
    return " ".join(["-s", "-w"] + [f"-X {k}={v}" for k, v in stamps.items()])


def build_binaries(dest: Path, k8s_version: str) -> None:
    """Compile etcd and kube-apiserver from testenv/go.mod into ``dest/bin``."""
    env = dict(os.environ, CGO_ENABLED="0")
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    # Sequential on purpose: each `go build` already uses every core.
    _run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(bin_dir / "etcd"), ETCD_PKG],
        cwd=paths.TESTENV_DIR,
        env=env,
    )
    _run(
        [
            "go", "build", "-trimpath", "-ldflags", version_ldflags(k8s_version),
            "-o", str(bin_dir / "kube-apiserver"), APISERVER_PKG,
        ],
        cwd=paths.TESTENV_DIR,
        env=env,
    )  # fmt: skip


def _decode_json_stream(text: str) -> list[dict[str, object]]:
    """`go mod download -json` prints concatenated JSON objects, not a JSON array."""
    decoder = json.JSONDecoder()
    objs: list[dict[str, object]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return objs
        obj, pos = decoder.raw_decode(text, pos)
        objs.append(obj)


def fetch_crds(dest: Path) -> dict[str, str]:
    """Download the CRD modules (verified against crds/go.sum) and copy the needed files."""
    crds_dir = paths.TESTENV_DIR / "crds"
    pinned = module_versions(crds_dir)
    missing = sorted(set(CRD_SOURCES) - set(pinned))
    if missing:
        raise BuildError(f"testenv/crds/go.mod does not require {', '.join(missing)}")
    # -mod=readonly: a go.sum mismatch must fail rather than be "fixed" by rewriting go.sum.
    env = dict(os.environ, GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())
    out = _run(["go", "mod", "download", "-json", *CRD_SOURCES], cwd=crds_dir, env=env)
    for info in _decode_json_stream(out):
        if info.get("Error"):
            raise BuildError(f"go mod download {info.get('Path')}: {info['Error']}")
        module = str(info["Path"])
        mod_dir = Path(str(info["Dir"]))
        for pattern, rel_dest in CRD_SOURCES[module]:
            matches = sorted(mod_dir.glob(pattern))
            if not matches:
                raise BuildError(f"{module}@{info['Version']} has no {pattern}")
            target = dest / rel_dest
            target.mkdir(parents=True, exist_ok=True)
            for src in matches:
                # Module cache files are read-only; copy content only so the cache stays deletable.
                shutil.copyfile(src, target / src.name)
    return {m: pinned[m] for m in CRD_SOURCES}


def argo_schema() -> Path:
    """Argo's JSON schema straight from the pinned module: no binaries needed, so `make manifests` stays quick."""
    check_go()
    crds_dir = paths.TESTENV_DIR / "crds"
    module = "github.com/argoproj/argo-workflows/v4"
    env = dict(os.environ, GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())
    [info] = _decode_json_stream(_run(["go", "mod", "download", "-json", module], cwd=crds_dir, env=env))
    if info.get("Error"):
        raise BuildError(f"go mod download {module}: {info['Error']}")
    schema = Path(str(info["Dir"])) / "api" / "jsonschema" / "schema.json"
    if not schema.is_file():
        raise BuildError(f"{module}@{info['Version']} has no api/jsonschema/schema.json")
    return schema


def build(force: bool = False) -> paths.Artifacts:
    """Ensure the cache entry for the current pins exists; return its artifacts."""
    found = paths.locate()
    if found.artifacts is not None and not force:
        return found.artifacts
    go_version = check_go()
    entry = paths.entry_dir()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        k8s_version = module_versions(paths.TESTENV_DIR)["k8s.io/kubernetes"]
        build_binaries(tmp, k8s_version)
        crd_versions = fetch_crds(tmp)
        versions = {"go": go_version, "k8s.io/kubernetes": k8s_version}
        versions[ETCD_PKG] = module_versions(paths.TESTENV_DIR)[ETCD_PKG]
        versions.update(crd_versions)
        (tmp / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
        # The marker goes in last and the rename publishes the whole entry at once, so a reader
        # never sees a half-built entry.
        (tmp / paths.READY_MARKER).write_text(paths.cache_key() + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        try:
            tmp.rename(entry)
        except OSError:
            # A concurrent build published first; its entry is equivalent.
            if not (entry / paths.READY_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths.layout(entry)


def prune(keep: Path) -> list[Path]:
    """Delete every cache entry except ``keep``; returns what was removed.

    Opt-in only: other checkouts (branches, worktrees) share the cache and may still use theirs.
    """
    removed = []
    for entry in keep.parent.iterdir():
        if entry != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def main(argv: list[str]) -> int:
    """Entry point of `python3 testenv/build.py [--force] [--prune] | --argo-schema`."""
    started = time.monotonic()
    unknown = sorted(set(argv) - {"--force", "--prune", "--argo-schema"})
    if unknown:
        print(f"usage: build.py [--force] [--prune] | --argo-schema (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    if "--argo-schema" in argv:
        try:
            print(argo_schema())
        except BuildError as exc:
            print(f"testenv: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        arts = build(force="--force" in argv)
    except BuildError as exc:
        print(f"testenv: {exc}", file=sys.stderr)
        return 1
    if "--prune" in argv:
        for entry in prune(arts.root):
            print(f"testenv: removed old cache entry {entry}")
    print(f"testenv: ready at {arts.root} ({time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
