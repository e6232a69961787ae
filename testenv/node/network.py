"""The local cluster's network: one "node" network namespace per running cluster, one per Pod.

Everything lives in network namespaces the cluster creates itself, so no traffic leaves the
machine and tearing a namespace down takes its links, routes and nftables tables with it:

- Each running cluster owns an index ``n`` (0..31), picked free under an ``flock`` and recorded
  in an owner pid file, so a crashed run's leftovers can be told from a live neighbour's.
- The node namespace ``bgnode-<n>`` holds the bridge ``bgbr0`` (10.244.<n>.1/24, the Pods'
  gateway and DNS address) and forwards between the bridge and a veth pair to the host
  (``bgh<n>`` 10.243.<n>.1/30 on the host side, 10.243.<n>.2 inside). kube-proxy runs in it.
- The host routes the Pod CIDR and the Service CIDR ``10.<96+n>.0.0/16`` via the node side, so
  the host reaches Pod IPs and ClusterIPs, and the API server binds 10.243.<n>.1 where Pods reach it.
- Each Pod gets ``bgpod-<n>-<uid[:8]>`` with a veth into the bridge, an address from .2-.254,
  loopback up and a default route via the gateway.

Everything is done with iproute2 (``ip``), the same tool an operator would use to inspect it.
See https://man7.org/linux/man-pages/man8/ip-netns.8.html.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CLUSTERS = 32
STATE_DIR = Path("/run/argo-bluegreen")
LOCK_FILE = STATE_DIR / "network.lock"
BRIDGE = "bgbr0"
NODE_NETNS_PREFIX = "bgnode-"
POD_NETNS_PREFIX = "bgpod-"
HOST_VETH_PREFIX = "bgh"
NODE_VETH_PREFIX = "bgn"
POD_HOST_VETH_PREFIX = "bgv"
POD_IFACE = "eth0"
FIRST_POD_HOST = 2
LAST_POD_HOST = 254
KILL_WAIT_SECONDS = 10.0
_CLONE_NEWNET = 0x40000000


class NetworkError(RuntimeError):
    """An ``ip`` command failed, or no cluster index is free."""


@dataclass(frozen=True)
class ClusterNetwork:
    """The addresses and names of one running cluster's network (see the module docstring)."""

    index: int
    node_netns: str
    host_ip: str
    node_ip: str
    bridge: str
    gateway_ip: str
    pod_cidr: str
    service_cidr: str
    kubernetes_service_ip: str

    def run_in_node(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside the node network namespace."""
        return ["ip", "netns", "exec", self.node_netns, *argv]

    @property
    def bridge_mac(self) -> str:
        """The bridge's (the Pods' gateway's) MAC: locally administered, from the gateway address."""
        octets = [int(part) for part in self.gateway_ip.split(".")]
        return "0a:58:" + ":".join(f"{octet:02x}" for octet in octets)

    @property
    def host_veth(self) -> str:
        """The host side of the host<->node veth pair."""
        return f"{HOST_VETH_PREFIX}{self.index}"

    @property
    def node_veth(self) -> str:
        """The node side of the host<->node veth pair."""
        return f"{NODE_VETH_PREFIX}{self.index}"


@dataclass(frozen=True)
class PodNetwork:
    """One Pod's network namespace and address."""

    netns: str
    ip: str
    host_veth: str

    @property
    def netns_path(self) -> str:
        """The bind-mounted namespace file that ``setns`` opens."""
        return f"/run/netns/{self.netns}"


def network_for_index(index: int) -> ClusterNetwork:
    """The names and addresses cluster ``index`` uses (nothing is created)."""
    if not 0 <= index < MAX_CLUSTERS:
        raise ValueError(f"cluster index must be in 0..{MAX_CLUSTERS - 1}, got {index}")
    return ClusterNetwork(
        index=index,
        node_netns=f"{NODE_NETNS_PREFIX}{index}",
        host_ip=f"10.243.{index}.1",
        node_ip=f"10.243.{index}.2",
        bridge=BRIDGE,
        gateway_ip=f"10.244.{index}.1",
        pod_cidr=f"10.244.{index}.0/24",
        service_cidr=f"10.{96 + index}.0.0/16",
        kubernetes_service_ip=f"10.{96 + index}.0.1",
    )


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _owner_file(index: int) -> Path:
    return STATE_DIR / f"cluster-{index}.owner"


def _process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/<pid>/stat), or None if it is gone.

    Stored beside the pid so that a recycled pid is never mistaken for a live owner.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its closing paren is fixed.
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(index: int) -> bool:
    try:
        pid_text, start = _owner_file(index).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return _process_start_time(pid) == start


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def list_netns() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_netns_processes(netns: str) -> None:
    """SIGKILL every process inside ``netns`` and wait until they are gone (bounded).

    A namespace must not be deleted under live programs, and a caller that reports the sweep
    done must be able to rely on it.
    """
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while time.monotonic() < deadline:
        pids = [int(w) for w in _ip("netns", "pids", netns, check=False).stdout.split() if w.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Bounded poll: a killed process leaves the namespace asynchronously.
        time.sleep(0.02)


def _delete_netns(netns: str) -> None:
    _kill_netns_processes(netns)
    _ip("netns", "delete", netns, check=False)


def _index_resources(index: int) -> list[str]:
    """What exists for cluster ``index``, described as ``kind:name``."""
    net = network_for_index(index)
    found = [f"netns:{name}" for name in list_netns() if name.startswith(f"{POD_NETNS_PREFIX}{index}-")]
    if net.node_netns in list_netns():
        found.append(f"netns:{net.node_netns}")
    if _ip("link", "show", net.host_veth, check=False).returncode == 0:
        found.append(f"link:{net.host_veth}")
    for cidr in (net.pod_cidr, net.service_cidr):
        if _ip("route", "show", cidr, check=False).stdout.strip():
            found.append(f"route:{cidr}")
    return found


def _remove_index(index: int) -> list[str]:
    net = network_for_index(index)
    removed = _index_resources(index)
    # Pods first, so no program outlives the node namespace its traffic flows through.
    for item in removed:
        kind, name = item.split(":", 1)
        if kind == "netns" and name != net.node_netns:
            _delete_netns(name)
    if f"netns:{net.node_netns}" in removed:
        _delete_netns(net.node_netns)
    # Deleting the node namespace destroys the veth pair and with it the routes via it; these are
    # only for a pair whose node side never made it into the namespace.
    _ip("link", "delete", net.host_veth, check=False)
    for cidr in (net.pod_cidr, net.service_cidr):
        _ip("route", "delete", cidr, check=False)
    _owner_file(index).unlink(missing_ok=True)
    return removed


def _sweep_locked() -> list[str]:
    removed: list[str] = []
    for index in range(MAX_CLUSTERS):
        if _owner_alive(index):
            continue
        removed.extend(_remove_index(index))
    return removed


def sweep_leftovers() -> list[str]:
    """Remove what clusters whose owner died left behind; return what was removed.

    Safe beside live clusters: an index is only touched when its owner pid file names no live
    process, and creation writes that file under the same lock before creating anything.
    """
    with _locked():
        return _sweep_locked()


def create_cluster_network(owner_pid: int | None = None) -> ClusterNetwork:
    """Pick a free index, sweep dead owners' leftovers and set up the node namespace and routes.

    Args:
        owner_pid: The process whose life the network belongs to (default: this one). Once it
            is gone, the next :func:`create_cluster_network` or :func:`sweep_leftovers` removes it.
    """
    pid = os.getpid() if owner_pid is None else owner_pid
    start = _process_start_time(pid)
    if start is None:
        raise NetworkError(f"owner process {pid} does not exist")
    with _locked():
        _sweep_locked()
        free = [i for i in range(MAX_CLUSTERS) if not _owner_alive(i)]
        if not free:
            raise NetworkError(f"all {MAX_CLUSTERS} cluster network indexes are in use")
        net = network_for_index(free[0])
        _owner_file(net.index).write_text(f"{pid} {start}\n")
        try:
            _setup(net)
        except BaseException:
            _remove_index(net.index)
            raise
    return net


def _setup(net: ClusterNetwork) -> None:
    ns = net.node_netns
    _ip("netns", "add", ns)
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("link", "add", net.host_veth, "type", "veth", "peer", "name", net.node_veth, "netns", ns)
    _ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_veth)
    _ip("link", "set", net.host_veth, "up")
    _ip("-n", ns, "addr", "add", f"{net.node_ip}/30", "dev", net.node_veth)
    _ip("-n", ns, "link", "set", net.node_veth, "up")
    # A fixed address: a bridge otherwise takes the lowest MAC among its ports, so the Pods' gateway
    # MAC would change whenever such a Pod comes or goes, under every Pod's cached neighbour entry.
    _ip("-n", ns, "link", "add", net.bridge, "address", net.bridge_mac, "type", "bridge")
    _ip("-n", ns, "addr", "add", f"{net.gateway_ip}/24", "dev", net.bridge)
    _ip("-n", ns, "link", "set", net.bridge, "up")
    _ip("-n", ns, "route", "add", "default", "via", net.host_ip)
    # Forwarding is per network namespace; the node routes between the bridge and the host.
    forward = subprocess.run(
        net.run_in_node(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]),
        capture_output=True,
        text=True,
        check=False,
    )
    if forward.returncode != 0:
        raise NetworkError(f"enabling ip_forward in {ns} failed: {forward.stderr.strip()}")
    _ip("route", "add", net.pod_cidr, "via", net.node_ip)
    _ip("route", "add", net.service_cidr, "via", net.node_ip)


def destroy_cluster_network(net: ClusterNetwork) -> None:
    """Remove the cluster's namespaces (Pods' too), links, routes and owner file. Idempotent."""
    with _locked():
        _remove_index(net.index)


def pod_netns_name(net: ClusterNetwork, pod_uid: str) -> str:
    """The network namespace name of the Pod with ``pod_uid``."""
    return f"{POD_NETNS_PREFIX}{net.index}-{pod_uid[:8]}"


class PodAddresses:
    """Hands out Pod IPs from .2-.254 of the cluster's Pod CIDR, round-robin; thread-safe.

    Like the host-local IPAM plugin, it keeps a cursor at the last address it reserved and
    searches onwards from there, so an address just released is the last one handed out again.
    Reusing it at once would meet neighbour entries that still map it to the old Pod's MAC.
    """

    def __init__(self, net: ClusterNetwork) -> None:
        self._net = net
        self._lock = threading.Lock()
        self._in_use: dict[str, str] = {}
        self._last_reserved = LAST_POD_HOST

    def allocate(self, owner: str) -> str:
        """A free address for ``owner`` (the same one again if it already has one)."""
        with self._lock:
            if owner in self._in_use:
                return self._in_use[owner]
            taken = set(self._in_use.values())
            base = ipaddress.ip_network(self._net.pod_cidr).network_address
            span = LAST_POD_HOST - FIRST_POD_HOST + 1
            for step in range(1, span + 1):
                host = FIRST_POD_HOST + (self._last_reserved - FIRST_POD_HOST + step) % span
                candidate = str(base + host)
                if candidate not in taken:
                    self._in_use[owner] = candidate
                    self._last_reserved = host
                    return candidate
        raise NetworkError(f"no free Pod IP left in {self._net.pod_cidr}")

    def release(self, owner: str) -> None:
        """Return ``owner``'s address to the pool."""
        with self._lock:
            self._in_use.pop(owner, None)


def forget_neighbour(net: ClusterNetwork, ip: str) -> None:
    """Drop the node namespace's neighbour (ARP) entry for Pod address ``ip``, whatever its state.

    An entry left by a previous owner of the address names that Pod's MAC; while it stays
    REACHABLE the node keeps sending to a MAC no port has, so the new Pod is unreachable until the
    entry ages out (tens of seconds). Without an entry the next packet asks anew, as a CNI plugin
    arranges when it hands out an address.
    """
    _ip("-n", net.node_netns, "neigh", "flush", "to", ip, check=False)


def create_pod_network(net: ClusterNetwork, pod_uid: str, ip: str) -> PodNetwork:
    """Create the Pod's namespace with ``ip`` on a veth into the bridge (replacing a stale one)."""
    netns = pod_netns_name(net, pod_uid)
    host_veth = f"{POD_HOST_VETH_PREFIX}{pod_uid[:8]}"
    pod = PodNetwork(netns=netns, ip=ip, host_veth=host_veth)
    destroy_pod_network(net, pod)
    try:
        _ip("netns", "add", netns)
        _ip("-n", net.node_netns, "link", "add", host_veth, "type", "veth", "peer", "name", POD_IFACE, "netns", netns)
        _ip("-n", net.node_netns, "link", "set", host_veth, "master", net.bridge)
        _ip("-n", net.node_netns, "link", "set", host_veth, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{ip}/24", "dev", POD_IFACE)
        _ip("-n", netns, "link", "set", POD_IFACE, "up")
        _ip("-n", netns, "route", "add", "default", "via", net.gateway_ip)
        forget_neighbour(net, ip)
    except BaseException:
        destroy_pod_network(net, pod)
        raise
    return pod


def destroy_pod_network(net: ClusterNetwork, pod: PodNetwork) -> None:
    """Kill what still runs in the Pod's namespace and delete it (its veth goes with it). Idempotent."""
    if pod.netns in list_netns():
        _delete_netns(pod.netns)
    _ip("-n", net.node_netns, "link", "delete", pod.host_veth, check=False)
    forget_neighbour(net, pod.ip)


def sweep_pod_networks(net: ClusterNetwork) -> list[str]:
    """Delete every Pod namespace of this cluster (a restarted node agent starts from none)."""
    removed = [name for name in list_netns() if name.startswith(f"{POD_NETNS_PREFIX}{net.index}-")]
    for name in removed:
        _delete_netns(name)
    return removed


def listen_in_node(net: ClusterNetwork, port: int) -> socket.socket:
    """A TCP socket listening on the node address inside the node namespace (port 0: any free one).

    A socket belongs to the network namespace it was created in, whichever thread later uses
    it; so a short-lived thread enters the node namespace (``setns`` changes only the calling
    thread's), creates and binds the socket there, and the agent serves it from its own threads.
    """
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def create() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        target = os.open(f"/run/netns/{net.node_netns}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise NetworkError(f"setns {net.node_netns}: {os.strerror(ctypes.get_errno())}")
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((net.node_ip, port))
            listener.listen(64)
            result.append(listener)
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.close(target)
        # The thread ends here, still in the node namespace; no other thread ever entered it.

    thread = threading.Thread(target=create, name="listen-in-node", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
