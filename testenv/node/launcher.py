"""Turn this process into one container: namespaces, a private root, credentials, then exec.

Run by the node agent as ``python -I launcher.py SPEC.json`` and standard library only, because
it runs with the host's interpreter before any root exists. In order it:

1. joins the Pod's cgroup (so everything it becomes is killed with the Pod),
2. gives the container a PID namespace of its own, as every container runtime does: it forks, the child becomes the
   container's PID 1 and goes on below, and this process stays behind as a relay (see :func:`_relay`),
3. enters the Pod's network namespace and a new mount and UTS namespace (hostname = Pod name),
4. mounts the container's root (an overlay on its image's unpacked root filesystem, or, for an image the node
   agent stands in for, a tmpfs with the host system directories read-only) and builds the view inside it: fresh
   ``/proc``, ``/sys`` (read-only) and a minimal ``/dev``, every volumeMount at its real path, then a stand-in's
   runtime (checkout, virtualenv, Python) at its real path on top, so a volume at ``/tmp`` cannot hide a checkout
   that lives under ``/tmp``,
5. binds the Pod's ``resolv.conf``, ``hosts`` and ``hostname`` over ``/etc``'s,
6. chroots, changes directory, drops to ``runAsUser``/``runAsGroup`` and execs the program.

All mounts happen in the new mount namespace and vanish with its last process; the host sees
only an empty directory. Mount points are created inside the container's root, or, for a runtime path
under a volume, inside that volume's own directory: never on the host's root.

On failure it writes the reason to the spec's error file and exits 128, which the agent reports
as the kubelet reports a container that could not start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
START_ERROR_EXIT_CODE = 128
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
#: What the relay passes on to the container's PID 1: every signal a kubelet or a person sends to stop or poke it.
RELAYED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)
MAX_SYMLINK_HOPS = 40

_libc = ctypes.CDLL(None, use_errno=True)


class LaunchError(Exception):
    """A step of building the container failed; the message says which."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise LaunchError(f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data is not None else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _bind(source: str, target: str, readonly: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        # A bind mount only becomes read-only through a second, remounting call.
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def in_root(root: str, path: str) -> str:
    """The host path of container path ``path``, following symlinks as if ``root`` were ``/``.

    Needed because the view is built before the chroot: a symlink like ``/etc/resolv.conf ->
    ../run/...`` or ``/var/run -> /run`` must resolve inside the container, not on the host.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise LaunchError(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _make_mount_point(host_target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(host_target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(host_target), exist_ok=True)
    if not os.path.exists(host_target):
        with open(host_target, "a"):
            pass


def _bind_at(root: str, source: str, container_path: str, readonly: bool) -> None:
    target = in_root(root, container_path)
    _make_mount_point(target, os.path.isdir(source))
    _bind(source, target, readonly)


def _system_dirs(root: str, dirs: list[str]) -> None:
    for path in dirs:
        target = os.path.join(root, path.lstrip("/"))
        if os.path.islink(path):
            # Merged-/usr systems link /bin to usr/bin; the same link keeps the same layout.
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
            _bind(path, target, readonly=True)


def _kernel_filesystems(root: str) -> None:
    proc = os.path.join(root, "proc")
    os.makedirs(proc, exist_ok=True)
    _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys_dir = os.path.join(root, "sys")
    os.makedirs(sys_dir, exist_ok=True)
    # Mounted after entering the Pod's network namespace, so /sys/class/net shows the Pod's links.
    _mount("sysfs", sys_dir, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _make_mount_point(os.path.join(dev, name), is_dir=False)
            _bind(f"/dev/{name}", os.path.join(dev, name), readonly=False)
    shm = os.path.join(dev, "shm")
    os.makedirs(shm)
    _mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, os.path.join(dev, name))
    os.symlink("/proc/self/fd/2", os.path.join(dev, "stderr"))


def _enter_namespaces(spec: dict[str, Any]) -> None:
    fd = os.open(spec["netns_path"], os.O_RDONLY)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns_path']}")
    finally:
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare mount+uts namespaces")
    hostname = spec["hostname"].encode()
    _check(_libc.sethostname(hostname, ctypes.c_size_t(len(hostname))), "sethostname")
    # Nothing mounted from here on may propagate back to the host.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _image_root(root: str, image_root: str) -> None:
    """The image's root filesystem as the container's, writable through an overlay of the container's own.

    The unpacked image stays as it is (the overlay's lower layer), shared by every container of that image; what
    a container writes goes to ``upper`` beside its root and is gone with the container, as with a container
    runtime's snapshotter.
    """
    container_dir = os.path.dirname(root)
    upper, work = os.path.join(container_dir, "upper"), os.path.join(container_dir, "work")
    for directory in (upper, work):
        os.makedirs(directory, exist_ok=True)
    # nodev as well as nosuid: a device node or setuid file an image carries gives its container nothing of the node.
    flags = MS_NOSUID | MS_NODEV
    _mount("overlay", root, "overlay", flags, f"lowerdir={image_root},upperdir={upper},workdir={work}")


def _build_root(spec: dict[str, Any]) -> str:
    root: str = spec["root"]
    os.makedirs(root, exist_ok=True)
    if spec.get("image_root"):
        _image_root(root, spec["image_root"])
    else:
        _mount("tmpfs", root, "tmpfs", MS_NOSUID, "mode=755")
        _system_dirs(root, spec["system_dirs"])
    _kernel_filesystems(root)
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o1777)
    for mount in spec["mounts"]:
        _bind_at(root, mount["source"], mount["target"], mount["readonly"])
    for path in spec["runtime_paths"]:
        _bind_at(root, path, path, readonly=True)
    for mount in spec["file_binds"]:
        _bind_at(root, mount["source"], mount["target"], mount["readonly"])
    working_dir = in_root(root, spec["working_dir"])
    if not os.path.isdir(working_dir):
        os.makedirs(working_dir)
    if spec["readonly_root"]:
        _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    return root


def _drop_privileges(spec: dict[str, Any]) -> None:
    uid, gid = spec["uid"], spec["gid"]
    if gid is not None or uid is not None:
        os.setgroups(list(spec["groups"]))
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def _die_with_parent() -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl PDEATHSIG")


def _exec(spec: dict[str, Any]) -> None:
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    if spec["die_with_agent"]:
        # Set last: changing credentials clears it. The relay is the parent and dies with the agent, so a killed
        # agent takes its containers' main processes along; the Pod cgroup catches their children.
        _die_with_parent()
    try:
        os.execvpe(argv[0], argv, env)
    except PermissionError as exc:
        raise LaunchError(
            f"cannot execute {argv[0]} as uid {os.getuid()}: {exc.strerror}; the checkout, its "
            "virtualenv and the Python installation must be readable and searchable by that uid "
            "(chmod -R o+rX)"
        ) from exc
    except FileNotFoundError as exc:
        raise LaunchError(f'exec: "{argv[0]}": executable file not found in $PATH') from exc


def _relay(child: int) -> None:
    """Stand in for the container's PID 1 towards the agent: pass signals on, end as it ends (never returns).

    Why a PID namespace at all: a program in a container may signal "every process I may signal" (``kill(-1)``,
    which Argo's emissary does when it forwards a stop signal after its child has been reaped). In a container that
    reaches only the container's own processes; without a namespace of its own it would stop every process of the
    same user on the node, that is, the steps of every other Pod.
    """
    for signum in RELAYED_SIGNALS:
        signal.signal(signum, lambda received, _frame: _pass_on(child, received))
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        break
    if os.WIFSIGNALED(status):
        # End the same way, so the agent reads the same exit code (128 + signal) as from the program itself.
        ended_by = os.WTERMSIG(status)
        signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else START_ERROR_EXIT_CODE)


def _pass_on(child: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signum)


def launch(spec: dict[str, Any]) -> None:
    """Become the container described by ``spec`` (never returns on success)."""
    if spec["cgroup_procs"]:
        with open(spec["cgroup_procs"], "w") as procs:
            procs.write(str(os.getpid()))
    if spec["die_with_agent"]:
        _die_with_parent()
        if os.getppid() != spec["agent_pid"]:
            raise LaunchError("the node agent exited while the container was starting")
    _check(_libc.unshare(CLONE_NEWPID), "unshare pid namespace")
    child = os.fork()
    if child:
        _relay(child)
    _enter_namespaces(spec)
    root = _build_root(spec)
    os.chroot(root)
    os.chdir(spec["working_dir"])
    _drop_privileges(spec)
    _exec(spec)


def main() -> None:
    """Read the spec named on the command line and launch; report a failure to its error file."""
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    error_fd = os.open(spec["start_error_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        launch(spec)
    except (LaunchError, OSError) as exc:
        os.write(error_fd, str(exc).encode())
        sys.stderr.write(f"container start failed: {exc}\n")
        os._exit(START_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
