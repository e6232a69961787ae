"""Starting a container: the launcher spec (private root, mounts, credentials) and the process.

The heavy lifting happens in :mod:`testenv.node.launcher`, inside the new namespaces; this module
decides what goes into them. Each container instance gets its own private root directory under
the Pod's directory; the host sees only that empty directory, because every mount lives in the
container's own mount namespace. ``exec_argv`` gives the prefix that runs a command inside a
running container (exec probes, preStop hooks), the way ``kubectl exec`` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testenv.node import launcher
from testenv.node.images import ImageConfig

JsonObj = dict[str, Any]
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
START_ERROR_EXIT_CODE = launcher.START_ERROR_EXIT_CODE


class SandboxError(RuntimeError):
    """The container's configuration cannot run here (CreateContainerConfigError)."""


@dataclass(frozen=True)
class Identity:
    """The credentials a container's process runs with (None keeps the agent's, root)."""

    uid: int | None
    gid: int | None
    groups: tuple[int, ...]


def identity(pod: JsonObj, container: JsonObj, image: ImageConfig) -> Identity:
    """``runAsUser``/``runAsGroup`` (container over Pod over image), groups, and ``runAsNonRoot``."""
    pod_ctx = pod.get("spec", {}).get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser", image.user[0] if image.user else None))
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup", image.user[1] if image.user else None))
    if uid is not None and gid is None:
        gid = 0  # the runtime's default primary group for a uid the image does not name
    non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot", False))
    if non_root and not uid:
        raise SandboxError("container has runAsNonRoot and image will run as root")
    groups = [int(g) for g in pod_ctx.get("supplementalGroups", []) or []]
    if pod_ctx.get("fsGroup") is not None:
        groups.append(int(pod_ctx["fsGroup"]))
    return Identity(uid=None if uid is None else int(uid), gid=None if gid is None else int(gid), groups=tuple(groups))


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start one container instance."""

    container_dir: Path
    netns_path: str
    hostname: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    identity: Identity
    mounts: list[JsonObj]
    file_binds: list[JsonObj]
    runtime_paths: list[str]
    readonly_root: bool
    cgroup_procs: Path | None
    termination_message_file: Path
    #: A pulled image's root filesystem: the container's root is an overlay on it, not the host's system dirs.
    image_root: Path | None = None


def volume_mounts(container: JsonObj, volume_paths: dict[str, Path]) -> list[JsonObj]:
    """The container's volumeMounts as launcher binds, parents before children."""
    mounts = []
    for mount in container.get("volumeMounts", []) or []:
        source = volume_paths[mount["name"]]
        if mount.get("subPath"):
            source = source / mount["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(
            {"source": str(source), "target": mount["mountPath"], "readonly": bool(mount.get("readOnly", False))}
        )
    # A mount at /a/b must come after the one at /a, or the latter would hide it.
    return sorted(mounts, key=lambda m: len(Path(m["target"]).parts))


def start(plan: LaunchPlan) -> subprocess.Popen[bytes]:
    """Start the launcher for ``plan``; the returned process becomes the container's main process.

    Its ``stdout`` and ``stderr`` are pipes the caller must drain (into the container's log).
    """
    plan.container_dir.mkdir(parents=True, exist_ok=True)
    root = plan.container_dir / "root"
    spec = {
        "netns_path": plan.netns_path,
        "hostname": plan.hostname,
        "root": str(root),
        "image_root": str(plan.image_root) if plan.image_root else None,
        "system_dirs": [] if plan.image_root else [d for d in SYSTEM_DIRS if os.path.lexists(d)],
        "mounts": plan.mounts,
        "runtime_paths": plan.runtime_paths,
        "file_binds": plan.file_binds,
        "working_dir": plan.working_dir,
        "readonly_root": plan.readonly_root,
        "uid": plan.identity.uid,
        "gid": plan.identity.gid,
        "groups": list(plan.identity.groups),
        "argv": plan.argv,
        "env": plan.env,
        "cgroup_procs": str(plan.cgroup_procs) if plan.cgroup_procs else None,
        "start_error_path": str(plan.container_dir / "start-error"),
        "die_with_agent": True,
        "agent_pid": os.getpid(),
    }
    spec_path = plan.container_dir / "launch.json"
    # The spec holds Secret values; only root may read it.
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(spec, handle)
    # stdout and stderr stay apart on their own pipes, for the log's per-stream records
    # (container_logs.py); close_fds (the default) keeps other containers' pipes out of this one.
    return subprocess.Popen(
        [sys.executable, "-I", launcher.__file__, str(spec_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Its own session: signals for the container never reach the agent, and back.
        start_new_session=True,
        cwd="/",
    )


def start_error(container_dir: Path) -> str:
    """What the launcher reported when it could not start the container ("" if nothing)."""
    try:
        return (container_dir / "start-error").read_text().strip()
    except OSError:
        return ""


def container_init(launcher_pid: int) -> int:
    """The container's PID 1, seen from the node: the launcher stays outside as its relay, with it as only child."""
    try:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    except OSError:
        return launcher_pid
    return int(children[0]) if children else launcher_pid


def exec_argv(pid: int, ident: Identity, env: dict[str, str], command: list[str]) -> list[str]:
    """Argv that runs ``command`` inside running container ``pid``: its namespaces, root, cwd and user."""
    argv = ["nsenter", "-t", str(container_init(pid)), "-m", "-n", "-u", "-p", "-r", "-w"]
    if ident.gid is not None:
        argv += ["-G", str(ident.gid)]
    if ident.uid is not None:
        argv += ["-S", str(ident.uid)]
    return [*argv, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]
