"""Process containment: every process a Pod starts can be found and killed, even after a crash.

Each container gets a cgroup v2 directory
(``<cgroup2 mount>/argo-bluegreen/node-<n>/<pod uid>/<container>``) when a writable cgroup2
hierarchy exists; the launcher moves itself there before it becomes the container, so children,
grandchildren and daemons stay inside, and ``cgroup.kill`` ends them all at once
(https://docs.kernel.org/admin-guide/cgroup-v2.html). Without cgroup2, each container is its own
session and process group, and its main process dies with the agent (``PR_SET_PDEATHSIG``); the
network sweep then kills whatever still runs inside a Pod's network namespace. Both paths are
swept when the agent starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_PARENT = "argo-bluegreen"
KILL_WAIT_SECONDS = 10.0


def cgroup2_mount() -> Path | None:
    """The writable cgroup2 mount point (pure v2 or the hybrid ``unified`` one), if any."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "cgroup2" and "rw" in fields[3].split(","):
            path = Path(fields[1])
            if os.access(path, os.W_OK):
                return path
    return None


class PodCgroups:
    """The cgroups of one node agent's Pods (one node index), or process groups without cgroup2."""

    def __init__(self, node_index: int) -> None:
        mount = cgroup2_mount()
        self.base: Path | None = mount / CGROUP_PARENT / f"node-{node_index}" if mount else None
        if self.base is not None:
            try:
                self.base.mkdir(parents=True, exist_ok=True)
            except OSError:
                self.base = None

    def create(self, pod_uid: str, container: str) -> Path | None:
        """The container's ``cgroup.procs`` file (the cgroup is created), or None without cgroup2."""
        if self.base is None:
            return None
        group = self.base / pod_uid / container
        group.mkdir(parents=True, exist_ok=True)
        return group / "cgroup.procs"

    def pids(self, pod_uid: str) -> list[int]:
        """Processes in the Pod's cgroups (empty without cgroup2)."""
        if self.base is None:
            return []
        return _read_pids(self.base / pod_uid)

    def kill_container(self, pod_uid: str, container: str) -> None:
        """SIGKILL everything the container started and remove its cgroup."""
        if self.base is not None:
            _kill_group(self.base / pod_uid / container)

    def kill(self, pod_uid: str) -> None:
        """SIGKILL everything in the Pod's cgroups, wait until they are empty, and remove them."""
        if self.base is not None:
            _kill_group(self.base / pod_uid)

    def remove(self) -> None:
        """Kill what is left and remove this node's cgroup directory (when the agent stops)."""
        if self.base is not None:
            _kill_group(self.base)

    def sweep(self) -> list[str]:
        """Kill and remove every Pod cgroup of this node (a fresh agent owns no processes yet)."""
        if self.base is None or not self.base.is_dir():
            return []
        removed = []
        for group in self.base.iterdir():
            if group.is_dir():
                _kill_group(group)
                removed.append(group.name)
        return removed


def _read_pids(group: Path) -> list[int]:
    """Members of ``group`` and of every cgroup below it."""
    pids: list[int] = []
    for procs in group.rglob("cgroup.procs") if group.is_dir() else ():
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(line) for line in procs.read_text().split())
    return pids


def _kill_group(group: Path) -> None:
    if not group.is_dir():
        return
    kill_file = group / "cgroup.kill"
    if kill_file.exists():
        # Kills the whole subtree atomically, including processes forking right now.
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    # Bounded poll: the kernel empties the group asynchronously and offers no wait for it. The
    # explicit kills cover kernels before 5.14, which have no cgroup.kill.
    while (pids := _read_pids(group)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    # Children first: a cgroup with sub-cgroups cannot be removed.
    for child in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def kill_container_init(relay_pid: int) -> None:
    """SIGKILL the container's PID 1, the one child of the launcher's relay, so the relay reaps it.

    A runtime kills the container's init and its shim, a subreaper, reaps it. Here the relay is that shim: killed
    first, it would leave its child to the host's init, and a zombie in the container's PID namespace would outlive
    the Pod for as long as that init takes to reap it. With the init killed, the kernel kills the rest of the
    namespace, and the relay reaps the init and ends with the same signal.
    """
    children = Path(f"/proc/{relay_pid}/task/{relay_pid}/children")
    with contextlib.suppress(OSError, ValueError):
        for child in children.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)


def signal_process_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the process group led by ``pid`` (each container is its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
