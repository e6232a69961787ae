"""A service on the local cluster, driven the way its team drives it: `kubectl`, `argo submit`, real HTTP.

The end-to-end tests and ``make demo`` both use it, so the demo's story and the tests walk the same path.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluegreen_spec import OPT_IN_LABEL, SERVICE_LABEL, SLOT_LABEL
from testenv.local_cluster import LocalCluster
from testenv.rest import KubeApiError, list_items, request, request_text
from testenv.workflow_run import WorkflowRun

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "apps"  # the namespace the committed manifests are rendered for
DEMO_IMAGE = "ghcr.io/argo-bluegreen/demo-app"
DEPLOY_TEMPLATE = "workflowtemplate/blue-green-deploy"
ROLLBACK_TEMPLATE = "workflowtemplate/blue-green-rollback"
CLEANUP_CRON = "cronworkflow/blue-green-cleanup"
_SCALED_UP = re.compile(r"Scaled up replica set (\S+) (?:from \d+ )?to (\d+)")
BGD_PATH = "/apis/argo-bluegreen.io/v1alpha1/namespaces/{ns}/bluegreendeployments/{name}"


def demo_image(tag: str) -> str:
    """The demo app at ``tag``; a suffix such as ``-fail-smoke`` picks a failure mode."""
    return f"{DEMO_IMAGE}:{tag}"


def workflow_pods(cluster: LocalCluster, namespace: str, workflow: str) -> list[dict[str, Any]]:
    """The Pods ``workflow`` in ``namespace`` left, newest first."""
    pods = list_items(
        cluster.api,
        f"/api/v1/namespaces/{namespace}/pods",
        query={"labelSelector": f"workflows.argoproj.io/workflow={workflow}"},
    )
    return sorted(pods, key=lambda p: str(p["metadata"]["creationTimestamp"]), reverse=True)


@dataclass
class DemoService:
    """One service as a team has it before its first blue-green deploy: a Deployment, a Service and its spec."""

    cluster: LocalCluster
    name: str
    namespace: str = NAMESPACE

    # -- what users type --------------------------------------------------------------------------------------

    def argo(self, *args: str, check: bool = True, timeout: float = 600.0) -> str:
        """``argo <args> -n <namespace>``; returns stdout."""
        proc = self.cluster.run_tool(["argo", *args, "-n", self.namespace], check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"argo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def submit(self, source: str, *params: str, wait: bool = True, extra: tuple[str, ...] = ()) -> WorkflowRun:
        """``argo submit --from <source> -p service=<name> -p ... [--wait]``; the workflow as it ended (or started)."""
        args = ["submit", "--from", source, "-p", f"service={self.name}"]
        for param in params:
            args += ["-p", param]
        args += [*extra, "-o", "name"]
        if wait:
            args.append("--wait")
        # `argo submit --wait` exits 1 for a run that failed, which is an answer; without a name it is an error.
        proc = self.cluster.run_tool(["argo", *args, "-n", self.namespace], check=False, timeout=600.0)
        try:
            name = _workflow_name(proc.stdout)
        except AssertionError as error:
            raise AssertionError(f"{error}\nargo exited {proc.returncode}: {proc.stderr}") from None
        return self.workflow(name)

    def deploy(self, image: str, wait: bool = True) -> WorkflowRun:
        """Submit the deploy template for ``image``, as CI does."""
        return self.submit(DEPLOY_TEMPLATE, f"image={image}", wait=wait)

    def workflow(self, name: str) -> WorkflowRun:
        """``argo get <name> -o json``."""
        return WorkflowRun(json.loads(self.argo("get", name, "-o", "json")))

    def wait_workflow(self, name: str, timeout: float = 600.0) -> WorkflowRun:
        """``argo wait <name>``, then the workflow."""
        # `argo wait` exits 1 for a failed workflow, which is an answer here, not an error.
        self.argo("wait", name, timeout=timeout, check=False)
        return self.workflow(name)

    def retire(self) -> None:
        """Delete the service's spec, Deployments and Services, as a team retiring it would; its records stay.

        The Pods stop in the background. A session runs dozens of services on one node, and every Pod left running
        is a process the node agent probes every second for the rest of the session.
        """
        base = f"/namespaces/{self.namespace}"
        slots = {"labelSelector": f"{SERVICE_LABEL}={self.name}"}
        for path, query in (
            (BGD_PATH.format(ns=self.namespace, name=self.name), None),
            (f"/apis/apps/v1{base}/deployments/{self.name}", None),
            (f"/apis/apps/v1{base}/deployments", slots),
            (f"/api/v1{base}/services/{self.name}", None),
        ):
            try:
                request(self.cluster.api, "DELETE", path, query=query)
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
        for service in request(self.cluster.api, "GET", f"/api/v1{base}/services", query=slots)["items"]:
            name = service["metadata"]["name"]
            try:
                request(self.cluster.api, "DELETE", f"/api/v1{base}/services/{name}")
            except KubeApiError as exc:
                if exc.status != 404:
                    raise

    # -- what the cluster says --------------------------------------------------------------------------------

    def bgd(self) -> dict[str, Any]:
        """The BlueGreenDeployment as stored."""
        return request(self.cluster.api, "GET", BGD_PATH.format(ns=self.namespace, name=self.name))

    def status(self) -> dict[str, Any]:
        """The BlueGreenDeployment's status."""
        return dict(self.bgd().get("status") or {})

    def service(self) -> dict[str, Any]:
        """The application Service."""
        return request(self.cluster.api, "GET", f"/api/v1/namespaces/{self.namespace}/services/{self.name}")

    def live_slot(self) -> str:
        """The slot the application Service selects (the `service` router's live route)."""
        return str(self.service()["spec"]["selector"].get(SLOT_LABEL, ""))

    def deployment(self, name: str) -> dict[str, Any] | None:
        """A Deployment by name, or None."""
        try:
            return request(self.cluster.api, "GET", f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}")
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def slot(self, slot: str) -> dict[str, Any] | None:
        """The slot Deployment ``<name>-<slot>``."""
        return self.deployment(f"{self.name}-{slot}")

    def scale_ups(self, slot: str, image: str) -> list[int]:
        """The replica counts, in order, the deployment controller scaled the slot's ReplicaSet for ``image`` up to.

        Read from the controller's own ``ScalingReplicaSet`` events on the slot Deployment, so they show how the slot
        really rolled: ``[2]`` for every pod at once, ``[1, 2]`` for one at a time.
        """
        deployment = f"{self.name}-{slot}"
        replica_sets = list_items(
            self.cluster.api,
            f"/apis/apps/v1/namespaces/{self.namespace}/replicasets",
            query={"labelSelector": f"{SLOT_LABEL}={slot}"},
        )
        names = {
            rs["metadata"]["name"]
            for rs in replica_sets
            if any(o.get("name") == deployment for o in rs["metadata"].get("ownerReferences") or [])
            and any(c.get("image") == image for c in rs["spec"]["template"]["spec"]["containers"])
        }
        events = list_items(
            self.cluster.api,
            f"/api/v1/namespaces/{self.namespace}/events",
            query={"fieldSelector": f"involvedObject.name={deployment},reason=ScalingReplicaSet"},
        )
        # Events are stamped to the second; their names end in the time of their creation in hex nanoseconds.
        events.sort(key=lambda e: (str(e.get("lastTimestamp") or e.get("eventTime") or ""), e["metadata"]["name"]))
        counts = []
        for event in events:
            # "Scaled up replica set web-green-5d8f from 0 to 2" (older releases: "... web-green-5d8f to 2").
            found = _SCALED_UP.search(str(event.get("message", "")))
            if found and found.group(1) in names:
                counts.append(int(found.group(2)))
        return counts

    def records(self) -> list[dict[str, Any]]:
        """This service's DeploymentRecords, oldest first."""
        items = list_items(
            self.cluster.api,
            f"/apis/argo-bluegreen.io/v1alpha1/namespaces/{self.namespace}/deploymentrecords",
            query={"labelSelector": f"argo-bluegreen.io/service={self.name}"},
        )
        return sorted(items, key=lambda r: str(r["spec"].get("startedAt", "")))

    def record_of(self, workflow: str) -> dict[str, Any]:
        """The record of one run."""
        for record in self.records():
            if record["spec"].get("workflow") == workflow:
                return record
        raise AssertionError(
            f"no DeploymentRecord for workflow {workflow}; have {[r['metadata']['name'] for r in self.records()]}"
        )

    def container_log(self, pod: str, container: str) -> str:
        """The log of one container of a Pod, its stdout and stderr as the node agent kept them."""
        return request_text(
            self.cluster.api, f"/api/v1/namespaces/{self.namespace}/pods/{pod}/log", query={"container": container}
        )

    def workflow_pods(self, workflow: str) -> list[dict[str, Any]]:
        """The Pods ``workflow`` left, newest first."""
        return workflow_pods(self.cluster, self.namespace, workflow)

    def step_log(self, workflow: str, step: str) -> str:
        """The log of the latest container that ran ``step`` in ``workflow``, in a Pod of its own or of several."""
        for pod in self.workflow_pods(workflow):
            names = [c["name"] for c in pod["spec"]["containers"]]
            if step in names:
                return self.container_log(pod["metadata"]["name"], step)
            if _node_template(pod) == step:
                return self.container_log(pod["metadata"]["name"], "main")
        raise AssertionError(f"no Pod of {workflow} that ran {step} is left")

    def pod_deadline(self, workflow: str, template: str) -> int:
        """The deadline the controller gave the last run of the step ``template`` in ``workflow``.

        A step's own Pod has it as ``spec.activeDeadlineSeconds``. A step in the release Pod logs the deadline it
        took from preflight's outputs (its ``--deadline-seconds`` argument is only the cap), or else enforces that
        argument.
        """
        pods = self.workflow_pods(workflow)
        ran = [p for p in pods if _node_template(p) == template]
        if ran:
            return int(ran[0]["spec"]["activeDeadlineSeconds"])
        for pod in pods:
            for container in pod["spec"]["containers"]:
                if container["name"] != template:
                    continue
                for line in self.container_log(pod["metadata"]["name"], template).splitlines():
                    if '"action": "from-preflight"' in line:
                        return int(float(json.loads(line)["deadline_seconds"]))
                for arg in container.get("args") or []:
                    if arg.startswith("--deadline-seconds="):
                        return int(float(arg.split("=", 1)[1]))
        raise AssertionError(f"no Pod of {workflow} that ran {template} is left")

    def serving_version(self, path: str = "/version", timeout: float = 30.0) -> str:
        """The version that answers a real request to the Service's ClusterIP, through kube-proxy."""
        return answering_version(f"http://{self.service()['spec']['clusterIP']}:80{path}", timeout)

    def settles_on(self, version: str, timeout: float = 15.0) -> str:
        """The version answering the Service's ClusterIP once it is ``version``, or the last one seen at the deadline.

        A move of traffic ends when the Service's EndpointSlices name only the new slot; kube-proxy then programs the
        node within its own sync period, which has no API to wait on. Right after a move, a request may still reach
        the old slot for that long.
        """
        deadline = time.monotonic() + timeout
        while True:
            answered = self.serving_version()
            if answered == version or time.monotonic() > deadline:
                return answered
            time.sleep(0.2)  # bounded poll: kube-proxy's rules have no watch from outside the node


def _node_template(pod: dict[str, Any]) -> str:
    """The step a workflow Pod ran, from its node name: ``<workflow>.<step>``, or ``<workflow>.<step>(<retry>)``."""
    node = (pod["metadata"].get("annotations") or {}).get("workflows.argoproj.io/node-name", "")
    return str(node).rsplit(".", 1)[-1].split("(", 1)[0]


def answering_version(url: str, timeout: float = 30.0) -> str:
    """The demo app version (``X-Demo-Version``) that answers ``url``, waiting up to ``timeout`` for any answer."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.headers.get("X-Demo-Version", ""))
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout}s: {last}")
        time.sleep(0.2)  # bounded poll: kube-proxy's rules have no watch from outside the node


def _workflow_name(argo_output: str) -> str:
    for line in argo_output.splitlines():
        line = line.strip()
        if line and " " not in line and not line.startswith(("Name:", "STEP")):
            return line.split("/")[-1]
    raise AssertionError(f"argo submit printed no workflow name:\n{argo_output}")


def app_objects(name: str, image: str, replicas: int = 2, readiness: str = "http") -> list[dict[str, Any]]:
    """A team's Deployment and Service before argo-bluegreen, with the zero-downtime settings careful teams use.

    Both carry the label that lends them to the BlueGreenDeployment ``name``, as docs/install.md asks.
    """
    lent = {"app": name, OPT_IN_LABEL: name}
    probe: dict[str, Any] = (
        {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1}
        if readiness == "http"
        else {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(lent)},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": probe,
                            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(lent)},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    return [deployment, service]


def blue_green_spec(name: str, **overrides: Any) -> dict[str, Any]:
    """The seed's spec shape for ``name``, on the `service` router, with the demo app's endpoints."""
    spec: dict[str, Any] = {
        "replicas": 2,
        "healthCheck": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 0, "periodSeconds": 1},
        "smokeTests": [
            {"name": "api-availability", "endpoint": "/api/users/health"},
            {"name": "database-connectivity", "endpoint": "/api/health/db"},
        ],
        "rollbackOnFailure": True,
        "retainPreviousVersion": "1h",
        "traffic": {"router": "service"},
    }
    spec.update(overrides)
    return {
        "apiVersion": "argo-bluegreen.io/v1alpha1",
        "kind": "BlueGreenDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def install_manifests(cluster: LocalCluster, namespace: str = NAMESPACE) -> None:
    """The README's install: create the namespace the manifests are rendered for, then apply them server-side.

    The cluster's part (the CRDs and admission policies) goes first, then the namespace's, as the README says.
    """
    existing = cluster.run_tool(["kubectl", "get", "namespace", namespace], check=False)
    if existing.returncode != 0:
        cluster.run_tool(["kubectl", "create", "namespace", namespace])
    cluster.run_tool(["kubectl", "apply", "--server-side", "-k", str(REPO / "manifests" / "cluster")])
    cluster.run_tool(["kubectl", "apply", "--server-side", "-k", str(REPO / "manifests")])


def create_demo_service(
    cluster: LocalCluster,
    *,
    name: str | None = None,
    tag: str = "v1",
    readiness: str = "http",
    replicas: int = 2,
    namespace: str = NAMESPACE,
    **spec_overrides: Any,
) -> DemoService:
    """Apply a team's Deployment, Service and BlueGreenDeployment with `kubectl apply`; return once it is available.

    Availability is decided by the real deployment controller from the node agent's readiness probes. ``namespace``
    must be one argo-bluegreen is installed in.
    """
    name = name or f"svc-{uuid.uuid4().hex[:6]}"
    docs = [
        *app_objects(name, demo_image(tag), replicas=replicas, readiness=readiness),
        blue_green_spec(name, replicas=replicas, **spec_overrides),
    ]
    manifest = "\n---\n".join(json.dumps(doc) for doc in docs)
    cluster.run_tool(["kubectl", "apply", "-n", namespace, "-f", "-"], input_text=manifest)
    cluster.run_tool(
        ["kubectl", "rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=180s"], timeout=200
    )
    return DemoService(cluster, name, namespace=namespace)


def apply_service_file(cluster: LocalCluster, path: Path, name: str) -> DemoService:
    """`kubectl apply -n apps -f <path>` for a file holding a service's objects; return once its Deployment is up."""
    cluster.run_tool(["kubectl", "apply", "-n", NAMESPACE, "-f", str(path)])
    cluster.run_tool(
        ["kubectl", "rollout", "status", f"deployment/{name}", "-n", NAMESPACE, "--timeout=180s"], timeout=200
    )
    return DemoService(cluster, name)
