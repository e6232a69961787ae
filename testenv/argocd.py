#!/usr/bin/env python3
"""Build Argo CD and gather its CRDs from the module pinned in ``testenv/argocd/``.

The GitOps end-to-end tests let the real Argo CD sync the project's objects from a git repository, so Argo CD has to
be the real application controller and repo server at a known release, built like every other program here: from a
pinned, checksummed Go module, never from a downloaded binary or committed manifests. Argo CD ships every component
as one binary that picks its role from ``ARGOCD_BINARY_NAME`` (``argocd-application-controller``,
``argocd-repo-server``; the CLI when unset). The CRDs are copied out of the same module download, so they always
match the controller that serves them.

The entry is keyed by ``argocd/go.mod``, ``argocd/go.sum`` and this file only, and lives in a cache root of its own
beside the cluster's, the tools' and Rollouts', so bumping Argo CD rebuilds nothing else and the reverse. It is
published like theirs: built in a temporary directory, the binary run once in each role it plays here (the CLI must
report the pinned version, the controller and the repo server must answer for their own flags), a READY marker
written last, and one rename.

``python3 testenv/argocd.py`` (``make argocd``) builds or reuses the entry and prints its path; :func:`binary` and
:func:`crd_file` find the built files without building anything. Stdlib only, like ``build.py``.
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
MODULE_DIR = TESTENV_DIR / "argocd"
CACHE_ENV = "BLUEGREEN_ARGOCD_CACHE"
MAKE_TARGET = "make argocd"

ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
# The multi-call main package: Argo CD's Makefile builds every image's binary from it.
BINARY_PACKAGE = f"{ARGOCD_MODULE}/cmd"
BINARY_NAME = "argocd"
#: The variable that picks the binary's role (Argo CD's images symlink the names instead; a variable needs no links).
ROLE_ENV = "ARGOCD_BINARY_NAME"
CONTROLLER_ROLE = "argocd-application-controller"
REPO_SERVER_ROLE = "argocd-repo-server"
# A flag only that role's command defines: its --help naming it proves the binary dispatched to the right command.
ROLE_FLAGS = {CONTROLLER_ROLE: "--repo-server-plaintext", REPO_SERVER_ROLE: "--disable-tls"}
# The variables Argo CD's Makefile stamps with -X; `argocd version --client` prints what they make of it.
VERSION_PACKAGE = f"{ARGOCD_MODULE}/common"
MODULE_CRD_DIR = "manifests/crds"
APPLICATION_CRD = "applications.argoproj.io"
APPPROJECT_CRD = "appprojects.argoproj.io"
# The CRDs the application controller cannot do without; a missing one means the module's layout changed.
REQUIRED_CRDS = (APPLICATION_CRD, APPPROJECT_CRD)
UNKNOWN_BUILD_DATE = "1970-01-01T00:00:00Z"


class ArgoCDNotBuilt(Exception):
    """The binary or its CRDs were asked for but the cache entry is missing or incomplete."""


class ArgoCDBuildError(Exception):
    """A build step failed; the message is meant for the person running ``make argocd``."""


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
    """Where the entries live: beside the other cache roots, never inside one."""
    return cache_entry.cache_root(CACHE_ENV, "argocd")


def entry_dir() -> Path:
    """The cache entry the current pins map to."""
    return cache_root() / cache_key()


def _ready_entry() -> Path:
    entry = entry_dir()
    if not cache_entry.is_ready(entry):
        raise ArgoCDNotBuilt(f"Argo CD not built (no {entry / READY_MARKER}): run `{MAKE_TARGET}` (needs Go >= 1.26)")
    return entry


def binary() -> Path:
    """The built multi-call ``argocd`` binary; raises :class:`ArgoCDNotBuilt` when it is not there."""
    built = _ready_entry() / "bin" / BINARY_NAME
    if not os.access(built, os.X_OK):
        raise ArgoCDNotBuilt(f"Argo CD cache entry incomplete ({built} missing): run `{MAKE_TARGET}`")
    return built


def crd_file(name: str) -> Path:
    """The pinned release's file holding the CRD ``name`` (e.g. :data:`APPLICATION_CRD`)."""
    crds_dir = _ready_entry() / "crds"
    manifest = crds_dir / "crds.json"
    try:
        by_name: dict[str, str] = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ArgoCDNotBuilt(f"Argo CD cache entry incomplete ({manifest}: {exc}): run `{MAKE_TARGET}`") from exc
    if name not in by_name:
        raise ArgoCDNotBuilt(f"Argo CD's release ships no CRD named {name} (it has {', '.join(sorted(by_name))})")
    return crds_dir / by_name[name]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-40:])
        raise ArgoCDBuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def _go_env() -> dict[str, str]:
    # -mod=readonly: a go.sum mismatch must fail the build, never be "fixed" by rewriting go.sum.
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip())


def download_module() -> dict[str, str]:
    """`go mod download` the pinned Argo CD module, checked against go.sum; its Version, Dir and Info paths."""
    if shutil.which("go") is None:
        raise ArgoCDBuildError("the Go toolchain >= 1.26 must be on PATH as `go` to build Argo CD")
    info = json.loads(_run(["go", "mod", "download", "-json", ARGOCD_MODULE], cwd=MODULE_DIR, env=_go_env()))
    if info.get("Error"):
        raise ArgoCDBuildError(f"go mod download {ARGOCD_MODULE}: {info['Error']}")
    return {key: str(info[key]) for key in ("Version", "Dir", "Info")}


def client_go_version() -> str:
    """The client-go release the build links (after the replace block), which Argo CD reports as its kubectl's."""
    listed = _run(["go", "list", "-m", "-json", "k8s.io/client-go"], cwd=MODULE_DIR, env=_go_env())
    module = json.loads(listed)
    replaced = module.get("Replace")
    return str((replaced if isinstance(replaced, dict) else module).get("Version") or "")


def ldflags(version: str, proxy_info: dict[str, object], kubectl_version: str) -> str:
    """Linker flags stamping the release as Argo CD's Makefile does, from the pin and the proxy's ``.info`` record.

    The Makefile sets ``version`` to the VERSION file (the tag without its "v"), plus the build date, commit, tree
    state and the client-go release. The proxy records the tag's date, and its commit only sometimes; without a
    commit Argo CD reports ``v<version>+unknown``, as any build outside a git checkout does. The Makefile's gitTag
    stamp comes from ``git describe`` of a checkout, which a module download is not, so it is left out.
    """
    origin = proxy_info.get("Origin")
    commit = str(origin.get("Hash") or "") if isinstance(origin, dict) else ""
    stamps = {
        "version": version.removeprefix("v"),
        "buildDate": str(proxy_info.get("Time") or UNKNOWN_BUILD_DATE),
        "gitCommit": commit,
        "gitTreeState": "clean",
        "kubectlVersion": kubectl_version,
    }
    return " ".join(["-s", "-w"] + [f"-X {VERSION_PACKAGE}.{name}={value}" for name, value in stamps.items() if value])


def check_reported_version(output: str, version: str) -> str:
    """``argocd version --client -o json`` must name exactly the pinned release, build metadata aside."""
    try:
        reported = str(json.loads(output)["client"]["Version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArgoCDBuildError(
            f"`{BINARY_NAME} version --client -o json` printed no version: {output[:500]!r}"
        ) from exc
    if reported.split("+", 1)[0] != version:
        raise ArgoCDBuildError(f"`{BINARY_NAME} version` reported {reported!r}, not the pinned {version}")
    return reported


def _smoke(built: Path, args: list[str], role: str | None) -> str:
    env = dict(os.environ)
    env.pop(ROLE_ENV, None)
    if role is not None:
        env[ROLE_ENV] = role
    try:
        proc = subprocess.run([str(built), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArgoCDBuildError(f"{BINARY_NAME} ({role or 'cli'}) did not run: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-2000:]
        raise ArgoCDBuildError(
            f"`{ROLE_ENV}={role or ''} {BINARY_NAME} {' '.join(args)}` exited {proc.returncode}:\n{output}"
        )
    return proc.stdout


def check_binary(built: Path, version: str) -> str:
    """Run the built binary in each role used here; returns the version it reported."""
    reported = check_reported_version(_smoke(built, ["version", "--client", "-o", "json"], None), version)
    for role, flag in ROLE_FLAGS.items():
        usage = _smoke(built, ["--help"], role)
        if flag not in usage:
            raise ArgoCDBuildError(f"`{ROLE_ENV}={role} {BINARY_NAME} --help` names no {flag}: it is not that command")
    return reported


def _crd_name(text: str) -> str | None:
    """The name of the CRD a file holds, or None when the file is not a CRD (the kustomization beside them)."""
    if re.search(r"^kind:\s*CustomResourceDefinition\s*$", text, flags=re.MULTILINE) is None:
        return None
    # The first top-level metadata's name: CRD files here hold one document each.
    found = re.search(r"^metadata:\n(?:[ ]+.*\n)*?[ ]{2}name:\s*(\S+)\s*$", text, flags=re.MULTILINE)
    return found.group(1) if found else None


def copy_crds(module_dir: Path, dest: Path) -> dict[str, str]:
    """Copy the CRD files out of the module and index them by CRD name (``crds.json``); returns that index."""
    source = module_dir / MODULE_CRD_DIR
    by_name: dict[str, str] = {}
    for path in sorted(source.glob("*.yaml")):
        name = _crd_name(path.read_text())
        if name is not None:
            by_name[name] = path.name
    missing = [name for name in REQUIRED_CRDS if name not in by_name]
    if missing:
        raise ArgoCDBuildError(f"{source} holds no CRD named {', '.join(missing)}; the module's layout changed")
    dest.mkdir(parents=True)
    for file_name in by_name.values():
        # Module cache files are read-only; copy the content only, so the entry stays deletable.
        shutil.copyfile(source / file_name, dest / file_name)
    (dest / "crds.json").write_text(json.dumps(by_name, indent=2, sort_keys=True) + "\n")
    return by_name


def build(force: bool = False) -> Path:
    """Ensure the entry for the current pins exists; return its directory."""
    entry = entry_dir()
    if cache_entry.is_ready(entry) and not force:
        return entry
    module = download_module()
    version = module["Version"]

    def fill(tmp: Path) -> None:
        built = tmp / "bin" / BINARY_NAME
        flags = ldflags(version, json.loads(Path(module["Info"]).read_text()), client_go_version())
        cmd = ["go", "build", "-trimpath", "-ldflags", flags, "-o", str(built), BINARY_PACKAGE]
        _run(cmd, cwd=MODULE_DIR, env=_go_env())
        reported = check_binary(built, version)
        crds = copy_crds(Path(module["Dir"]), tmp / "crds")
        manifest = {ARGOCD_MODULE: version, "reported": reported, "crds": crds}
        (tmp / "versions.json").write_text(json.dumps(manifest, indent=2) + "\n")

    return cache_entry.publish(entry, cache_key(), fill)


def main(argv: list[str]) -> int:
    """Entry point of ``python3 testenv/argocd.py [--force]``: exits 0 built or reused, 1 build failed, 2 usage."""
    started = time.monotonic()
    unknown = sorted(set(argv) - {"--force"})
    if unknown:
        print(f"usage: argocd.py [--force] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    try:
        entry = build(force="--force" in argv)
    except ArgoCDBuildError as exc:
        print(f"argocd: {exc}", file=sys.stderr)
        return 1
    print(f"argocd: ready ({time.monotonic() - started:.2f}s)", file=sys.stderr)
    print(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
