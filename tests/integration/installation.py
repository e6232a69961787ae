"""Installing our rendered manifests into a namespace of the real API server, as `kubectl apply -k` would.

As the docs install them, in two parts: the cluster's (``cluster/``: the CRDs and the admission policies), then the
namespace's (the main kustomization).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from kubernetes import client

from pipelines.manifests import CLUSTER, render_all
from pipelines.settings import RenderSettings
from testenv.apply import apply_manifest_objects
from testenv.crds import install_crds

_installed_crds: set[str] = set()


def _render(namespace: str) -> dict[str, dict[str, Any]]:
    return {m.path: m.document for m in render_all(RenderSettings(namespace=namespace))}


def rendered(namespace: str) -> list[dict[str, Any]]:
    """The objects the main kustomization lists for ``namespace``: what `kubectl apply -k manifests/` installs.

    They are the namespace's part only: the cluster's part (:func:`cluster_scoped`) and the opt-in sets (the CI
    identity, the monitoring objects) have kustomizations of their own and are left out.
    """
    manifests = _render(namespace)
    return [manifests[path] for path in manifests["kustomization.yaml"]["resources"]]


@functools.cache
def _cluster_part() -> tuple[dict[str, Any], ...]:
    manifests = _render("default")
    return tuple(manifests[CLUSTER + path] for path in manifests[CLUSTER + "kustomization.yaml"]["resources"])


def cluster_scoped() -> list[dict[str, Any]]:
    """The objects the cluster kustomization lists, what `kubectl apply -k manifests/cluster/` installs: the CRDs,
    then the admission policies and their bindings, shared by every namespace (the same for any namespace's render).
    """
    return copy.deepcopy(list(_cluster_part()))


def our_crds() -> list[dict[str, Any]]:
    """The BlueGreenDeployment and DeploymentRecord CRDs."""
    return [d for d in cluster_scoped() if d["kind"] == "CustomResourceDefinition"]


def ensure_crds(api: client.ApiClient) -> None:
    """Install our CRDs once per session (server-side apply) and wait until they are Established."""
    crds = our_crds()
    if {c["metadata"]["name"] for c in crds} <= _installed_crds:
        return
    install_crds(api, crds)
    _installed_crds.update(c["metadata"]["name"] for c in crds)


def install(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Install both parts, as an administrator would for ``namespace``: the cluster's (the CRDs, then the admission
    policies and bindings), then the namespace's (RBAC, templates and cron); returns the namespace's objects.

    The cron is installed suspended. These tests run each step themselves at the moments they choose; the real Argo
    controller in the cluster would otherwise start the cleanup sweep every five minutes in the test's namespace and
    repair the runs a test has left mid-way on purpose. The end-to-end tests install it as users do, unsuspended.
    """
    ensure_crds(api)
    apply_manifest_objects(api, [d for d in cluster_scoped() if d["kind"] != "CustomResourceDefinition"])
    objects = [copy.deepcopy(d) for d in rendered(namespace)]
    for document in objects:
        if document["kind"] == "CronWorkflow":
            document["spec"]["suspend"] = True
    apply_manifest_objects(api, objects)
    return objects
