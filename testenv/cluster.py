"""The cluster a test session talks to: the session's local cluster, or an existing one.

Tests only see a kubeconfig, a server URL and API clients, so the same tests run against the local cluster of real
components from ``local_cluster.py`` (one per session, shared with the end-to-end tests) or, with
``BLUEGREEN_TEST_KUBECONFIG``, against a cluster that is already running. Either way real controllers turn
Deployments into Pods: the tests that need Pods need nothing else.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config

from testenv import crds
from testenv.local_cluster import LocalCluster
from testenv.paths import Artifacts
from testenv.rest import ImpersonatingApiClient

KUBECONFIG_ENV = "BLUEGREEN_TEST_KUBECONFIG"


@dataclass
class KubeCluster:
    """Handle on the cluster under test; closing it closes the clients it handed out, never the cluster."""

    kubeconfig_path: Path
    server: str
    start_seconds: float
    artifacts: Artifacts
    local: bool
    _configuration: client.Configuration | None = None
    _clients: list[client.ApiClient] = field(default_factory=list)

    def configuration(self) -> client.Configuration:
        """A fresh copy of the admin client configuration."""
        assert self._configuration is not None
        cfg: client.Configuration = client.Configuration()
        for key, value in vars(self._configuration).items():
            setattr(cfg, key, value)
        return cfg

    def admin_api_client(self) -> client.ApiClient:
        """A new admin ApiClient; closed automatically when the handle is closed."""
        api = client.ApiClient(self.configuration())
        self._clients.append(api)
        return api

    def impersonating_api_client(self, namespace: str, service_account: str) -> client.ApiClient:
        """An ApiClient acting as ``system:serviceaccount:<namespace>:<service_account>``."""
        api = ImpersonatingApiClient.as_service_account(self.configuration(), namespace, service_account)
        self._clients.append(api)
        return api

    def close(self) -> None:
        """Close every client handed out. The cluster itself belongs to whoever started it."""
        for api in self._clients:
            api.close()  # type: ignore[no-untyped-call]
        self._clients.clear()


def on_local_cluster(cluster: LocalCluster, artifacts: Artifacts) -> KubeCluster:
    """A handle on a started :class:`LocalCluster`, whose CRDs were installed as it started, built by ``artifacts``."""
    return KubeCluster(
        kubeconfig_path=cluster.kubeconfig_path,
        server=cluster.server,
        start_seconds=cluster.start_seconds,
        artifacts=artifacts,
        local=True,
        _configuration=cluster.configuration(),
    )


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
        crds.install_crds(cluster.admin_api_client(), crds.load_crds(artifacts.crd_dirs.values()))
    except BaseException:
        cluster.close()
        raise
    cluster.start_seconds = time.monotonic() - started
    return cluster


def existing_kubeconfig() -> Path | None:
    """The kubeconfig named by ``BLUEGREEN_TEST_KUBECONFIG``, if set."""
    value = os.environ.get(KUBECONFIG_ENV)
    return Path(value).expanduser() if value else None
