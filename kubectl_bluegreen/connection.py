"""Reaching the cluster the way kubectl does: ``--kubeconfig`` or ``KUBECONFIG``, ``--context``, ``-n``.

The namespace is the ``-n`` flag, else the namespace of the chosen kubeconfig context, else ``default``, which is
kubectl's own order. ``KUBECONFIG`` may list several files, merged as kubectl merges them. The files are read by
:mod:`steps.kubeconfig`, which ``bluegreen-step`` shares, so a kubeconfig either tool cannot use is one line naming
the file and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client

from kubectl_bluegreen.errors import NotFoundError
from steps.errors import Unreachable
from steps.kube import INTERACTIVE_RETRY, Kube
from steps.kubeconfig import Choosing, KubeconfigError, kubeconfig_sources, load

#: How a plugin user points it at another kubeconfig or context: kubectl's own flags and variable.
CHOOSING = Choosing(file="--kubeconfig FILE or KUBECONFIG", context="--context NAME")


@dataclass(frozen=True)
class Target:
    """Which kubeconfig, context and namespace the user asked for; empty means kubectl's defaults."""

    kubeconfig: str = ""
    context: str = ""
    namespace: str = ""


@dataclass
class Connection:
    """An authenticated client for one context, and the namespace commands act in."""

    configuration: client.Configuration
    namespace: str
    context: str
    user: str
    #: The kubeconfig file(s) the context came from, for messages.
    kubeconfig: str = ""
    kube: Kube = field(init=False)

    def __post_init__(self) -> None:
        self.kube = self.new_kube()

    def new_kube(self) -> Kube:
        """A client with its own connection pool, for a watch running beside the main thread."""
        return Kube(client.ApiClient(self.configuration), retry=INTERACTIVE_RETRY)


def connect(target: Target) -> Connection:
    """Load the kubeconfig; any kubeconfig it cannot use is :class:`NotFoundError` (exit 3) naming what to fix."""
    try:
        loaded = load(kubeconfig_sources(target.kubeconfig), target.context, CHOOSING)
    except KubeconfigError as error:
        # The plugin's exit codes put "no kubeconfig or context" with "not found or unreachable" (3), not with bad
        # flags (2): the command line was right, the environment it runs in is not.
        raise NotFoundError(str(error)) from None
    return Connection(
        configuration=loaded.configuration,
        namespace=target.namespace or loaded.namespace or "default",
        context=loaded.context,
        user=loaded.user,
        kubeconfig=loaded.files,
    )


def unreachable(error: Unreachable, connection: Connection) -> str:
    """What a person reads when the API server does not answer: which server, from which context, what to check.

    The steps' own text for it ends with "run the step again", which means nothing to someone at a terminal.
    """
    return (
        f"the API server at {error.host} could not be reached ({error.cause}); it is the cluster of context "
        f"{connection.context!r} in {connection.kubeconfig or 'the kubeconfig'}: check that the cluster is running "
        "and that this is the context you meant (kubectl config get-contexts), or choose another with --context NAME"
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


__all__ = ["CHOOSING", "Cluster", "Connection", "Target", "connect", "unreachable"]
