"""Run a real etcd + kube-apiserver on loopback for the duration of a test session.

The product code is judged by what a real API server accepts (schemas, CEL rules, RBAC,
server-side apply, optimistic concurrency), so the tests talk to the genuine binaries built by
``build.py`` rather than a fake. Only the API server and its store run: no scheduler,
controller-manager or kubelet (``stand_in.py`` plays the part of the few controllers we need).
Every process is tied to this one and every file lives in one temporary directory, so stopping
leaves nothing behind.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testenv import certs
from testenv.paths import Artifacts

# Why each default admission plugin is switched off; see ControlPlane.start.
DISABLED_ADMISSION_PLUGINS: dict[str, str] = {
    # Without kube-controller-manager nobody creates the `default` ServiceAccount in new
    # namespaces, and this plugin rejects every Pod that names a missing ServiceAccount.
    "ServiceAccount": "no ServiceAccount controller runs, so namespaces have no `default` SA",
}

_PR_SET_PDEATHSIG = 1
WORKDIR_PREFIX = "bluegreen-controlplane-"
OWNER_FILE = "owner.pid"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the tail of the server logs."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now at ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """Child-process hook: the kernel kills this process when the process that started it dies."""
    # If the test process is killed outright, the kernel takes the servers down with it instead
    # of leaving orphans bound to loopback ports. SIGKILL, not SIGTERM: the two servers' graceful
    # shutdowns wait on each other for many seconds, and their data is thrown away anyway.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def spawn_logged(
    argv: list[str], log_path: Path, *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start one cluster program with its output appended to ``log_path``; it dies with this process."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent,
        )
    finally:
        log.close()


def _sweep_abandoned_workdirs() -> None:
    """Remove work directories left by test processes that were killed before they could clean up.

    Their servers died with them (PR_SET_PDEATHSIG), so a directory whose owner is gone is garbage.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((candidate / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge, or still being set up
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class ApiServing:
    """Where the API server listens and what it serves beyond the API itself.

    The defaults suit an API-only control plane on loopback. A full cluster, whose Pods reach the
    server from their own network namespaces, binds a non-loopback address, puts the ``kubernetes``
    Service's ClusterIP in the certificate, keeps that Service's endpoints current, and turns the
    ServiceAccount admission plugin back on because its controllers create every namespace's
    ``default`` ServiceAccount.
    """

    bind_address: str = "127.0.0.1"
    service_cidr: str = "10.96.0.0/16"
    extra_serving_ips: tuple[str, ...] = ()
    with_controllers: bool = False


class ControlPlane:
    """One etcd and one kube-apiserver process sharing a private temporary directory."""

    def __init__(self, artifacts: Artifacts, serving: ApiServing | None = None) -> None:
        self.artifacts = artifacts
        self.serving = serving or ApiServing()
        self.workdir: Path | None = None
        self.kubeconfig_path = Path()
        self.server = ""
        self.start_seconds = 0.0
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._argvs: list[tuple[str, list[str]]] = []
        self._pki: certs.Pki | None = None

    @property
    def pki(self) -> certs.Pki:
        """The credentials of the running server (available after :meth:`start`)."""
        if self._pki is None:
            raise RuntimeError("control plane not started")
        return self._pki

    def start(self, timeout: float = 60.0, etcd_seed: Path | None = None) -> None:
        """Start both processes and return once ``/readyz`` answers ok, or raise.

        Args:
            timeout: Deadline for the API server to become ready.
            etcd_seed: An etcd data directory saved by :meth:`save_etcd_seed`; the store starts as
                a copy of it, which skips re-creating everything it already holds.
        """
        started = time.monotonic()
        _sweep_abandoned_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (self.workdir / OWNER_FILE).write_text(str(os.getpid()))
        try:
            if etcd_seed is not None:
                shutil.copytree(etcd_seed, self.workdir / "etcd")
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def save_etcd_seed(self, dest: Path, timeout: float = 60.0) -> None:
        """Copy the store to ``dest`` (published atomically) and carry on serving.

        etcd is stopped for the copy, because a copy of a live data directory is not consistent.
        """
        assert self.workdir is not None and self._pki is not None
        self._terminate_all()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
            try:
                shutil.copytree(self.workdir / "etcd", tmp / "etcd")
                if not dest.exists():
                    tmp.joinpath("etcd").rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            # Losing a race with a concurrent session, or a read-only cache, only costs a later
            # session the slow path; this one carries on either way.
            pass
        finally:
            for name, argv in self._argvs:
                self._spawn(name, argv)
            self._wait_ready(self._pki, timeout)

    def _start(self, timeout: float) -> None:
        assert self.workdir is not None
        work = self.workdir
        serving = self.serving
        pki = self._pki = certs.generate(work / "pki", serving_ips=(serving.bind_address, *serving.extra_serving_ips))
        etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        peer_url = f"http://127.0.0.1:{etcd_peer}"
        self.server = f"https://{serving.bind_address}:{api_port}"
        disabled_admission = {} if serving.with_controllers else DISABLED_ADMISSION_PLUGINS
        self._spawn(
            "etcd",
            [
                str(self.artifacts.etcd),
                "--name=testenv",
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=testenv={peer_url}",
                # The data is thrown away at the end; durability only costs start-up time.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        # Started without waiting for etcd: the API server retries its storage connection itself.
        self._spawn(
            "kube-apiserver",
            [
                str(self.artifacts.kube_apiserver),
                f"--bind-address={serving.bind_address}",
                f"--advertise-address={serving.bind_address}",
                f"--secure-port={api_port}",
                f"--etcd-servers={etcd_url}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={pki.sa_public_key}",
                f"--service-account-signing-key-file={pki.sa_private_key}",
                f"--service-cluster-ip-range={serving.service_cidr}",
                *([f"--disable-admission-plugins={','.join(disabled_admission)}"] if disabled_admission else []),
                "--allow-privileged=true",
                # Without Pods nothing routes to the `kubernetes` Service, and reconciling its
                # endpoints would only add writes; in a full cluster in-cluster clients dial it.
                f"--endpoint-reconciler-type={'lease' if serving.with_controllers else 'none'}",
                "--profiling=false",
                f"--cert-dir={work / 'cert-dir'}",
                # How `kubectl logs` reaches a node agent's kubelet endpoint: at the Node's InternalIP,
                # verifying its certificate against the cluster CA, with the admin certificate as the
                # client (the agent authorises it by SubjectAccessReview). Inert while no Node exists.
                f"--kubelet-client-certificate={pki.admin_cert}",
                f"--kubelet-client-key={pki.admin_key}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ],
        )
        self._write_kubeconfig(pki)
        self._wait_ready(pki, timeout)

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.workdir is not None
        if (name, argv) not in self._argvs:
            self._argvs.append((name, argv))
        self._procs.append((name, spawn_logged(argv, self.workdir / f"{name}.log", cwd=self.workdir)))

    def _write_kubeconfig(self, pki: certs.Pki) -> None:
        assert self.workdir is not None

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "testenv", "cluster": {"server": self.server, "certificate-authority-data": b64(pki.ca_cert)}}
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
                }
            ],
            "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "admin"}}],
            "current-context": "testenv",
        }
        self.kubeconfig_path = self.workdir / "kubeconfig"
        # JSON is valid YAML, and every kubeconfig loader reads YAML.
        self.kubeconfig_path.write_text(json.dumps(config, indent=2))
        self.kubeconfig_path.chmod(0o600)

    def _wait_ready(self, pki: certs.Pki, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self._logs()}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[-500:]}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s ({last}):\n{self._logs()}")
            # Bounded poll: readiness has no watchable signal before the server is up.
            time.sleep(0.05)

    def _logs(self) -> str:
        assert self.workdir is not None
        return "\n".join(f"--- {name} log ---\n{_tail(self.workdir / f'{name}.log')}" for name, _ in self._procs)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the API server first (so it never sees its store vanish), then etcd; remove all files."""
        self._terminate_all(grace)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _terminate_all(self, grace: float = 10.0) -> None:
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
