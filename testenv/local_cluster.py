"""A local Kubernetes cluster of real components, with Argo Workflows, for the end-to-end tests and ``make demo``.

Everything but the node agent is the genuine program built from pinned modules by ``build.py``:

- etcd and kube-apiserver (``controlplane.py``), bound to the host end of the cluster's own veth so that Pods reach
  it from their network namespaces, with the ServiceAccount admission plugin on;
- kube-controller-manager with the controllers a deployment tool relies on (:data:`CONTROLLERS`);
- kube-scheduler, which binds Pods to the one Node;
- kube-proxy in nftables mode and CoreDNS, both inside the cluster's node network namespace, so that Services and
  their DNS names work for Pods and for processes on the host, and their rules vanish with the namespace;
- Argo's workflow-controller and ``argo server``, also inside the node namespace, so their fixed and metrics ports
  never meet another cluster's or the host's; the controller runs with the setting the install asks for
  (``templateReferencing: Strict``, :mod:`pipelines.argo_controller`);
- the node agent (``testenv/node``), which runs each bound Pod's containers as processes.

Every process is tied to this one (``PR_SET_PDEATHSIG``) and logs into one work directory; :meth:`LocalCluster.stop`
stops them in reverse order and removes the network namespace, veths and routes. A crash leaves nothing that the next
start does not sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from pipelines import argo_controller
from testenv import certs, crds, image_mirror, tools
from testenv.controlplane import ApiServing, ControlPlane, ControlPlaneError, free_port, spawn_logged
from testenv.image_mirror import MirroredImage
from testenv.node.network import ClusterNetwork, create_cluster_network, destroy_cluster_network, network_for_index
from testenv.paths import Artifacts
from testenv.rest import KubeApiError, request
from testenv.supply_chain import COSIGN_IMAGE

NODE_NAME = "local-node"
ARGO_NAMESPACE = "argo"
ARGO_VERSION_TAG = "v4.0.5"
EXECUTOR_IMAGE = f"quay.io/argoproj/argoexec:{ARGO_VERSION_TAG}"
#: The registry mirror's port on the cluster's host address (10.243.<n>.1), one per cluster network.
REGISTRY_MIRROR_PORT = 5100
CONTROLLER_CONFIGMAP = "workflow-controller-configmap"
CLUSTER_DOMAIN = "cluster.local"

# The controllers that Deployments, Services, namespaces and ServiceAccount tokens need; nothing that wants a cloud,
# node IPAM or volumes.
CONTROLLERS: tuple[str, ...] = (
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "endpoints-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
    "job-controller",
    "ttl-after-finished-controller",
    # Builds the admin ClusterRole from the ClusterRoles aggregated into it, such as the install's grant role.
    "clusterrole-aggregation-controller",
)


class ClusterStartError(RuntimeError):
    """A component did not come up; the message names it and carries the tail of its log."""


def host_problems(artifacts: Artifacts | None = None) -> list[str]:
    """What this machine lacks to run the cluster, one actionable line each (empty when it can)."""
    problems: list[str] = []
    if platform.system() != "Linux":
        problems.append(f"the local cluster needs Linux (network and mount namespaces); this is {platform.system()}")
        return problems
    if os.geteuid() != 0:
        problems.append("the local cluster needs root: it creates network namespaces, veths and mounts; run as root")
    for tool, package in (
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is missing: run `make host-deps` (installs Debian's {package})")
    if artifacts is None and shutil.which("go") is None:
        problems.append("Go 1.26 or newer must be on PATH to build the cluster's components (`make testenv`)")
    return problems


@dataclass
class _Component:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    process: subprocess.Popen[bytes]


@dataclass
class ClusterTuning:
    """Settings a platform team may change on its own Argo installation; the defaults are Argo's.

    Attributes:
        default_requeue_time: The workflow-controller's ``DEFAULT_REQUEUE_TIME`` (Argo's default is 10s): how soon a
            running workflow is looked at again after a node changes. Lower means the next step starts sooner.
    """

    default_requeue_time: str | None = None


@dataclass
class LocalCluster:
    """The running cluster: addresses, credentials and handles for tests and the demo."""

    artifacts: Artifacts | None
    tuning: ClusterTuning = field(default_factory=ClusterTuning)
    network: ClusterNetwork | None = None
    control_plane: ControlPlane | _AttachedControlPlane | None = None
    workdir: Path = field(default_factory=Path)
    argo_server_url: str = ""
    metrics_url: str = ""
    start_seconds: float = 0.0
    owned: bool = True
    #: ``host:port`` of the registry every public image name is pulled through (see testenv/image_mirror.py).
    registry_mirror: str = ""
    #: What this process pushed there when it started the cluster, by image name ("steps").
    mirrored: dict[str, MirroredImage] = field(default_factory=dict)
    _components: list[_Component] = field(default_factory=list)
    _api: client.ApiClient | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @property
    def built(self) -> Artifacts:
        """The programs this cluster runs; only a cluster this process starts has them."""
        if self.artifacts is None:
            raise ClusterStartError("an attached cluster is run by another process; it cannot be started here")
        return self.artifacts

    def start(self, timeout: float = 240.0, progress: Callable[[str], None] | None = None) -> None:
        """Bring every component up and return once a Pod can be scheduled and run, or raise and clean up."""
        say = progress or (lambda _msg: None)
        started = time.monotonic()
        deadline = started + timeout
        try:
            self.workdir = Path(tempfile.mkdtemp(prefix="bluegreen-cluster-"))
            say("network: node namespace, bridge and routes")
            net = self.network = create_cluster_network(owner_pid=os.getpid())
            say("etcd and kube-apiserver")
            self._start_control_plane(net, deadline)
            say("kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS")
            self._start_kubernetes_components(net)
            say("steps image: built from this tree, pushed to the registry mirror")
            self._start_registry_mirror(net)
            say("node agent")
            self._start_node_agent(net)
            say("Argo workflow-controller and argo server")
            self._start_argo(net)
            say("waiting for the node, the default ServiceAccount, DNS and Argo")
            self._wait_until_usable(deadline)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop every component (last started first), then the control plane, then the network. Idempotent.

        A cluster this process only attached to (:meth:`attach`) is left running: only the clients close.
        """
        self._api_close()
        if not self.owned:
            return
        for component in reversed(self._components):
            _terminate(component.process, grace=15.0 if component.name == "node-agent" else 5.0)
        self._components.clear()
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.network is not None:
            destroy_cluster_network(self.network)
            self.network = None
        if self.workdir != Path() and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- attaching to a cluster another process runs ------------------------------------------------------------

    @property
    def description_path(self) -> Path:
        """Where a running cluster describes itself for :meth:`attach`."""
        return self.workdir / "cluster.json"

    def write_description(self) -> Path:
        """Write what another process needs to use this cluster (see :meth:`attach`)."""
        assert self.control_plane is not None and self.network is not None
        pki = self.control_plane.pki
        description = {
            "kubeconfig": str(self.kubeconfig_path),
            "server": self.server,
            "networkIndex": self.network.index,
            "argoServer": self.argo_server_url,
            "controllerMetrics": self.metrics_url,
            "registryMirror": self.registry_mirror,
            "workdir": str(self.workdir),
            "caCert": str(pki.ca_cert),
            "adminCert": str(pki.admin_cert),
            "adminKey": str(pki.admin_key),
        }
        self.description_path.write_text(json.dumps(description, indent=2) + "\n")
        return self.description_path

    @classmethod
    def attach(cls, description: Path) -> LocalCluster:
        """A handle on a cluster that another process (``make cluster``) started; :meth:`stop` leaves it running."""
        info = json.loads(description.read_text())
        cluster = cls(None, owned=False)
        cluster.workdir = Path(info["workdir"])
        cluster.network = network_for_index(int(info["networkIndex"]))
        cluster.control_plane = _AttachedControlPlane(
            kubeconfig_path=Path(info["kubeconfig"]),
            server=str(info["server"]),
            pki=_ClientPki(Path(info["caCert"]), Path(info["adminCert"]), Path(info["adminKey"])),
        )
        cluster.argo_server_url = str(info["argoServer"])
        cluster.metrics_url = str(info["controllerMetrics"])
        cluster.registry_mirror = str(info.get("registryMirror", ""))
        return cluster

    # -- what users and tests use ----------------------------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        """The admin kubeconfig, as `kubectl`, `argo` and the tests use it."""
        assert self.control_plane is not None
        return self.control_plane.kubeconfig_path

    @property
    def server(self) -> str:
        """The API server URL."""
        assert self.control_plane is not None
        return self.control_plane.server

    @property
    def tools_dir(self) -> Path:
        """A directory holding only ``kubectl`` and ``argo``, to put first on PATH."""
        return self.workdir / "tools"

    def configuration(self) -> client.Configuration:
        """A fresh admin client configuration."""
        assert self.control_plane is not None
        cfg = client.Configuration()
        cfg.host = self.control_plane.server
        cfg.ssl_ca_cert = str(self.control_plane.pki.ca_cert)
        cfg.cert_file = str(self.control_plane.pki.admin_cert)
        cfg.key_file = str(self.control_plane.pki.admin_key)
        return cfg

    @property
    def api(self) -> client.ApiClient:
        """An admin API client owned by the cluster."""
        if self._api is None:
            self._api = client.ApiClient(self.configuration())
        return self._api

    def tool_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a user's shell has after pasting :meth:`shell_exports`."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig_path)
        env["PATH"] = f"{self.tools_dir}{os.pathsep}{env.get('PATH', '')}"
        env.pop("ARGO_SERVER", None)
        env.update(extra or {})
        return env

    def shell_exports(self) -> str:
        """The two lines a user pastes to reach this cluster with the built `kubectl` and `argo`."""
        return f"export KUBECONFIG={self.kubeconfig_path}\nexport PATH={self.tools_dir}:$PATH"

    def run_tool(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 300.0,
        check: bool = True,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ...`` or ``argo ...`` exactly as a user would in a shell with :meth:`shell_exports`."""
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, list(argv), proc.stdout, proc.stderr)
        return proc

    def log_tail(self, component: str, lines: int = 40) -> str:
        """The end of one component's log, for failure messages."""
        path = self.workdir / f"{component}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the parts -------------------------------------------------------------------------------------------------

    def _start_control_plane(self, net: ClusterNetwork, deadline: float) -> None:
        serving = ApiServing(
            bind_address=net.host_ip,
            service_cidr=net.service_cidr,
            extra_serving_ips=(net.kubernetes_service_ip,),
            with_controllers=True,
        )
        cp = self.control_plane = ControlPlane(self.built, serving)
        seed = _seed_dir(self.built, net)
        seeded = seed.is_dir()
        try:
            cp.start(timeout=max(10.0, deadline - time.monotonic()), etcd_seed=seed if seeded else None)
        except ControlPlaneError as exc:
            raise ClusterStartError(str(exc)) from exc
        docs = crds.load_crds(self.built.crd_dirs.values())
        if seeded:
            crds.wait_established(self.api, [str(d["metadata"]["name"]) for d in docs])
        else:
            crds.install_crds(self.api, docs)
            # The slow part of a cold start is the API server compiling Argo's CRD schemas; later starts copy the
            # store instead. Saving restarts etcd and the API server, so the admin client must reconnect.
            self._api_close()
            cp.save_etcd_seed(seed, timeout=max(10.0, deadline - time.monotonic()))

    def _start_kubernetes_components(self, net: ClusterNetwork) -> None:
        cp = self.control_plane
        assert isinstance(cp, ControlPlane)
        kubeconfig = str(cp.kubeconfig_path)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.built.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--controllers={','.join(CONTROLLERS)}",
                # Each controller acts under its own ServiceAccount, so the cluster's RBAC is the real one.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={cp.pki.sa_private_key}",
                f"--root-ca-file={cp.pki.ca_cert}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.built.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
            ],
        )
        self._spawn(
            "kube-proxy",
            net.run_in_node(
                [
                    str(self.built.kube_proxy),
                    f"--kubeconfig={kubeconfig}",
                    "--proxy-mode=nftables",
                    f"--hostname-override={NODE_NAME}",
                    f"--cluster-cidr={net.pod_cidr}",
                    # Pods share one bridge: without masquerading, a reply from a backend Pod to a client Pod on
                    # the same bridge would skip the node's conntrack and reach the client from the wrong address.
                    "--masquerade-all=true",
                    # The node namespace is ours alone; the host's conntrack sysctls are not kube-proxy's to tune.
                    "--conntrack-max-per-core=0",
                    "--metrics-bind-address=127.0.0.1:10249",
                    "--healthz-bind-address=127.0.0.1:10256",
                ]
            ),
        )
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {net.gateway_ip}
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
        )
        self._spawn("coredns", net.run_in_node([str(self.built.coredns), "-conf", str(corefile)]))

    def _start_registry_mirror(self, net: ClusterNetwork) -> None:
        """Crane's registry on the host address (Pods reach it too), holding the steps image of this tree."""
        try:
            crane = tools.program("crane")
        except tools.ToolsNotBuilt as missing:
            raise ClusterStartError(f"the registry mirror needs crane: {missing}") from None
        self.registry_mirror = f"{net.host_ip}:{REGISTRY_MIRROR_PORT}"
        self._spawn("registry-mirror", [str(crane), "registry", "serve", "--address", self.registry_mirror])
        try:
            built = image_mirror.build_images(["steps"])
            built += [image_mirror.assemble(image) for image in self._binary_images()]
            image_mirror.wait_until_serving(self.registry_mirror)
            self.mirrored = {
                image.name: image for image in (image_mirror.push(b, self.registry_mirror) for b in built)
            }
        except image_mirror.MirrorError as error:
            raise ClusterStartError(str(error)) from None

    def _binary_images(self) -> list[image_mirror.BinaryImage]:
        """Argo's executor and cosign, as their upstream images lay out the programs built here."""
        try:
            cosign = tools.program("cosign")
        except tools.ToolsNotBuilt as missing:
            raise ClusterStartError(f"the cosign image needs cosign: {missing}") from None
        return [
            # Argo's executor image: the static argoexec on PATH, run as its user 8737; `argoexec init` copies
            # itself from PATH into the Pod's /var/run/argo.
            image_mirror.BinaryImage(
                "argoexec", EXECUTOR_IMAGE, self.built.argoexec, "/bin/argoexec", "8737:8737", "/bin"
            ),
            # ko builds the official cosign image on distroless: the program at /ko-app/cosign is the entrypoint, so
            # a container's args are its subcommand and flags, as distroless's nonroot user.
            image_mirror.BinaryImage(
                "cosign", COSIGN_IMAGE, cosign, "/ko-app/cosign", "65532:65532", "/ko-app:/usr/local/bin:/usr/bin:/bin"
            ),
        ]

    def _start_node_agent(self, net: ClusterNetwork) -> None:
        cp = self.control_plane
        assert isinstance(cp, ControlPlane)
        agent_work = self.workdir / "node"
        agent_work.mkdir()
        # The agent's kubelet endpoint (logs) listens on the node address; the API server checks this certificate.
        serving_cert, serving_key = certs.issue_serving_certificate(
            cp.pki, self.workdir / "node-pki", f"system:node:{NODE_NAME}", [net.node_ip]
        )
        self._spawn(
            "node-agent",
            [
                _python(),
                "-m",
                "testenv.node",
                "--kubeconfig",
                str(cp.kubeconfig_path),
                "--network-index",
                str(net.index),
                "--workdir",
                str(agent_work),
                "--argoexec",
                str(self.built.argoexec),
                "--node-name",
                NODE_NAME,
                "--kubelet-serving-cert",
                str(serving_cert),
                "--kubelet-serving-key",
                str(serving_key),
                "--registry-mirror",
                self.registry_mirror,
            ],
            cwd=Path(__file__).resolve().parent.parent,
        )

    def _start_argo(self, net: ClusterNetwork) -> None:
        cp = self.control_plane
        assert isinstance(cp, ControlPlane)
        _ensure_namespace(self.api, ARGO_NAMESPACE)
        metrics_port = 9090
        controller_config = {
            "metricsConfig": f"enabled: true\nport: {metrics_port}\n",
            "executor": "imagePullPolicy: IfNotPresent\n",
            # What the install asks of every cluster: Workflows only from WorkflowTemplates, nothing of their own
            # that reaches a Pod. Set at start, so the controller never runs a Workflow without it.
            **argo_controller.controller_config(),
        }
        _apply_configmap(self.api, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP, controller_config)
        self._spawn_workflow_controller(net)
        server_port = 2746
        self._spawn(
            "argo-server",
            net.run_in_node(
                [
                    str(self.built.argo),
                    "server",
                    f"--kubeconfig={cp.kubeconfig_path}",
                    f"--namespace={ARGO_NAMESPACE}",
                    "--auth-mode=server",
                    "--secure=false",
                    f"--port={server_port}",
                    "--loglevel=info",
                ]
            ),
        )
        self.argo_server_url = f"http://{net.node_ip}:{server_port}"
        self.metrics_url = f"https://{net.node_ip}:{metrics_port}/metrics"
        self.tools_dir.mkdir(exist_ok=True)
        for tool in (self.built.kubectl, self.built.argo):
            (self.tools_dir / tool.name).symlink_to(tool)

    def _spawn_workflow_controller(self, net: ClusterNetwork) -> None:
        cp = self.control_plane
        assert cp is not None
        env = {"LEADER_ELECTION_DISABLE": "true", "LEADER_ELECTION_IDENTITY": NODE_NAME}
        if self.tuning.default_requeue_time:
            env["DEFAULT_REQUEUE_TIME"] = self.tuning.default_requeue_time
        self._spawn(
            "workflow-controller",
            net.run_in_node(
                [
                    str(self.built.workflow_controller),
                    f"--kubeconfig={cp.kubeconfig_path}",
                    f"--namespace={ARGO_NAMESPACE}",
                    f"--configmap={CONTROLLER_CONFIGMAP}",
                    f"--executor-image={EXECUTOR_IMAGE}",
                    "--loglevel=info",
                ]
            ),
            env=env,
        )

    def retune(self, tuning: ClusterTuning, timeout: float = 60.0) -> None:
        """Restart only the workflow-controller with other settings, as a platform team would roll it out.

        Running workflows carry on: the new controller picks them up from the API, as after any controller restart.
        """
        if not self.owned or self.network is None:
            raise ClusterStartError("only a cluster this process started can be retuned")
        for component in [c for c in self._components if c.name == "workflow-controller"]:
            _terminate(component.process, grace=10.0)
            self._components.remove(component)
        self.tuning = tuning
        self._spawn_workflow_controller(self.network)
        deadline = time.monotonic() + timeout
        self._poll(deadline, "the restarted workflow-controller's metrics", lambda: _http_ok(self.metrics_url, True))

    def _wait_until_usable(self, deadline: float) -> None:
        api = self.api
        self._poll(deadline, "the node to be Ready", lambda: _node_ready(api, NODE_NAME))
        self._poll(
            deadline,
            "the default ServiceAccount",
            lambda: _exists(api, "/api/v1/namespaces/default/serviceaccounts/default"),
        )
        self._poll(
            deadline,
            "the kube-root-ca.crt ConfigMap",
            lambda: _exists(api, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"),
        )
        self._poll(deadline, "argo server", lambda: _http_ok(f"{self.argo_server_url}/api/v1/version"))
        self._poll(deadline, "the workflow-controller's metrics", lambda: _http_ok(self.metrics_url, insecure=True))

    def _poll(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        # Bounded poll: start-up has no single watchable signal across these components.
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterStartError(f"timed out waiting for {what}\n{self._all_logs()}")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for component in self._components:
            code = component.process.poll()
            if code is not None:
                raise ClusterStartError(f"{component.name} exited with {code}:\n{self.log_tail(component.name)}")

    def _all_logs(self) -> str:
        return "\n".join(f"--- {c.name} ---\n{self.log_tail(c.name, 15)}" for c in self._components)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        process = spawn_logged(argv, self.workdir / f"{name}.log", cwd=cwd or self.workdir, env=env)
        self._components.append(_Component(name, argv, env, process))

    def _api_close(self) -> None:
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None


@dataclass(frozen=True)
class _ClientPki:
    ca_cert: Path
    admin_cert: Path
    admin_key: Path


@dataclass
class _AttachedControlPlane:
    """The parts of :class:`ControlPlane` a client needs, for a control plane another process runs."""

    kubeconfig_path: Path
    server: str
    pki: _ClientPki

    def stop(self) -> None:
        """Not ours to stop."""


def _python() -> str:
    return sys.executable


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _seed_dir(artifacts: Artifacts, net: ClusterNetwork) -> Path:
    # The store holds the `kubernetes` Service's ClusterIP, so a store made for another Service range is not reused.
    flags = hashlib.sha256(
        (Path(__file__).parent / "controlplane.py").read_bytes() + net.service_cidr.encode()
    ).hexdigest()[:12]
    return artifacts.root / f"etcd-seed-cluster-{flags}"


def _exists(api: client.ApiClient, path: str) -> bool:
    try:
        request(api, "GET", path)
    except KubeApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _node_ready(api: client.ApiClient, name: str) -> bool:
    try:
        node = request(api, "GET", f"/api/v1/nodes/{name}")
    except KubeApiError as exc:
        if exc.status == 404:
            return False
        raise
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _http_ok(url: str, insecure: bool = False) -> bool:
    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        request(
            api,
            "POST",
            "/api/v1/namespaces",
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
    except KubeApiError as exc:
        if exc.status != 409:
            raise


def _apply_configmap(api: client.ApiClient, namespace: str, name: str, data: Mapping[str, str]) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)}
    request(
        api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/{name}",
        query={"fieldManager": "testenv", "force": True},
        body=body,
        content_type="application/apply-patch+yaml",
    )


def describe(cluster: LocalCluster) -> dict[str, Any]:
    """What a person needs to reach the cluster, as printed by ``make cluster``."""
    return {
        "kubeconfig": str(cluster.kubeconfig_path),
        "server": cluster.server,
        "argoServer": cluster.argo_server_url,
        "controllerMetrics": cluster.metrics_url,
        "workdir": str(cluster.workdir),
        "startSeconds": round(cluster.start_seconds, 1),
    }


__all__ = ["ClusterStartError", "ClusterTuning", "LocalCluster", "describe", "host_problems"]
