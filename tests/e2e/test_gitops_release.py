"""A team whose manifests live in git, synced by the real Argo CD, releases blue-green from its commits.

The team's Deployment, Service, HPA, PDB and BlueGreenDeployment are in a git repository that Argo CD (v3.2.11, the
real application controller and repo server) syncs with automated sync, prune and self-heal, and with exactly the
``ignoreDifferences`` and sync option that docs/guides/gitops.md gives. Under steady load through kube-proxy and
HAProxy, the story of the issue runs through ``argo submit``: adoption, a release of an image committed to git, a
commit of new env and resources released without an image, a self-heal and a commit of ``replicas``, then a rollback.
No request fails, Argo CD settles on Synced and stays there, and the team's objects change only in the fields the
guide names.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen_spec import ADOPTED_ANNOTATION, OPT_IN_LABEL, SLOT_LABEL
from testenv.argocd_controller import ArgoCD, ArgoCDError, operation_started
from testenv.demo_service import (
    DEPLOY_TEMPLATE,
    NAMESPACE,
    REPO,
    ROLLBACK_TEMPLATE,
    DemoService,
    app_objects,
    blue_green_spec,
    demo_image,
)
from testenv.load_harness import LoadHarness
from testenv.local_cluster import LocalCluster
from testenv.traffic_report import Phase, summarise, table
from tests.e2e.conftest import require_argocd
from tests.e2e.test_zero_downtime import Story, _require_haproxy
from tests.integration.real_world_catalogue import changed_paths

pytestmark = [pytest.mark.cluster]

GUIDE = REPO / "docs" / "guides" / "gitops.md"
#: One reconcile (resync and self-heal every 5 s here) plus a rollout of the demo app.
SYNC_TIMEOUT = 180.0
#: How long Argo CD must stay Synced with no new sync: three resync periods of the harness's controller.
QUIET_SECONDS = 15.0
SETTLE_SECONDS = 3.0


def guide_application(name: str, namespace: str) -> dict[str, Any]:
    """The Application the GitOps guide gives, for ``name`` in ``namespace``: the test uses what users copy."""
    text = GUIDE.read_text()
    found = re.search(r"^    apiVersion: argoproj\.io/v1alpha1\n(?:    .*\n|\n)+", text, re.MULTILINE)
    assert found, f"{GUIDE} has no Application block"
    block = textwrap.dedent(found.group(0)).replace("user-service", name).replace("payments", namespace)
    application: dict[str, Any] = yaml.safe_load(block)
    assert application["kind"] == "Application"
    return application


def team_repository(
    name: str, image: str, *, env: dict[str, str] | None = None, memory: str = "", replicas: int = 2
) -> dict[str, str | None]:
    """The team's ``k8s/`` directory: its Deployment, Service, HPA and PDB, all lent to its BlueGreenDeployment."""
    deployment, service = app_objects(name, image, replicas=replicas)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    if memory:
        container["resources"] = {"requests": {"memory": memory}}
    lent = {"app": name, OPT_IN_LABEL: name}
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": lent},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": lent},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}},
    }
    objects = {
        "deployment": deployment,
        "service": service,
        "hpa": autoscaler,
        "pdb": budget,
        "bluegreen": blue_green_spec(name, retainPreviousVersion="1h"),
    }
    return {f"k8s/{kind}.yaml": json.dumps(body, indent=2) for kind, body in objects.items()}


def get(cluster: LocalCluster, kind: str, name: str) -> dict[str, Any]:
    """``kubectl get <kind> <name> -o json`` in the service's namespace."""
    return dict(json.loads(cluster.run_tool(["kubectl", "get", kind, name, "-n", NAMESPACE, "-o", "json"]).stdout))


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def sync(gitops: ArgoCD, app: str, revision: str) -> dict[str, Any]:
    """Ask Argo CD to look at git now (it would within two resyncs), and wait until it synced ``revision``."""
    gitops.refresh(app)
    return gitops.wait_synced_healthy(app, revision=revision, timeout=SYNC_TIMEOUT)


def compared(gitops: ArgoCD, app: str, revision: str) -> dict[str, Any]:
    """Refresh, and wait until Argo CD finds the cluster Synced with ``revision``, whether or not it had to sync."""
    gitops.refresh(app)

    def settled(found: dict[str, Any]) -> bool:
        status = found.get("status") or {}
        return (
            (status.get("sync") or {}).get("status") == "Synced"
            and (status.get("sync") or {}).get("revision") == revision
            and (status.get("health") or {}).get("status") == "Healthy"
        )

    return gitops.wait_for(app, settled, SYNC_TIMEOUT, f"Synced with {revision[:12]}")


def last_synced_revision(app: dict[str, Any]) -> str:
    """The revision of the Application's last sync operation."""
    return str(app["status"]["operationState"]["syncResult"]["revision"])


#: The local cluster has no metrics API, so an HPA never reports ``ScalingActive`` and Argo CD's built-in health check
#: would call it Degraded forever. Argo CD's documented health customization stands in for a metrics server; where
#: the HPA points is checked by the test itself.
HPA_HEALTH = {
    "resource.customizations.health.autoscaling_HorizontalPodAutoscaler": (
        'hs = {}\nhs.status = "Healthy"\nhs.message = "no metrics API on the local cluster"\nreturn hs\n'
    )
}


@pytest.fixture
def gitops(installed: LocalCluster, make_namespace: Callable[..., str]) -> Iterator[ArgoCD]:
    """Argo CD in a namespace of its own, with the HPA health customization."""
    require_argocd()
    with ArgoCD(installed, make_namespace("argocd"), settings=HPA_HEALTH) as instance:
        yield instance


def test_a_git_commit_becomes_a_blue_green_release_and_argo_cd_never_fights(
    installed: LocalCluster, gitops: ArgoCD, tmp_path: Path
) -> None:
    _require_haproxy()
    name = f"gitops-{uuid.uuid4().hex[:6]}"
    service = DemoService(installed, name)
    repo = gitops.git_repo(tmp_path / "git")
    v1 = repo.commit(team_repository(name, demo_image("v1")), "shop: the team's app")
    application = guide_application(name, NAMESPACE)
    assert "RespectIgnoreDifferences=true" in application["spec"]["syncPolicy"]["syncOptions"]
    gitops.apply(
        gitops.application(
            name,
            repo.url,
            "k8s",
            NAMESPACE,
            sync_options=application["spec"]["syncPolicy"]["syncOptions"],
            ignore_differences=application["spec"]["ignoreDifferences"],
        )
    )
    gitops.wait_synced_healthy(name, revision=v1, timeout=SYNC_TIMEOUT)
    before = {kind: get(installed, kind, name) for kind in ("deployment", "service", "hpa", "pdb")}

    (tmp_path / "load").mkdir()
    harness = LoadHarness(
        installed,
        before["service"]["spec"]["clusterIP"],
        NAMESPACE,
        name,
        workdir=tmp_path / "load",
        keep_workdir=True,
    )
    with harness as load:
        story = Story(service, load, [], [])
        # 1-2. Synced from git, then adopted: the first run releases the Deployment as git has it.
        story.run(
            "adopt v1 from git", "v1", "v1", "Succeeded", lambda: service.submit(DEPLOY_TEMPLATE, f"commit={v1}")
        )
        # 3. A deploy of v2: committed to git, synced into the dormant original, released without an image.
        v2 = repo.commit(team_repository(name, demo_image("v2")), "shop: v2")
        sync(gitops, name, v2)
        assert service.serving_version() == "v1", "a sync alone must not release anything"
        story.run(
            "release v2 committed to git",
            "v1",
            "v2",
            "Succeeded",
            lambda: service.submit(DEPLOY_TEMPLATE, f"commit={v2}"),
        )
        previous_live = service.live_slot()
        # 4-5. A commit of an env value and the memory request, synced, then a template-only release.
        tuned = repo.commit(
            team_repository(name, demo_image("v2"), env={"GREETING": "hello"}, memory="96Mi"), "shop: greeting, memory"
        )
        sync(gitops, name, tuned)
        released = story.run(
            "template-only release",
            "v2",
            "v2",
            "Succeeded",
            lambda: service.submit(DEPLOY_TEMPLATE, f"commit={tuned}"),
        )
        live = service.live_slot()
        assert live != previous_live
        new_slot, old_slot = service.slot(live), service.slot(previous_live)
        assert new_slot is not None and old_slot is not None
        assert container_of(new_slot).get("env") == [{"name": "GREETING", "value": "hello"}]
        assert container_of(new_slot).get("resources") == {"requests": {"memory": "96Mi"}}
        assert "env" not in container_of(old_slot) and not container_of(old_slot).get("resources")
        assert new_slot["spec"]["replicas"] == 2
        assert not any(key.startswith("argocd.argoproj.io/") for key in new_slot["metadata"].get("annotations") or {})
        changes = service.record_of(released.name)["spec"]["changes"]
        assert changes == [
            "container app: env GREETING added",
            "container app: resources.requests.memory added (96Mi)",
        ]
        # The Argo UI shows it among the outputs of the release Pod that preflight runs in.
        assert "env GREETING added" in released.output("preflight", "changes")
        # 6. A self-heal of a hand edit, then a commit of replicas: traffic, HPA and PDB stay on the live slot.
        last = gitops.get(name)
        installed.run_tool(
            [
                "kubectl",
                "patch",
                "deployment",
                name,
                "-n",
                NAMESPACE,
                "--type=merge",
                "-p",
                '{"spec":{"progressDeadlineSeconds":61}}',
            ]
        )
        gitops.wait_synced_healthy(name, revision=tuned, timeout=SYNC_TIMEOUT, operation_after=operation_started(last))
        assert get(installed, "deployment", name)["spec"]["progressDeadlineSeconds"] == 60, "self-heal did not run"
        scaled = repo.commit(
            team_repository(name, demo_image("v2"), env={"GREETING": "hello"}, memory="96Mi", replicas=5),
            "shop: 5 replicas",
        )
        # replicas is ignored and respected: the cluster already matches git, so Argo CD has nothing to sync.
        assert last_synced_revision(compared(gitops, name, scaled)) == tuned
        assert get(installed, "deployment", name)["spec"]["replicas"] == 0, "the original was scaled up"
        assert get(installed, "hpa", name)["spec"]["scaleTargetRef"]["name"] == f"{name}-{live}"
        assert get(installed, "pdb", name)["spec"]["selector"]["matchLabels"][SLOT_LABEL] == live
        assert service.live_slot() == live
        # 7. A rollback to the retained slot, which the HPA and the PDB follow.
        story.run("rollback", "v2", "v2", "Succeeded", lambda: service.submit(ROLLBACK_TEMPLATE))
        assert service.live_slot() == previous_live
        assert get(installed, "hpa", name)["spec"]["scaleTargetRef"]["name"] == f"{name}-{previous_live}"
        assert get(installed, "pdb", name)["spec"]["selector"]["matchLabels"][SLOT_LABEL] == previous_live
        time.sleep(SETTLE_SECONDS)  # not a wait for cluster state: the last requests' answers arrive
        end = time.time()

    # Argo CD settles on Synced at the last commit, and no sync follows: no OutOfSync loop with the deployer.
    settled = compared(gitops, name, scaled)
    with pytest.raises(ArgoCDError):
        gitops.wait_for(
            name,
            lambda app: (
                app["status"]["sync"]["status"] != "Synced" or operation_started(app) > operation_started(settled)
            ),
            timeout=QUIET_SECONDS,
            what="an OutOfSync status or another sync",
        )

    summaries = summarise([*story.phases, Phase("whole story", load.started_at, end, "", "")], load.lines())
    shown = f"\ngitops release of {name}\n{table(summaries)}"
    print(shown)
    for summary in summaries:
        assert summary.sent > 0, shown
        assert summary.failed == 0, shown

    # The team's objects changed only in the fields the guide names, plus what its own commits changed.
    after = {kind: get(installed, kind, name) for kind in ("deployment", "service", "hpa", "pdb")}
    container = "spec.template.spec.containers[0]"
    allowed = {
        "deployment": {
            "spec.replicas",
            f"metadata.annotations.{ADOPTED_ANNOTATION}",
            # Written by Argo CD's apply and the deployment controller, from the team's own commits.
            "metadata.annotations.deployment.kubernetes.io/revision",
            f"{container}.image",
            f"{container}.env[0].name",
            f"{container}.env[0].value",
            f"{container}.resources",  # the API server's empty default, before the commit filled it
            f"{container}.resources.requests.memory",
        },
        "service": {f"spec.selector.{SLOT_LABEL}"},
        "hpa": {"spec.scaleTargetRef.name"},
        "pdb": {f"spec.selector.matchLabels.{SLOT_LABEL}"},
    }
    # Argo CD's record of what it applied; with RespectIgnoreDifferences it includes the live values it kept.
    applied = "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"
    for kind, fields in allowed.items():
        changed = changed_paths(before[kind], after[kind])
        assert changed <= {*fields, applied}, (kind, changed - fields)
