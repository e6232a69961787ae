"""The real Argo CD syncs a git repository onto the local cluster: the proof that the GitOps harness works.

``testenv/argocd_controller.py`` runs Argo CD's application controller, repo server and Redis beside the local
cluster. Here an Application with automated sync, self-heal and prune follows a local git repository: its first
commit goes live and healthy, a hand edit of the live Deployment is undone by self-heal, and a second commit (a
changed Deployment, a deleted ConfigMap) is synced and pruned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testenv.argocd_controller import (
    TRACKING_ANNOTATION,
    ArgoCD,
    ArgoCDError,
    operation_started,
)
from testenv.demo_service import demo_image
from testenv.local_cluster import LocalCluster
from testenv.rest import KubeApiError, request

pytestmark = [pytest.mark.cluster]

APP = "web"
#: Each wait is for one reconcile (resync every 5 s, self-heal 5 s after the last sync) plus a rollout.
SYNC_TIMEOUT = 180.0


def manifests(replicas: int, greeting: str | None) -> dict[str, str | None]:
    """The repository's ``app/`` directory: a Deployment of the demo app, its Service, and (or not) a ConfigMap."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "app",
                            "image": demo_image("v1"),
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP},
        "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    files: dict[str, str | None] = {
        # JSON is YAML; Argo CD reads both from a directory source.
        "app/deployment.yaml": json.dumps(deployment, indent=2),
        "app/service.yaml": json.dumps(service, indent=2),
        "app/greeting.yaml": None,
    }
    if greeting is not None:
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "greeting"},
            "data": {"hello": greeting},
        }
        files["app/greeting.yaml"] = json.dumps(config, indent=2)
    return files


def live(cluster: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """The object as the API server has it now, or None."""
    group = "/apis/apps/v1" if kind == "deployments" else "/api/v1"
    try:
        return request(cluster.api, "GET", f"{group}/namespaces/{namespace}/{kind}/{name}")
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


def test_argocd_syncs_self_heals_and_prunes(
    local_cluster: LocalCluster, argocd_on_cluster: ArgoCD, make_namespace: Callable[..., str], tmp_path: Path
) -> None:
    gitops = argocd_on_cluster
    dest = make_namespace("gitops")
    repo = gitops.git_repo(tmp_path / "git")
    first = repo.commit(manifests(replicas=2, greeting="hello"), "web: two replicas and a greeting")

    gitops.apply(gitops.application(APP, repo.url, "app", dest))
    app = gitops.wait_synced_healthy(APP, revision=first, timeout=SYNC_TIMEOUT)

    # The first commit is live, applied by Argo CD (its tracking annotation names this Application), and the
    # Deployment is Healthy because its Pods really became ready.
    deployment = live(local_cluster, dest, "deployments", APP)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2
    assert deployment["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{APP}:apps/Deployment:{dest}/")
    assert live(local_cluster, dest, "services", APP) is not None
    greeting = live(local_cluster, dest, "configmaps", "greeting")
    assert greeting is not None and greeting["data"] == {"hello": "hello"}
    assert app["status"]["operationState"]["syncResult"]["revision"] == first
    assert app["status"]["operationState"]["operation"]["initiatedBy"].get("automated") is True
    first_sync = operation_started(app)

    # A hand edit of the live Deployment: self-heal must put git's replica count back.
    local_cluster.run_tool(
        ["kubectl", "patch", "deployment", APP, "-n", dest, "--type=merge", "-p", '{"spec":{"replicas":3}}']
    )
    local_cluster.run_tool(
        [
            "kubectl",
            "wait",
            f"deployment/{APP}",
            "-n",
            dest,
            "--for=jsonpath={.spec.replicas}=2",
            f"--timeout={SYNC_TIMEOUT:.0f}s",
        ],
        timeout=SYNC_TIMEOUT + 10,
    )
    healed = gitops.wait_synced_healthy(APP, revision=first, timeout=SYNC_TIMEOUT, operation_after=first_sync)
    # The revert was Argo CD's own automated sync of the same revision, not anything else touching the Deployment.
    assert healed["status"]["operationState"]["operation"]["initiatedBy"].get("automated") is True
    assert healed["status"]["operationState"]["syncResult"]["revision"] == first

    # A second commit: one replica, and no ConfigMap any more, which prune must delete.
    second = repo.commit(manifests(replicas=1, greeting=None), "web: one replica, no greeting")
    assert second != first
    # The resync would notice it within two resync periods; a refresh asks for it now.
    gitops.refresh(APP)
    app = gitops.wait_synced_healthy(APP, revision=second, timeout=SYNC_TIMEOUT)
    assert app["status"]["sync"]["revision"] == second
    deployment = live(local_cluster, dest, "deployments", APP)
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    assert live(local_cluster, dest, "configmaps", "greeting") is None
    managed = {(r["kind"], r["name"]) for r in app["status"]["resources"]}
    assert managed == {("Deployment", APP), ("Service", APP)}
    with pytest.raises(ArgoCDError, match="did not become"):
        # The harness's wait fails with the status it saw rather than hanging: a revision that never comes.
        gitops.wait_synced_healthy(APP, revision="0" * 40, timeout=2)
