#!/usr/bin/env python3
"""Build every program of the local cluster from pinned Go modules, and fetch the third-party CRDs.

The local cluster runs the real components, so the tests meet real admission, RBAC, controllers,
scheduling, kube-proxy rules, cluster DNS and the Argo workflow controller. Everything comes from
pinned, checksummed Go modules, so nothing large is committed and nothing is taken from outside
the Go module proxy:

- ``testenv/go.mod``: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy
  and kubectl (one module, because etcd and Kubernetes share their dependency graph upstream);
- ``testenv/argo/go.mod``: Argo's workflow-controller, ``argo`` (CLI and ``argo server``) and
  argoexec, resolved exactly as Argo's own go.mod resolves them;
- ``testenv/dns/go.mod``: CoreDNS, likewise with its own dependency versions;
- ``testenv/crds/go.mod``: the Argo, Istio and Gateway API CRDs and Argo's JSON schema.

The three program modules build side by side: on a cold machine each spends much of its time
downloading modules, which overlaps with the others' compiling. Each module's results go to a
per-user cache entry of their own, keyed by the content of that module's pins (see
``testenv/paths.py``), so bumping one module rebuilds only its programs; a complete entry is
reused instantly. Stdlib only, because ``make testenv`` runs it before any Python dependency exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so `testenv.paths` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testenv import cache_entry, paths

MIN_GO = (1, 26)
GO_HELP = (
    "the Go toolchain >= 1.26 must be on PATH as `go` (Debian's `golang` package is too old): "
    "install it from https://go.dev/dl/, or use any Go >= 1.21 with GOTOOLCHAIN=auto."
)

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ARGO_MODULE = "github.com/argoproj/argo-workflows/v4"
COREDNS_MODULE = "github.com/coredns/coredns"

# Program file name in the cache entry's bin/ -> the Go main package it is built from.
KUBERNETES_PROGRAMS = {
    "etcd": ETCD_MODULE,
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}
ARGO_PROGRAMS = {
    "workflow-controller": f"{ARGO_MODULE}/cmd/workflow-controller",
    "argo": f"{ARGO_MODULE}/cmd/argo",
    "argoexec": f"{ARGO_MODULE}/cmd/argoexec",
}
COREDNS_PROGRAMS = {"coredns": COREDNS_MODULE}

# Argo's repository has symlinks that a module zip cannot carry (the Go module format drops
# them), so `go build` straight from the module fails for argoexec. The build works on a copy of
# the verified module and puts them back: link path inside the module -> its target.
ARGO_SYMLINKS = {"workflow/executor/osspecific/signal_linux.go": "signal_darwin.go"}
# `argo server` embeds the web UI from ui/dist/app, which Argo's release process builds with
# yarn and no module carries. Argo's Makefile builds without the UI by creating this one file;
# the server's API is unaffected.
ARGO_UI_INDEX = "ui/dist/app/index.html"
ARGO_UI_PLACEHOLDER = (
    "<!doctype html><title>Argo Workflows</title>"
    "<p>This argo server was built without its web UI; its API is served under /api/v1/.</p>\n"
)

# Module -> list of (glob inside the module, destination relative to the cache entry).
CRD_SOURCES: dict[str, list[tuple[str, str]]] = {
    ARGO_MODULE: [
        ("manifests/base/crds/full/argoproj.io_*.yaml", "crds/argo"),
        ("api/jsonschema/schema.json", "argo"),
    ],
    "istio.io/api": [("kubernetes/customresourcedefinitions.gen.yaml", "crds/istio")],
    "sigs.k8s.io/gateway-api": [("config/crd/standard/*.yaml", "crds/gateway-api")],
}


class BuildError(Exception):
    """A step failed; the message is meant for the person running `make testenv`."""


def _log(message: str) -> None:
    print(f"testenv: {message}", file=sys.stderr, flush=True)


def _failure(cmd: list[str], cwd: Path, stderr: str) -> BuildError:
    # Compiler errors come last; a failing `go build` of a large tree can print thousands of lines.
    tail = "\n".join(stderr.strip().splitlines()[-40:])
    return BuildError(f"`{' '.join(cmd)}` failed in {cwd}:\n{tail}")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise _failure(cmd, cwd, proc.stderr)
    return proc.stdout


class Commands:
    """Runs the commands of builds that proceed side by side; the first failure stops the rest.

    Stopping interrupts the running `go` commands with SIGINT, the signal on which `go` ends its
    own compiler processes, so a failed build does not leave the machine busy for minutes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def run(self, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
        """Run ``cmd`` to completion and return its stdout; raise :class:`BuildError` if it fails."""
        with self._lock:
            if self._stopped:
                raise BuildError("stopped because another part of the build failed")
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        if proc.returncode != 0:
            raise _failure(cmd, cwd, stderr)
        return stdout

    def stop(self) -> None:
        """Interrupt every running command and refuse new ones."""
        with self._lock:
            self._stopped = True
            for proc in self._running:
                proc.send_signal(signal.SIGINT)


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


def _readonly_env(**extra: str) -> dict[str, str]:
    """The environment for go commands: a go.sum mismatch must fail, never be "fixed" by rewriting go.sum."""
    return dict(os.environ, GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=readonly").strip(), **extra)


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


def _download(commands: Commands, module_dir: Path, modules: list[str]) -> list[dict[str, object]]:
    """`go mod download` the given modules of ``module_dir``, verified against its go.sum."""
    out = commands.run(["go", "mod", "download", "-json", *modules], cwd=module_dir, env=_readonly_env())
    infos = _decode_json_stream(out)
    for info in infos:
        if info.get("Error"):
            raise BuildError(f"go mod download {info.get('Path')}: {info['Error']}")
    return infos


def _go_output_name(package: str) -> str:
    """The file name `go build -o DIR/` gives a main package: its last path element, skipping a /vN suffix."""
    elements = package.split("/")
    if len(elements) > 1 and re.fullmatch(r"v[2-9]\d*|v1\d+", elements[-1]):
        return elements[-2]
    return elements[-1]


def _go_build(
    commands: Commands,
    module_dir: Path,
    programs: dict[str, str],
    ldflags: str,
    bin_dir: Path,
    work: Path,
    modfile: Path | None = None,
) -> None:
    """Build every program of one module with a single `go build`, which compiles and links in parallel."""
    out_dir = work / "out"
    out_dir.mkdir(parents=True)
    cmd = ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out_dir}{os.sep}"]
    if modfile is not None:
        cmd.append(f"-modfile={modfile}")
    commands.run([*cmd, *programs.values()], cwd=module_dir, env=_readonly_env(CGO_ENABLED="0"))
    for name, package in programs.items():
        built = out_dir / _go_output_name(package)
        if not built.is_file():
            raise BuildError(f"`go build {package}` produced no {built.name}")
        built.rename(bin_dir / name)


def kubernetes_ldflags(k8s_version: str) -> str:
    """Linker flags stamping the release into the binaries, so /version and --version report it."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", k8s_version)
    if not match:
        raise BuildError(f"unexpected {KUBERNETES_MODULE} version {k8s_version!r} in go.mod")
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


def argo_ldflags(version: str, info_file: Path) -> str:
    """Linker flags stamping Argo's release, as its Makefile does.

    The version decides the default executor image tag and what `argo version` reports. The
    module proxy's .info file gives the tag's commit (when the proxy recorded it) and its date.
    """
    info = json.loads(info_file.read_text())
    commit = str((info.get("Origin") or {}).get("Hash") or "")
    stamps = {
        "version": version,
        "buildDate": str(info.get("Time") or "1970-01-01T00:00:00Z"),
        "gitCommit": commit,
        "gitTag": version if commit else "",
        "gitTreeState": "clean" if commit else "",
    }
    return " ".join(["-s", "-w"] + [f"-X {ARGO_MODULE}.{k}={v}" for k, v in stamps.items() if v])


def build_kubernetes(commands: Commands, bin_dir: Path, work: Path) -> dict[str, str]:
    """Compile etcd and the Kubernetes programs from testenv/go.mod; returns the versions used."""
    pinned = module_versions(paths.TESTENV_DIR)
    k8s_version = pinned[KUBERNETES_MODULE]
    _go_build(commands, paths.TESTENV_DIR, KUBERNETES_PROGRAMS, kubernetes_ldflags(k8s_version), bin_dir, work)
    return {KUBERNETES_MODULE: k8s_version, ETCD_MODULE: pinned[ETCD_MODULE]}


def _copy_writable(src: Path, dest: Path) -> None:
    """Copy a module directory; module cache files are read-only, and the copy must be removable."""
    shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(dest):
        os.chmod(directory, 0o755)


def build_argo(commands: Commands, bin_dir: Path, work: Path) -> dict[str, str]:
    """Compile Argo's programs from testenv/argo/go.mod; returns the version used.

    They are built from a copy of the checksum-verified module with the repository's symlinks
    and the UI placeholder restored, through a go.mod copy that replaces the module with it.
    """
    module_dir = paths.TESTENV_DIR / "argo"
    [info] = _download(commands, module_dir, [ARGO_MODULE])
    version = str(info["Version"])
    source = work / "argo-workflows"
    _copy_writable(Path(str(info["Dir"])), source)
    for link, target in ARGO_SYMLINKS.items():
        if not (source / link).parent.joinpath(target).is_file():
            raise BuildError(f"{ARGO_MODULE}@{version} has no {target} beside {link}; update ARGO_SYMLINKS")
        if not (source / link).exists():
            (source / link).symlink_to(target)
    (source / ARGO_UI_INDEX).parent.mkdir(parents=True, exist_ok=True)
    (source / ARGO_UI_INDEX).write_text(ARGO_UI_PLACEHOLDER)
    # -modfile reads the go.sum beside the given go.mod, named after it.
    modfile = work / "argo.mod"
    shutil.copyfile(module_dir / "go.mod", modfile)
    shutil.copyfile(module_dir / "go.sum", work / "argo.sum")
    commands.run(["go", "mod", "edit", f"-replace={ARGO_MODULE}={source}", str(modfile)], cwd=module_dir)
    ldflags = argo_ldflags(version, Path(str(info["Info"])))
    _go_build(commands, module_dir, ARGO_PROGRAMS, ldflags, bin_dir, work, modfile=modfile)
    return {ARGO_MODULE: version}


def build_coredns(commands: Commands, bin_dir: Path, work: Path) -> dict[str, str]:
    """Compile CoreDNS, with every plugin of its standard build, from testenv/dns/go.mod."""
    module_dir = paths.TESTENV_DIR / "dns"
    _go_build(commands, module_dir, COREDNS_PROGRAMS, "-s -w", bin_dir, work)
    return {COREDNS_MODULE: module_versions(module_dir)[COREDNS_MODULE]}


def fetch_crds(commands: Commands, dest: Path, work: Path) -> dict[str, str]:
    """Download the CRD modules (verified against crds/go.sum) and copy the needed files."""
    crds_dir = paths.TESTENV_DIR / "crds"
    pinned = module_versions(crds_dir)
    missing = sorted(set(CRD_SOURCES) - set(pinned))
    if missing:
        raise BuildError(f"testenv/crds/go.mod does not require {', '.join(missing)}")
    argo_program_version = module_versions(paths.TESTENV_DIR / "argo").get(ARGO_MODULE)
    if pinned[ARGO_MODULE] != argo_program_version:
        raise BuildError(
            f"testenv/crds/go.mod pins {ARGO_MODULE} {pinned[ARGO_MODULE]} but testenv/argo/go.mod pins "
            f"{argo_program_version}: the CRDs must match the controller, so bump both"
        )
    for info in _download(commands, crds_dir, list(CRD_SOURCES)):
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


@dataclass(frozen=True)
class VersionCheck:
    """How to ask a built program for its version, and what the answer must contain."""

    args: tuple[str, ...]
    expected: str


def version_checks(versions: dict[str, str]) -> dict[str, VersionCheck]:
    """Per program of the modules in ``versions``: a command that runs it and the pinned version it must report."""
    checks: dict[str, VersionCheck] = {}
    if KUBERNETES_MODULE in versions:
        k8s = versions[KUBERNETES_MODULE]
        kubernetes = VersionCheck(("--version",), f"Kubernetes {k8s}")
        checks |= {
            "etcd": VersionCheck(("--version",), f"etcd Version: {versions[ETCD_MODULE].removeprefix('v')}"),
            "kube-apiserver": kubernetes,
            "kube-controller-manager": kubernetes,
            "kube-scheduler": kubernetes,
            "kube-proxy": kubernetes,
            "kubectl": VersionCheck(("version", "--client"), f"Client Version: {k8s}"),
        }
    if COREDNS_MODULE in versions:
        checks["coredns"] = VersionCheck(("-version",), f"CoreDNS-{versions[COREDNS_MODULE].removeprefix('v')}")
    if ARGO_MODULE in versions:
        argo = versions[ARGO_MODULE]
        checks |= {
            "workflow-controller": VersionCheck(("version",), argo),
            "argo": VersionCheck(("version", "--short"), f"argo: {argo}"),
            "argoexec": VersionCheck(("version", "--short"), f"argoexec: {argo}"),
        }
    return checks


def check_programs(programs: list[Path], versions: dict[str, str]) -> None:
    """Run every built program once: it must start and report the pinned version."""
    checks = version_checks(versions)
    unchecked = sorted({p.name for p in programs} - set(checks))
    if unchecked:
        raise BuildError(f"no version check for {', '.join(unchecked)}")
    for program in programs:
        check = checks[program.name]
        try:
            proc = subprocess.run([str(program), *check.args], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"{program.name} did not run: {exc}") from exc
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or check.expected not in output:
            raise BuildError(
                f"`{program.name} {' '.join(check.args)}` exited {proc.returncode} without reporting "
                f"{check.expected!r}:\n{output.strip()[-2000:]}"
            )


Job = Callable[[Commands, Path, Path], dict[str, str]]


def _timed(name: str, job: Job, commands: Commands, dest: Path, work: Path) -> dict[str, str]:
    started = time.monotonic()
    work.mkdir(parents=True)
    result = job(commands, dest, work)
    _log(f"{name} done in {time.monotonic() - started:.0f}s")
    return result


# Component -> the job that fills its entry, and where inside the entry the job writes.
JOBS: dict[str, tuple[Job, str]] = {
    "kubernetes": (build_kubernetes, "bin"),
    "argo": (build_argo, "bin"),
    "coredns": (build_coredns, "bin"),
    "crds": (fetch_crds, "."),
}
VERSIONS_FILE = "versions.json"


def _build_component(name: str, commands: Commands, go_version: str, work: Path) -> dict[str, str]:
    """Fill and publish one component's entry; returns the versions it was built from."""
    job, inside = JOBS[name]
    versions: dict[str, str] = {}

    def fill(tmp: Path) -> None:
        dest = tmp / inside
        dest.mkdir(parents=True, exist_ok=True)
        versions.update({"go": go_version, **_timed(name, job, commands, dest, work)})
        programs = [tmp / "bin" / program for program, owner in paths.PROGRAM_COMPONENTS.items() if owner == name]
        check_programs(programs, versions)
        (tmp / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n")

    cache_entry.publish(paths.component_dir(name), paths.component_key(name), fill)
    return versions


def run_jobs(components: list[str], go_version: str, work: Path) -> None:
    """Build the given components side by side, each into its own entry; the first failure stops the rest."""
    commands = Commands()
    with ThreadPoolExecutor(max_workers=max(len(components), 1)) as pool:
        futures: dict[Future[dict[str, str]], str] = {
            pool.submit(_build_component, name, commands, go_version, work / name): name for name in components
        }
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            commands.stop()
            wait(futures)
            error = failed[0].exception()
            raise BuildError(f"{futures[failed[0]]}: {error}") from error


def argo_schema() -> Path:
    """Argo's JSON schema straight from the pinned module: no binaries needed, so `make manifests` stays quick."""
    check_go()
    [info] = _download(Commands(), paths.TESTENV_DIR / "crds", [ARGO_MODULE])
    schema = Path(str(info["Dir"])) / "api" / "jsonschema" / "schema.json"
    if not schema.is_file():
        raise BuildError(f"{ARGO_MODULE}@{info['Version']} has no api/jsonschema/schema.json")
    return schema


def build(force: bool = False) -> paths.Artifacts:
    """Ensure an entry for each component's current pins and the cluster entry over them; return the artifacts.

    Only the components whose pins changed are built: bumping Argo rebuilds Argo's programs and nothing else.
    """
    found = paths.locate()
    if found.artifacts is not None and not force:
        return found.artifacts
    go_version = check_go()
    missing = [name for name in JOBS if force or not cache_entry.is_ready(paths.component_dir(name))]
    if missing:
        why = found.reason if not force else "rebuild forced"
        _log(f"{why}: building {', '.join(missing)} from the pinned Go modules")
        work = Path(tempfile.mkdtemp(prefix=".work-", dir=_ensure(paths.cache_root())))
        try:
            run_jobs(missing, go_version, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def assemble(tmp: Path) -> None:
        # The cluster entry names what it runs; its etcd stores are saved into it by the first session.
        versions: dict[str, str] = {}
        for name in JOBS:
            versions.update(json.loads((paths.component_dir(name) / VERSIONS_FILE).read_text()))
        (tmp / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n")

    entry = paths.entry_dir()
    if force or not cache_entry.is_ready(entry):
        cache_entry.publish(entry, paths.cache_key(), assemble)
    return paths.layout(entry)


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def current_entries() -> set[Path]:
    """The cluster entry and the component entries of the current pins."""
    return {paths.entry_dir(), *(paths.component_dir(name) for name in JOBS)}


def prune(keep: set[Path]) -> list[Path]:
    """Delete every cache entry except those in ``keep``; returns what was removed.

    Opt-in only: other checkouts (branches, worktrees) share the cache and may still use theirs.
    """
    removed = []
    for entry in paths.cache_root().iterdir():
        if entry not in keep and entry.is_dir():
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
        for entry in prune(current_entries()):
            print(f"testenv: removed old cache entry {entry}")
    print(f"testenv: ready at {arts.root} ({time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
