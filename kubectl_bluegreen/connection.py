"""Reaching the cluster the way kubectl does: ``--kubeconfig`` or ``KUBECONFIG``, ``--context``, ``-n``.

The namespace is the ``-n`` flag, else the namespace of the chosen kubeconfig context, else ``default``, which is
kubectl's own order. ``KUBECONFIG`` may list several files, merged as kubectl merges them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from kubectl_bluegreen.errors import NotFoundError
from steps.kube import ApiRetryPolicy, Kube

DEFAULT_KUBECONFIG = "~/.kube/config"
#: A person at a terminal wants "cannot reach the cluster" within seconds, not after the steps' 30 s of retries.
INTERACTIVE_RETRY = ApiRetryPolicy(deadline_seconds=8.0)


@dataclass(frozen=True)
class Target:
    """Which kubeconfig, context and namespace the user asked for; empty means kubectl's defaults."""

    kubeconfig: str = ""
    context: str = ""
    namespace: str = ""

    def kubeconfig_files(self) -> str:
        """The flag, else ``KUBECONFIG`` (read now, not at import), else ``~/.kube/config``."""
        return self.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser(DEFAULT_KUBECONFIG)


@dataclass
class Connection:
    """An authenticated client for one context, and the namespace commands act in."""

    configuration: client.Configuration
    namespace: str
    context: str
    user: str
    kube: Kube = field(init=False)

    def __post_init__(self) -> None:
        self.kube = self.new_kube()

    def new_kube(self) -> Kube:
        """A client with its own connection pool, for a watch running beside the main thread."""
        return Kube(client.ApiClient(self.configuration), retry=INTERACTIVE_RETRY)


def connect(target: Target) -> Connection:
    """Load the kubeconfig; a missing file or context is :class:`NotFoundError` naming what to fix."""
    files = target.kubeconfig_files()
    try:
        contexts, active = config.list_kube_config_contexts(config_file=files)
    except (ConfigException, OSError) as error:
        raise NotFoundError(
            f"no usable kubeconfig at {files} ({error}); pass --kubeconfig or set KUBECONFIG"
        ) from None
    chosen: dict[str, Any] | None = active
    if target.context:
        chosen = next((c for c in contexts or [] if c.get("name") == target.context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts or [])) or "none"
            raise NotFoundError(f"context {target.context!r} is not in {files} (it has: {names}); check --context")
    if chosen is None:
        raise NotFoundError(f"{files} has no current context; pass --context or run `kubectl config use-context`")
    settings = chosen.get("context") or {}
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=files,
            context=str(chosen["name"]),
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError) as error:
        raise NotFoundError(f"context {chosen['name']!r} in {files} cannot be used: {error}") from None
    return Connection(
        configuration=configuration,
        namespace=target.namespace or str(settings.get("namespace") or "default"),
        context=str(chosen["name"]),
        user=str(settings.get("user") or ""),
    )


class Cluster:
    """Connects on first use, so commands that need no cluster (``lint``, ``--help``) never read a kubeconfig."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        """The connection, made once."""
        if self._connection is None:
            self._connection = connect(self.target)
        return self._connection

    @property
    def kube(self) -> Kube:
        """The main thread's client."""
        return self.connection.kube

    @property
    def namespace(self) -> str:
        """The namespace commands act in."""
        return self.connection.namespace


__all__ = ["Cluster", "Connection", "Target", "connect"]
