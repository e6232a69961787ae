"""Everything a step works with, assembled once: the API, the validated spec, its records and its router."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import bluegreen_spec as spec
from bluegreen_contract import Output
from steps import kubeconfig
from steps.api_transport import ApiClientTransport, InClusterTransport, Transport
from steps.errors import BadInput
from steps.kube import Kube, Obj
from steps.log import StepLog
from steps.records import Records
from steps.routing import Router, router_for
from steps.service_state import load

#: How a person points ``bluegreen-step`` at another kubeconfig or context: it has no flags for them, as its
#: command line is the templates' contract; a kubeconfig it cannot use is bad input (exit 2), nothing written.
CHOOSING = kubeconfig.Choosing(
    file="KUBECONFIG=FILE",
    elsewhere=", and this is not a Pod with a ServiceAccount to use instead",
)

#: What a person who runs the steps image outside a Pod is told: the kubeconfig reader is not in it.
KUBECONFIG_NEEDS_CLIENT = (
    "this is not a Pod with a ServiceAccount, and reading a kubeconfig needs the kubernetes package, which is not "
    "installed here (the steps image leaves it out); run the step in a Pod, or install argo-bluegreen with pip"
)


def api_transport() -> Transport:
    """In a pod, its ServiceAccount; elsewhere the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``).

    Only the kubeconfig needs the ``kubernetes`` package (its contexts and auth plugins), so only then is it loaded.
    """
    in_cluster = InClusterTransport.from_environment()
    if in_cluster is not None:
        return in_cluster
    try:
        from kubernetes import client
    except ModuleNotFoundError:
        # The steps image leaves the client out: its steps run in Pods, and this is the only thing that needs it.
        raise BadInput(KUBECONFIG_NEEDS_CLIENT) from None

    loaded = kubeconfig.load(kubeconfig.kubeconfig_sources(), context="", choosing=CHOOSING)
    return ApiClientTransport(client.ApiClient(loaded.configuration))


def record_name(workflow: str) -> str:
    """A DeploymentRecord name from a workflow name: already DNS-1123 in Argo, made safe anyway."""
    name = re.sub(r"[^a-z0-9.-]", "-", workflow.lower()).strip("-.")[:253]
    if not name:
        raise BadInput(f"workflow name {workflow!r} cannot name a record; pass --workflow")
    return name


@dataclass
class StepContext:
    """One step run against one service."""

    kube: Kube
    namespace: str
    resource: spec.BlueGreenDeployment
    raw: Obj
    log: StepLog
    records: Records
    router: Router

    @property
    def service(self) -> str:
        """The service name."""
        return self.resource.service

    @classmethod
    def open(cls, kube: Kube, namespace: str, service: str, step: str, log_to: TextIO | None = None) -> StepContext:
        """Load and validate the service's spec; fails before any write. The log goes to ``log_to`` or stdout."""
        log = StepLog(step, service, stream=log_to)
        resource, raw = load(kube, namespace, service)
        return cls(
            kube,
            namespace,
            resource,
            raw,
            log,
            Records(kube, namespace, service, log),
            router_for(resource, kube, namespace, log),
        )

    @property
    def status(self) -> spec.BlueGreenDeploymentStatus:
        """The status as last read, with defaults for a resource no run has touched yet."""
        return self.resource.status or spec.BlueGreenDeploymentStatus()

    def reload(self) -> None:
        """Re-read the resource, for the current status."""
        self.resource, self.raw = load(self.kube, self.namespace, self.service)


def write_outputs(output_dir: Path | None, values: dict[Output, str]) -> None:
    """Write Argo output parameters, one file each; the names are the contract's."""
    if output_dir is None:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (output_dir / name.value).write_text(value)


__all__ = ["CHOOSING", "StepContext", "api_transport", "record_name", "write_outputs"]
