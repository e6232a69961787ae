"""Side by side with Argo Rollouts v1.10.1 on one local cluster: the same app, readiness, smoke checks and replicas.

Both tools deploy the demo app with 3 replicas that turn Ready 10 s after they start (the ``slow-start`` tag), and
check the same two smoke endpoints on the new version before traffic moves: argo-bluegreen in its ``smoke`` step,
Argo Rollouts in a pre-promotion analysis of two web metrics through its preview Service. Rollouts' real controller
(``testenv/rollouts_controller.py``) reconciles with the same deployment and ReplicaSet controllers, kube-proxy and
node agent. Deploys alternate between the tools, so both see the same noise.

For each tool it prints, as medians with min and max:

- deploy wall time: the image change (``argo submit``, ``kubectl bluegreen deploy`` or the Rollout's patch) to the
  Service's selector switched, as the API server's watch delivers it;
- the app's own readiness: the first new Pod appearing to the last one Ready, as a Pod watch delivers them;
- the smoke checks' own time: the ``smoke`` step's own log, from its ``waited`` line to its last, or the analysis'
  first measurement to its last (Rollouts stamps those to the second);
- the control overhead: wall time minus those two, and of it the submit command's own time (``argo submit`` with the
  user's kubeconfig validates the run in the CLI, which reads the WorkflowTemplate once per template at client-go's
  default 5 requests a second; ``kubectl bluegreen deploy`` creates the Workflow as the controller would get it from
  ``argo submit``; ``kubectl patch`` for the Rollout);
- rollback: the one-click rollback (the rollback template, submitted the same way, or setting the Rollout's image
  back) to the selector back on the previous version, warm in its slot or ReplicaSet;
- the ratio of the deploy wall times.

The wall times and the readiness are measured here, to the millisecond. Timings are printed, never asserted.
``BLUEGREEN_BENCH_VS_RUNS`` sets the number of deploys per tool and setting (default 3). With a cluster of its own the
benchmark runs Argo's default requeue time, submitting with a kubeconfig through ``argo submit`` and then through the
plugin, then the tuned setting docs/performance.md recommends: ``DEFAULT_REQUEUE_TIME=1s``, and ``argo submit``
through the Argo Server.
"""

from __future__ import annotations

import enum
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.results import BenchResults
from bluegreen_spec import SLOT_LABEL
from testenv.demo_service import (
    DEPLOY_TEMPLATE,
    NAMESPACE,
    ROLLBACK_TEMPLATE,
    DemoService,
    app_objects,
    create_demo_service,
    demo_image,
    install_manifests,
)
from testenv.load_harness import SelectorChange, SelectorWatch
from testenv.local_cluster import ClusterTuning, LocalCluster
from testenv.pod_watch import PodReadinessWatch
from testenv.rest import list_items, request
from testenv.rollouts_controller import RolloutsController
from testenv.step_timing import logged_work, readiness_span, step_split, timestamp

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

RUNS = int(os.environ.get("BLUEGREEN_BENCH_VS_RUNS", "3"))
REPLICAS = 3
MODE = "slow-start"  # the demo app turns Ready 10 s after it starts
TUNED_REQUEUE = "1s"
HASH_LABEL = "rollouts-pod-template-hash"
SMOKE_ENDPOINTS = ("/api/users/health", "/api/health/db")
SWITCH_TIMEOUT = 300.0
#: Rollouts keeps the previous ReplicaSet this long after a promotion: the window of its warm rollback.
SCALE_DOWN_DELAY_SECONDS = 60


@dataclass
class Sample:
    """One deploy of one tool, in seconds."""

    wall: float
    readiness: float
    smoke: float
    #: The trigger command's own time: ``argo submit`` or ``kubectl patch``, until it returned.
    submit: float

    @property
    def overhead(self) -> float:
        """What the tool itself added: the wall time minus the app's readiness and the smoke checks' own time."""
        return self.wall - self.readiness - self.smoke


@dataclass
class Figures:
    """One tool's samples under one setting."""

    deploys: list[Sample]
    rollbacks: list[float]


def _spread(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"{statistics.median(values):6.2f}s (min {min(values):.2f}, max {max(values):.2f})"


def _pods(cluster: LocalCluster, selector: str, image: str) -> list[dict[str, Any]]:
    """The live Pods that ``selector`` picks and that run ``image``."""
    items = request(cluster.api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods", query={"labelSelector": selector})
    return [
        pod
        for pod in items["items"]
        if not pod["metadata"].get("deletionTimestamp") and pod["spec"]["containers"][0]["image"] == image
    ]


def rollout_services(name: str) -> list[dict[str, Any]]:
    """The Rollout's active Service (named like the app) and its preview; the controller sets both selectors."""
    port = [{"name": "http", "port": 80, "targetPort": 8080}]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service},
            "spec": {"selector": {"app": name}, "ports": port},
        }
        for service in (name, f"{name}-preview")
    ]


def rollout_objects(name: str, image: str, preview_ip: str) -> list[dict[str, Any]]:
    """The same app as a Rollout, with the smoke endpoints as a web analysis of the preview Service's address."""
    deployment, _ = app_objects(name, image, replicas=REPLICAS)
    metrics = [
        {
            "name": endpoint.strip("/").replace("/", "-"),
            "provider": {"web": {"url": f"http://{{{{args.preview}}}}{endpoint}", "jsonPath": "{$.status}"}},
            "successCondition": 'result == "ok"',
        }
        for endpoint in SMOKE_ENDPOINTS
    ]
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": f"{name}-smoke"},
        "spec": {"args": [{"name": "preview"}], "metrics": metrics},
    }
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": REPLICAS,
            "revisionHistoryLimit": 2,
            "selector": deployment["spec"]["selector"],
            "template": deployment["spec"]["template"],
            "strategy": {
                "blueGreen": {
                    "activeService": name,
                    "previewService": f"{name}-preview",
                    "autoPromotionEnabled": True,
                    "scaleDownDelaySeconds": SCALE_DOWN_DELAY_SECONDS,
                    "prePromotionAnalysis": {
                        "templates": [{"templateName": f"{name}-smoke"}],
                        "args": [{"name": "preview", "value": preview_ip}],
                    },
                }
            },
        },
    }
    return [template, rollout]


class RolloutUnderTest:
    """One Rollout driven as a user drives it: set the image, watch the active Service."""

    def __init__(self, cluster: LocalCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.image = demo_image(f"v1-{MODE}")

    def create(self) -> None:
        """The Services first (the preview's ClusterIP goes into the analysis), then the Rollout; once Healthy."""
        self._apply(rollout_services(self.name))
        preview = request(self.cluster.api, "GET", f"/api/v1/namespaces/{NAMESPACE}/services/{self.name}-preview")
        self._apply(rollout_objects(self.name, self.image, preview["spec"]["clusterIP"]))
        self.wait_healthy()

    def _apply(self, docs: list[dict[str, Any]]) -> None:
        manifest = "\n---\n".join(json.dumps(doc) for doc in docs)
        self.cluster.run_tool(["kubectl", "apply", "-n", NAMESPACE, "-f", "-"], input_text=manifest)

    def rollout(self) -> dict[str, Any]:
        """The Rollout as the API server has it."""
        path = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/rollouts/{self.name}"
        return dict(request(self.cluster.api, "GET", path))

    def wait_healthy(self, timeout: float = SWITCH_TIMEOUT) -> None:
        """Until the controller reports the current template Healthy (every replica available, traffic on it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.rollout()
            status = found.get("status") or {}
            current = status.get("observedGeneration") == str(found["metadata"]["generation"])
            if current and status.get("phase") == "Healthy":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"Rollout {self.name} not Healthy in {timeout}s: {status}")
            time.sleep(0.2)  # bounded poll of the Rollout's status, which the controller writes

    def set_image(self, image: str) -> None:
        """Change the image, as ``kubectl argo rollouts set image`` does."""
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]
        self.cluster.run_tool(
            ["kubectl", "patch", "rollout", self.name, "-n", NAMESPACE, "--type=json", "-p", json.dumps(patch)]
        )
        self.image = image

    def analysis_span(self, pod_hash: str) -> float:
        """The pre-promotion analysis of ``pod_hash``: its first measurement's start to its last one's end."""
        runs = list_items(
            self.cluster.api,
            f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/analysisruns",
            query={"labelSelector": f"{HASH_LABEL}={pod_hash}"},
        )
        measurements = [
            measurement
            for run in runs
            for result in (run.get("status") or {}).get("metricResults") or []
            for measurement in result.get("measurements") or []
            if measurement.get("startedAt") and measurement.get("finishedAt")
        ]
        if not measurements:
            return 0.0
        first = min(timestamp(m["startedAt"]) for m in measurements)
        last = max(timestamp(m["finishedAt"]) for m in measurements)
        return (last - first).total_seconds()


def _changed_from(before: str, since: float) -> Callable[[SelectorChange], bool]:
    return lambda change: change.at >= since and change.slot not in ("", before)


def _to(value: str, since: float) -> Callable[[SelectorChange], bool]:
    return lambda change: change.at >= since and change.slot == value


class Submitter(enum.Enum):
    """How a deploy is started: the three ways a CI job or a person has."""

    #: ``argo submit`` with the user's kubeconfig: the CLI validates the run itself.
    ARGO_KUBECONFIG = "argo submit with a kubeconfig"
    #: ``argo submit`` with ``ARGO_SERVER`` set: the Argo Server validates from its informer's cache.
    ARGO_SERVER = "argo submit through the Argo Server"
    #: ``kubectl bluegreen deploy`` / ``rollback`` with the user's kubeconfig: the Workflow is created directly.
    PLUGIN = "kubectl bluegreen with a kubeconfig"


def _argo_submit(cluster: LocalCluster, service: DemoService, source: str, params: list[str], via_server: bool) -> str:
    server = urllib.parse.urlsplit(cluster.argo_server_url)
    # The local Argo Server runs `--auth-mode=server` over plain HTTP; the CLI still wants a token to send.
    through_server = {"ARGO_SERVER": server.netloc, "ARGO_SECURE": "false", "ARGO_HTTP1": "true"}
    through_server["ARGO_TOKEN"] = "Bearer local"
    env = cluster.tool_env(through_server if via_server else None)
    argv = ["argo", "submit", "-n", NAMESPACE, "--from", source, "-p", f"service={service.name}"]
    for param in params:
        argv += ["-p", param]
    proc = subprocess.run([*argv, "-o", "name"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip(), f"argo submit exited {proc.returncode}: {proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


def _plugin_submit(cluster: LocalCluster, service: DemoService, source: str, params: list[str]) -> str:
    command = "deploy" if source == DEPLOY_TEMPLATE else "rollback"
    argv = [sys.executable, "-m", "kubectl_bluegreen", command, service.name, "-n", NAMESPACE]
    for param in params:
        name, _, value = param.partition("=")
        argv += [f"--{name}", value]
    proc = subprocess.run(argv, env=cluster.tool_env(), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"kubectl bluegreen {command} exited {proc.returncode}: {proc.stderr}"
    # "workflow.argoproj.io/<name> created from workflowtemplate/<template> in <namespace>"
    return proc.stdout.split()[0].rpartition("/")[2]


def _submit(cluster: LocalCluster, service: DemoService, source: str, *params: str, submitter: Submitter) -> str:
    """Start ``source`` (``workflowtemplate/<name>``) for ``service`` as ``submitter`` does; the Workflow's name."""
    if submitter is Submitter.PLUGIN:
        return _plugin_submit(cluster, service, source, list(params))
    return _argo_submit(cluster, service, source, list(params), via_server=submitter is Submitter.ARGO_SERVER)


def _readiness(pod_watch: PodReadinessWatch, pods: list[dict[str, Any]]) -> float:
    """The new Pods' first appearance to the last one Ready, from the watch; else from the objects' stamps."""
    span = pod_watch.span([pod["metadata"]["name"] for pod in pods])
    return span if span is not None else readiness_span(pods)


def _ours(
    cluster: LocalCluster,
    service: DemoService,
    watch: SelectorWatch,
    pod_watch: PodReadinessWatch,
    tag: str,
    figures: Figures,
    submitter: Submitter,
) -> None:
    before = service.live_slot()
    image = demo_image(tag)
    started = time.time()
    name = _submit(cluster, service, DEPLOY_TEMPLATE, f"image={image}", submitter=submitter)
    submitted = time.time()
    switch = watch.wait_for(_changed_from(before, started), SWITCH_TIMEOUT)
    run = service.wait_workflow(name)
    assert run.phase == "Succeeded", run.summary()
    pods = _pods(cluster, f"{SLOT_LABEL}={switch.slot}", image)
    # The smoke step's own log is stamped to the millisecond; its container's times only to the second.
    smoke = logged_work(service.step_log(run.name, "smoke"))
    if smoke is None:
        smoke = step_split(cluster, run).get("smoke", {}).get("own work", 0.0)
    figures.deploys.append(Sample(switch.at - started, _readiness(pod_watch, pods), smoke, submitted - started))
    # The one-click rollback, to the previous version warm in the slot the deploy retained.
    started = time.time()
    rollback = _submit(cluster, service, ROLLBACK_TEMPLATE, submitter=submitter)
    restored = watch.wait_for(_to(before, started), SWITCH_TIMEOUT)
    figures.rollbacks.append(restored.at - started)
    assert service.wait_workflow(rollback).phase == "Succeeded"


def _theirs(
    rollout: RolloutUnderTest, watch: SelectorWatch, pod_watch: PodReadinessWatch, tag: str, figures: Figures
) -> None:
    before, previous_image = watch.changes[-1].slot, rollout.image
    image = demo_image(tag)
    started = time.time()
    rollout.set_image(image)
    submitted = time.time()
    switch = watch.wait_for(_changed_from(before, started), SWITCH_TIMEOUT)
    pods = _pods(rollout.cluster, f"{HASH_LABEL}={switch.slot}", image)
    analysis = rollout.analysis_span(switch.slot)
    figures.deploys.append(Sample(switch.at - started, _readiness(pod_watch, pods), analysis, submitted - started))
    rollout.wait_healthy()
    # Rolling back within the scale-down delay finds the previous ReplicaSet still up.
    started = time.time()
    rollout.set_image(previous_image)
    restored = watch.wait_for(_to(before, started), SWITCH_TIMEOUT)
    figures.rollbacks.append(restored.at - started)
    rollout.wait_healthy()


def _print(label: str, ours: Figures, theirs: Figures) -> None:
    rows: list[tuple[str, Callable[[Figures], list[float]]]] = [
        ("deploy, to traffic switched", lambda f: [s.wall for s in f.deploys]),
        ("  app readiness", lambda f: [s.readiness for s in f.deploys]),
        ("  smoke checks", lambda f: [s.smoke for s in f.deploys]),
        ("  control overhead", lambda f: [s.overhead for s in f.deploys]),
        ("    of it, the submit command", lambda f: [s.submit for s in f.deploys]),
        ("rollback, to traffic restored", lambda f: f.rollbacks),
    ]
    print(f"\n== side by side with Argo Rollouts v1.10.1, {label}: {REPLICAS} replicas, Ready 10 s after start ==")
    print(f"{'':32}{'argo-bluegreen':36}Argo Rollouts")
    for title, pick in rows:
        print(f"{title:32}{_spread(pick(ours)):36}{_spread(pick(theirs))}")
    ratio = statistics.median(s.wall for s in ours.deploys) / statistics.median(s.wall for s in theirs.deploys)
    print(f"deploy wall time, ours / Rollouts (medians): {ratio:.2f}x")


def _measure(
    cluster: LocalCluster,
    service: DemoService,
    rollout: RolloutUnderTest,
    label: str,
    first: int,
    *,
    submitter: Submitter,
) -> dict[str, Any]:
    """Deploys and rollbacks of both tools, alternating; their raw samples."""
    ours, theirs = Figures([], []), Figures([], [])
    ours_watch = SelectorWatch(cluster, NAMESPACE, service.name)
    theirs_watch = SelectorWatch(cluster, NAMESPACE, rollout.name, label=HASH_LABEL)
    pod_watch = PodReadinessWatch(cluster, NAMESPACE)
    for watch in (ours_watch, theirs_watch, pod_watch):
        watch.start()
        assert watch.listed.wait(30), f"could not list {NAMESPACE}"
    try:
        for index in range(first, first + RUNS):
            tag = f"v{index}-{MODE}"
            _ours(cluster, service, ours_watch, pod_watch, tag, ours, submitter)
            _theirs(rollout, theirs_watch, pod_watch, tag, theirs)
    finally:
        for watch in (ours_watch, theirs_watch, pod_watch):
            watch.stop()
    _print(label, ours, theirs)
    return {"label": label, "submitter": submitter.name, "ours": _samples(ours), "theirs": _samples(theirs)}


def _samples(figures: Figures) -> dict[str, Any]:
    return {
        "deploys": [
            {"wall": s.wall, "readiness": s.readiness, "smoke": s.smoke, "submit": s.submit} for s in figures.deploys
        ],
        "rollbacks": figures.rollbacks,
    }


def test_side_by_side_with_argo_rollouts(local_cluster: LocalCluster, bench_results: BenchResults) -> None:
    """Both tools on one cluster, deploy for deploy, under Argo's default requeue time and then the tuned one."""
    install_manifests(local_cluster)
    if local_cluster.owned:
        local_cluster.retune(ClusterTuning(default_requeue_time=None))
    with RolloutsController(local_cluster, NAMESPACE):
        service = create_demo_service(local_cluster, name="side-ours", tag=f"v1-{MODE}", replicas=REPLICAS)
        adopted = service.deploy(demo_image(f"v1-{MODE}"))
        assert adopted.phase == "Succeeded", adopted.summary()
        rollout = RolloutUnderTest(local_cluster, "side-rollouts")
        rollout.create()
        settings = "Argo's default requeue time" if local_cluster.owned else "the attached cluster's settings"
        first = 2
        measured = []
        # With only a kubeconfig, as most CI jobs have it: Argo's CLI, then the plugin, which creates the Workflow.
        for submitter in (Submitter.ARGO_KUBECONFIG, Submitter.PLUGIN):
            label = f"{settings}, {submitter.value}"
            measured.append(_measure(local_cluster, service, rollout, label, first, submitter=submitter))
            first += RUNS
        if not local_cluster.owned:
            return
        local_cluster.retune(ClusterTuning(default_requeue_time=TUNED_REQUEUE))
        tuned = f"DEFAULT_REQUEUE_TIME={TUNED_REQUEUE}, {Submitter.ARGO_SERVER.value}"
        measured.append(_measure(local_cluster, service, rollout, tuned, first, submitter=Submitter.ARGO_SERVER))
        bench_results.record(
            "vs_rollouts",
            {"runs": RUNS, "replicas": REPLICAS, "tuned_requeue": TUNED_REQUEUE, "settings": measured},
        )
