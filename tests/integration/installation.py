"""Installing our rendered manifests into a namespace of the real API server, as `kubectl apply -k` would."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from pipelines.manifests import render_all
from pipelines.settings import RenderSettings
from testenv.apply import apply_manifest_objects
from testenv.crds import install_crds

_installed_crds: set[str] = set()


def rendered(namespace: str) -> list[dict[str, Any]]:
    """The objects the main kustomization lists for ``namespace``: what `kubectl apply -k manifests/` installs.

    The opt-in sets (the CI identity, the monitoring objects) have kustomizations of their own and are left out.
    """
    manifests = {m.path: m.document for m in render_all(RenderSettings(namespace=namespace))}
    return [manifests[path] for path in manifests["kustomization.yaml"]["resources"]]


def our_crds() -> list[dict[str, Any]]:
    """The BlueGreenDeployment and DeploymentRecord CRDs."""
    return [d for d in rendered("default") if d["kind"] == "CustomResourceDefinition"]


def ensure_crds(api: client.ApiClient) -> None:
    """Install our CRDs once per session (server-side apply) and wait until they are Established."""
    crds = our_crds()
    if {c["metadata"]["name"] for c in crds} <= _installed_crds:
        return
    install_crds(api, crds)
    _installed_crds.update(c["metadata"]["name"] for c in crds)


def install(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Install the CRDs, then RBAC, templates and cron into ``namespace``; returns the namespaced objects.

    The cron is installed suspended. These tests run each step themselves at the moments they choose; the real Argo
    controller in the cluster would otherwise start the cleanup sweep every five minutes in the test's namespace and
    repair the runs a test has left mid-way on purpose. The end-to-end tests install it as users do, unsuspended.
    """
    ensure_crds(api)
    objects = [copy.deepcopy(d) for d in rendered(namespace) if d["kind"] != "CustomResourceDefinition"]
    for document in objects:
        if document["kind"] == "CronWorkflow":
            document["spec"]["suspend"] = True
    apply_manifest_objects(api, objects)
    return objects
