"""The cluster a test session talks to: a local control plane, or an existing one.

Tests only see a kubeconfig, a server URL and API clients, so the same tests run against the
throw-away control plane from ``controlplane.py`` or, with ``BLUEGREEN_TEST_KUBECONFIG``, against
a real cluster. In both cases the third-party CRDs are server-side applied first.

The first local session per cache entry installs the CRDs (slow: the API server spends ~10 s
compiling Argo's schemas) and saves the resulting etcd store next to the artifacts; later
sessions start from a copy of it, which is what keeps warm start-up to a few seconds.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from testenv import crds
from testenv.controlplane import ControlPlane
from testenv.paths import Artifacts
from testenv.rest import ImpersonatingApiClient

KUBECONFIG_ENV = "BLUEGREEN_TEST_KUBECONFIG"
SEED_DIR = "etcd-seed"


@dataclass
class KubeCluster:
    """Handle on the cluster under test."""

    kubeconfig_path: Path
    server: str
    start_seconds: float
    artifacts: Artifacts
    local: bool
    seeded: bool = False
    _configuration: client.Configuration | None = None
    _clients: list[client.ApiClient] = field(default_factory=list)
    _control_plane: ControlPlane | None = None

    def configuration(self) -> client.Configuration:
        """A fresh copy of the admin client configuration."""
        assert self._configuration is not None
        cfg: client.Configuration = client.Configuration()
        for key, value in vars(self._configuration).items():
            setattr(cfg, key, value)
        return cfg

    def admin_api_client(self) -> client.ApiClient:
        """A new admin ApiClient; closed automatically when the cluster is shut down."""
        api = client.ApiClient(self.configuration())
        self._clients.append(api)
        return api

    def impersonating_api_client(self, namespace: str, service_account: str) -> client.ApiClient:
        """An ApiClient acting as ``system:serviceaccount:<namespace>:<service_account>``."""
        api = ImpersonatingApiClient.as_service_account(self.configuration(), namespace, service_account)
        self._clients.append(api)
        return api

    def close(self) -> None:
        """Close every client handed out and stop the local control plane, if any."""
        for api in self._clients:
            api.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        if self._control_plane is not None:
            self._control_plane.stop()
            self._control_plane = None


def _local_configuration(cp: ControlPlane) -> client.Configuration:
    # Pointing at the PKI files directly (rather than loading the kubeconfig) avoids the
    # kubeconfig loader's temporary copies of embedded certificates.
    cfg = client.Configuration()
    cfg.host = cp.server
    cfg.ssl_ca_cert = str(cp.pki.ca_cert)
    cfg.cert_file = str(cp.pki.admin_cert)
    cfg.key_file = str(cp.pki.admin_key)
    return cfg


def _install_crds(cluster: KubeCluster, docs: list[dict[str, Any]]) -> None:
    api = cluster.admin_api_client()
    crds.install_crds(api, docs)


def seed_dir(artifacts: Artifacts) -> Path:
    """Where the saved etcd store lives, keyed by the control plane's flags.

    A store made with other flags (another Service IP range, say) must not be reused.
    """
    flags = hashlib.sha256((Path(__file__).parent / "controlplane.py").read_bytes()).hexdigest()[:12]
    return artifacts.root / f"{SEED_DIR}-{flags}"


def start_local(artifacts: Artifacts, timeout: float = 120.0) -> KubeCluster:
    """Start etcd + kube-apiserver (from the saved store if there is one) with all CRDs established."""
    started = time.monotonic()
    docs = crds.load_crds(artifacts.crd_dirs.values())
    seed = seed_dir(artifacts)
    seeded = seed.is_dir()
    cp = ControlPlane(artifacts)
    cp.start(timeout=timeout, etcd_seed=seed if seeded else None)
    cluster = KubeCluster(
        kubeconfig_path=cp.kubeconfig_path,
        server=cp.server,
        start_seconds=0.0,
        artifacts=artifacts,
        local=True,
        seeded=seeded,
        _configuration=_local_configuration(cp),
        _control_plane=cp,
    )
    try:
        if seeded:
            crds.wait_established(cluster.admin_api_client(), [str(d["metadata"]["name"]) for d in docs])
        else:
            _install_crds(cluster, docs)
            cp.save_etcd_seed(seed, timeout=timeout)
    except BaseException:
        cluster.close()
        raise
    cluster.start_seconds = time.monotonic() - started
    return cluster


def connect_existing(kubeconfig: Path, artifacts: Artifacts) -> KubeCluster:
    """Use the cluster of ``kubeconfig`` (its current context) after applying the CRDs to it."""
    started = time.monotonic()
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    cluster = KubeCluster(
        kubeconfig_path=kubeconfig,
        server=str(cfg.host),
        start_seconds=0.0,
        artifacts=artifacts,
        local=False,
        _configuration=cfg,
    )
    try:
        _install_crds(cluster, crds.load_crds(artifacts.crd_dirs.values()))
    except BaseException:
        cluster.close()
        raise
    cluster.start_seconds = time.monotonic() - started
    return cluster


def existing_kubeconfig() -> Path | None:
    """The kubeconfig named by ``BLUEGREEN_TEST_KUBECONFIG``, if set."""
    value = os.environ.get(KUBECONFIG_ENV)
    return Path(value).expanduser() if value else None
