"""Real HTTP load on a Service's ClusterIP, directly and through an HAProxy ingress hop, from a client namespace.

:class:`LoadHarness` gives the load its own network namespace on the cluster's node bridge, as a client Pod has
(``bgpod-<n>-load<k>``, so that tearing the cluster down sweeps it too), on a subnet of its own
(``10.245.<n>.0/24``, which the node agent never hands out). Inside it run:

- HAProxy from Debian (``make host-deps``), with a static configuration rendered here: one frontend on loopback and one
  backend, the Service's ClusterIP, with HAProxy's default keep-alive and connection reuse towards it. A proxy that
  keeps using a connection to a Pod that is going away is exactly what the harness must catch.
- The client (``testenv/load_client.py``), which sends the steady rate to both, keep-alive and new connections, and
  writes one line per request.

Both reach the ClusterIP through the node's bridge, where kube-proxy's nftables rules pick an endpoint, as for any
Pod. Every process is tied to this one (``PR_SET_PDEATHSIG``) and dies with the namespace.

The harness also watches the application Service, so that each change of its selector (the `service` router's switch)
is known to the millisecond, as the API server's watch delivers it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bluegreen_spec import SLOT_LABEL
from testenv.controlplane import die_with_parent
from testenv.list_watch import ListWatchThread
from testenv.load_client import FLOWS, RequestLine
from testenv.local_cluster import LocalCluster
from testenv.node.network import POD_NETNS_PREFIX, ClusterNetwork, list_netns
from testenv.traffic_report import failed

REPO = Path(__file__).resolve().parents[1]
PROXY_PORT = 8080
DEFAULT_RATE = 200.0
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


class HarnessError(RuntimeError):
    """The harness could not be set up; the message says what is missing or what failed."""


def serving_since(lines: list[RequestLine], flows: set[tuple[str, str]]) -> float | None:
    """When every ``(target, flow)`` had answered 200 at least once: the start of the last one's first success.

    A Service created moments before may not be in kube-proxy's rules yet (its first connections are refused or their
    SYNs dropped); that is the starting point not being ready, not a deploy failing, so the record starts here.
    None while some flow has not answered yet.
    """
    first: dict[tuple[str, str], float] = {}
    for line in lines:
        key = (line.target, line.flow)
        if key in flows and key not in first and line.status == 200 and not line.error:
            first[key] = line.start
    if set(first) != flows:
        return None
    return max(first.values())


def missing_tools() -> list[str]:
    """What this machine lacks to run the harness, one actionable line each."""
    if shutil.which("haproxy") is None:
        return ["`haproxy` is missing: run `make host-deps` (installs Debian's haproxy)"]
    return []


def render_haproxy_config(backend_host: str, backend_port: int, listen_port: int) -> str:
    """HAProxy's configuration: loopback frontend -> the Service's ClusterIP, keep-alive on both sides."""
    return "\n".join(
        [
            "global",
            "    maxconn 4096",
            "    nbthread 1",
            "defaults",
            "    mode http",
            "    option http-keep-alive",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            "    timeout http-keep-alive 30s",
            "frontend ingress",
            f"    bind 127.0.0.1:{listen_port}",
            "    default_backend service",
            "backend service",
            # HAProxy's own default; named because it is what keeps idle server connections to reuse.
            "    http-reuse safe",
            f"    server clusterip {backend_host}:{backend_port}",
            "",
        ]
    )


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "File exists" not in proc.stderr and "already assigned" not in proc.stderr:
        raise HarnessError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")


@dataclass
class ClientNamespace:
    """A network namespace on the node's bridge, on the client subnet ``10.245.<n>.0/24``."""

    net: ClusterNetwork
    host: int
    netns: str = ""
    veth: str = ""

    @classmethod
    def create(cls, net: ClusterNetwork) -> ClientNamespace:
        """The first free client address of this cluster, wired to the bridge."""
        existing = set(list_netns())
        for host in range(2, 255):
            name = f"{POD_NETNS_PREFIX}{net.index}-load{host:04d}"
            if name not in existing:
                made = cls(net, host, name, f"bgvload{host:04d}"[:15])
                made._setup()
                return made
        raise HarnessError(f"no free client address left in 10.245.{net.index}.0/24")

    @property
    def address(self) -> str:
        """The client's address."""
        return f"10.245.{self.net.index}.{self.host}"

    @property
    def gateway(self) -> str:
        """The node's address on the client subnet."""
        return f"10.245.{self.net.index}.1"

    def _setup(self) -> None:
        node = self.net.node_netns
        try:
            # A second subnet on the bridge, so client addresses never meet the node agent's Pod addresses.
            _ip("-n", node, "addr", "add", f"{self.gateway}/24", "dev", self.net.bridge)
            _ip("netns", "add", self.netns)
            _ip("-n", node, "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
            _ip("-n", node, "link", "set", self.veth, "master", self.net.bridge)
            _ip("-n", node, "link", "set", self.veth, "up")
            _ip("-n", self.netns, "link", "set", "lo", "up")
            _ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
            _ip("-n", self.netns, "link", "set", "eth0", "up")
            _ip("-n", self.netns, "route", "add", "default", "via", self.gateway)
        except BaseException:
            self.delete()
            raise

    def run_in(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def delete(self) -> None:
        """Kill what still runs inside and delete the namespace (its veth goes with it). Idempotent."""
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False)
        for word in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(word), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, check=False)


@dataclass
class SelectorChange:
    """The application Service's slot selector as of a moment (unix seconds, when the watch delivered it)."""

    at: float
    slot: str


class SelectorWatch(ListWatchThread):
    """A thread that records every change of one Service's selector label, as the API server's watch delivers it.

    The label is argo-bluegreen's slot by default; Argo Rollouts switches ``rollouts-pod-template-hash``.
    """

    def __init__(self, cluster: LocalCluster, namespace: str, name: str, label: str = SLOT_LABEL) -> None:
        path = f"/api/v1/namespaces/{namespace}/services"
        super().__init__(cluster, path, {"fieldSelector": f"metadata.name={name}"}, name=f"watch-{name}")
        self._label = label
        self._name = name
        self.changes: list[SelectorChange] = []

    def wait_for(self, wanted: Callable[[SelectorChange], bool], timeout: float) -> SelectorChange:
        """The first recorded change that ``wanted`` accepts, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((change for change in list(self.changes) if wanted(change)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"Service {self._name}: no wanted selector in {timeout}s; saw {self.changes}")
            time.sleep(0.02)  # bounded poll of the watch thread's own record

    def on_list(self, items: list[dict[str, Any]], first: bool) -> None:
        """The selector as listed, the first time and after every watch that ended."""
        for item in items:
            self.on_change(item)

    def on_change(self, item: dict[str, Any]) -> None:
        """A new selector value, if it changed."""
        spec = item.get("spec")
        selector = spec.get("selector") if isinstance(spec, dict) else None
        slot = str((selector or {}).get(self._label, "")) if isinstance(selector, dict) else ""
        if not self.changes or self.changes[-1].slot != slot:
            self.changes.append(SelectorChange(time.time(), slot))


@dataclass
class LoadHarness:
    """Steady load on one Service: ``with LoadHarness(cluster, service_ip, ...) as load: ...; load.lines()``.

    Attributes:
        rate: Requests per second in all, shared evenly by the flows (2 connection kinds x 2 paths by default).
        through_proxy: Also send through the HAProxy hop (target ``haproxy``), besides ``direct``.
    """

    cluster: LocalCluster
    service_ip: str
    namespace: str = ""
    service_name: str = ""
    rate: float = DEFAULT_RATE
    through_proxy: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bluegreen-load-")))
    keep_workdir: bool = False
    client_ns: ClientNamespace | None = None
    watch: SelectorWatch | None = None
    started_at: float = 0.0
    stopped_at: float = 0.0
    warmup_failed: int = 0
    _proxy: subprocess.Popen[bytes] | None = None
    _client: subprocess.Popen[bytes] | None = None
    _read_lock: threading.Lock = field(default_factory=threading.Lock)
    _read_offset: int = 0
    _parsed: list[RequestLine] = field(default_factory=list)

    @property
    def out_path(self) -> Path:
        """Where the client writes its lines."""
        return self.workdir / "requests.tsv"

    def __enter__(self) -> LoadHarness:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Create the namespace, start HAProxy and the watch, then the client; return once every flow is answered.

        :attr:`started_at` is the moment the last flow first got a 200 (:func:`serving_since`); the failures before
        it are counted in :attr:`warmup_failed` and belong to no phase. On any failure everything started is stopped.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        problems = missing_tools()
        if self.through_proxy and problems:
            raise HarnessError("; ".join(problems))
        if self.cluster.network is None:
            raise HarnessError("the cluster has no node network: is it running?")
        self.client_ns = ClientNamespace.create(self.cluster.network)
        targets = [f"direct={self.service_ip}:80"]
        if self.through_proxy:
            config = self.workdir / "haproxy.cfg"
            config.write_text(render_haproxy_config(self.service_ip, 80, PROXY_PORT))
            self._proxy = self._spawn("haproxy", ["haproxy", "-db", "-f", str(config)])
            targets.append(f"haproxy=127.0.0.1:{PROXY_PORT}")
            self._wait_listening(PROXY_PORT)
        if self.service_name:
            self.watch = SelectorWatch(self.cluster, self.namespace, self.service_name)
            self.watch.start()
            if not self.watch.listed.wait(START_TIMEOUT_SECONDS):
                raise HarnessError(f"Service {self.namespace}/{self.service_name} could not be listed")
        argv = [sys.executable, "-m", "testenv.load_client", "--rate", str(self.rate), "--out", str(self.out_path)]
        for target in targets:
            argv += ["--target", target]
        self._client = self._spawn("client", argv)
        flows = {(target.split("=", 1)[0], flow) for target in targets for flow in FLOWS}
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (since := serving_since(self.lines(), flows)) is None:
            if self._client.poll() is not None:
                raise HarnessError(f"the load client exited {self._client.returncode}: {self.log_tail('client')}")
            if time.monotonic() > deadline:
                answered = sorted({(line.target, line.flow) for line in self.lines() if line.status == 200})
                raise HarnessError(
                    f"{self.service_ip}:80 was not answered on every path within {START_TIMEOUT_SECONDS}s "
                    f"(answered: {answered or 'none'}); is the Service's Deployment ready? {self.log_tail('client')}"
                )
            time.sleep(0.05)  # bounded poll: the client flushes its lines every quarter second
        self.warmup_failed = sum(1 for line in self.lines() if line.start < since and failed(line))
        self.started_at = since

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        assert self.client_ns is not None
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                self.client_ns.run_in(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    def _wait_listening(self, port: int) -> None:
        """Until HAProxy accepts on ``port`` inside the namespace (probed from there with a short Python)."""
        assert self.client_ns is not None and self._proxy is not None
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._proxy.poll() is not None:
                raise HarnessError(f"haproxy exited {self._proxy.returncode}: {self.log_tail('haproxy')}")
            done = subprocess.run(self.client_ns.run_in([sys.executable, "-c", probe]), capture_output=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"haproxy did not listen within {START_TIMEOUT_SECONDS}s: {self.log_tail('haproxy')}"
                )
            time.sleep(0.1)  # bounded poll: haproxy has no readiness signal of its own in the foreground

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The end of a process's log."""
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def lines(self) -> list[RequestLine]:
        """The record: every request line from :attr:`started_at` on (a last, partial line is left for later).

        Before the start is established, every line so far. Thread-safe; only what was appended since the last call
        is read and parsed, since a live summary asks every second.
        """
        return [line for line in self._read() if line.start >= self.started_at]

    def _read(self) -> list[RequestLine]:
        with self._read_lock:
            if not self.out_path.exists():
                return list(self._parsed)
            with self.out_path.open("rb") as out:
                out.seek(self._read_offset)
                chunk = out.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._read_offset += len(complete)
            self._parsed.extend(RequestLine.parse(line) for line in complete.decode().splitlines() if line)
            return list(self._parsed)

    def stop(self) -> None:
        """Stop the client (it finishes the requests in flight), then HAProxy, the watch and the namespace."""
        if self._client is not None and self._client.poll() is None:
            self._client.send_signal(signal.SIGTERM)
            try:
                self._client.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._client.kill()
                self._client.wait()
        self.stopped_at = time.time()
        if self._proxy is not None and self._proxy.poll() is None:
            self._proxy.terminate()
            try:
                self._proxy.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proxy.kill()
                self._proxy.wait()
        if self.watch is not None:
            self.watch.stop()
        if self.client_ns is not None:
            self.client_ns.delete()
            self.client_ns = None
        # The record is read into memory before its files go; the logs stay only when asked for.
        self._read()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
