"""The two slot Deployments of a service, ``<svc>-blue`` and ``<svc>-green``, and what surrounds them.

A slot is built from the live slot's pod template with only the image of one container changed, so everything the
platform team tuned (probes, preStop, resources, affinity) carries over. Waiting for a slot is a watch on its
Deployment with a deadline; ``Progressing=False`` ends the wait at once, naming the reason the pods give.

Kubernetes reference: https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, PODS, SERVICES
from steps import images
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube, Obj, labels_selector
from steps.log import StepLog

#: Annotation on a slot Deployment naming the image it was deployed with, as the pipeline asked for it.
IMAGE_ANNOTATION = f"{spec.API_GROUP}/image"
#: Annotation on a slot Deployment naming the run that deployed it.
RECORD_ANNOTATION = f"{spec.API_GROUP}/record"
ADOPTED_ANNOTATION = spec.ADOPTED_ANNOTATION


@dataclass(frozen=True)
class Availability:
    """Where a slot Deployment's rollout stands."""

    available: bool
    failed_reason: str = ""
    ready: int = 0
    wanted: int = 0


def deployment_name(service: str, slot: spec.Slot) -> str:
    """``<service>-<slot>``."""
    return f"{service}-{slot.value}"


def container_index(template: Obj, container: str | None, where: str) -> int:
    """Index of the container whose image changes: the named one, or the first."""
    containers = template["spec"]["containers"]
    if container is None:
        return 0
    for index, candidate in enumerate(containers):
        if candidate.get("name") == container:
            return index
    names = [c.get("name") for c in containers]
    raise BadInput(f"{where} has no container {container!r} (it has {names}); fix spec.container")


def current_image(deployment: Obj, container: str | None) -> str:
    """The image the changing container runs."""
    template = deployment["spec"]["template"]
    return str(template["spec"]["containers"][container_index(template, container, "Deployment")]["image"])


VERSION_LABEL = spec.VERSION_LABEL

#: Argo CD's default tracking label: on a slot Deployment it would make Argo CD claim (and prune) our slots.
ARGOCD_TRACKING_LABEL = "app.kubernetes.io/instance"
ARGOCD_PREFIX = "argocd.argoproj.io/"


def untracked(labels: dict[str, str]) -> dict[str, str]:
    """Deployment labels without Argo CD's tracking ones; the pod template keeps its labels (Services select them)."""
    return {k: v for k, v in labels.items() if k != ARGOCD_TRACKING_LABEL and not k.startswith(ARGOCD_PREFIX)}


def selector_keys(selector: Obj) -> set[str]:
    """The label keys a label selector constrains, in ``matchLabels`` or ``matchExpressions``."""
    expressions = selector.get("matchExpressions") or []
    return set(selector.get("matchLabels") or {}) | {str(e["key"]) for e in expressions if "key" in e}


#: How a slot Deployment replaces its pods: every new pod at once, and no old pod goes before the new ones are
#: available. A deploy replaces the pods of the idle slot, which takes no traffic, so the team's rolling strategy
#: (with 3 replicas the default lets one new pod up at a time) would only multiply the app's readiness by the number
#: of replicas. Keeping ``maxUnavailable`` at 0 still guards the live slot: a ``kubectl rollout restart`` of it
#: surges a full set of pods beside the serving ones instead of taking them all down. The cost is a transient second
#: set of the slot's pods while it changes.
SLOT_STRATEGY: Obj = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}


def slot_deployment(
    source: Obj, service: str, slot: spec.Slot, image: str, container: str | None, replicas: int, record: str
) -> Obj:
    """The desired slot Deployment: ``source``'s pod template with one image replaced and slot labels added."""
    template = copy.deepcopy(source["spec"]["template"])
    index = container_index(template, container, f"Deployment {source['metadata']['name']}")
    template["spec"]["containers"][index]["image"] = image
    slot_labels = {spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot.value}
    metadata = template.setdefault("metadata", {})
    selector = copy.deepcopy(source["spec"]["selector"])
    # The version label goes on the pods only, never into the selector (immutable), so the app's own metrics, logs
    # and traces can be split by version while two versions are live. A team whose own selector names it keeps its
    # value: changing it would leave the pods outside the Deployment's selector, which the API server refuses.
    version = {} if VERSION_LABEL in selector_keys(selector) else {VERSION_LABEL: images.version_label(image)}
    metadata["labels"] = {**(metadata.get("labels") or {}), **slot_labels, **version}
    metadata.pop("creationTimestamp", None)
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **slot_labels}
    spec_body: Obj = {
        "replicas": replicas,
        "selector": selector,
        "template": template,
        "strategy": copy.deepcopy(SLOT_STRATEGY),
    }
    for field in ("minReadySeconds", "progressDeadlineSeconds", "revisionHistoryLimit"):
        if field in source["spec"]:
            spec_body[field] = copy.deepcopy(source["spec"][field])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(service, slot),
            "namespace": source["metadata"]["namespace"],
            "labels": {**untracked(source["metadata"].get("labels") or {}), **slot_labels},
            "annotations": {IMAGE_ANNOTATION: image, RECORD_ANNOTATION: record},
        },
        "spec": spec_body,
    }


#: How long the idle slot's Deployment may take to go once deleted for a new selector.
SELECTOR_CHANGE_TIMEOUT_SECONDS = 60.0


def selector_changed(existing: Obj | None, desired: Obj) -> bool:
    """Whether the slot exists with another selector than ``desired``'s, which the API server never updates."""
    return existing is not None and existing["spec"]["selector"] != desired["spec"]["selector"]


def delete_and_wait(kube: Kube, namespace: str, name: str, log: StepLog) -> None:
    """Delete a slot Deployment and its pods in the foreground, and return once it is gone.

    Foreground deletion keeps the Deployment until its ReplicaSets and pods are gone, so no pod of the old template
    is left for the preview to offer to probes and smoke tests of the new one.
    """
    kube.delete(DEPLOYMENTS, namespace, name, propagation="Foreground")
    log("slot-deleted", deployment=name)
    deadline = time.monotonic() + SELECTOR_CHANGE_TIMEOUT_SECONDS
    while (going := kube.get(DEPLOYMENTS, namespace, name)) is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CheckFailed(
                f"Deployment {namespace}/{name} was deleted for the team's new selector but is still there after "
                f"{SELECTOR_CHANGE_TIMEOUT_SECONDS:.0f} s; check its finalizers and deploy again"
            )
        for _event in kube.watch(
            DEPLOYMENTS,
            namespace,
            name=name,
            resource_version=going["metadata"]["resourceVersion"],
            timeout_seconds=max(1, min(int(remaining) + 1, 10)),
        ):
            break  # re-read on any change


def ready_replicas(deployment: Obj | None) -> int:
    """Ready replicas a Deployment reports, 0 when absent."""
    if deployment is None:
        return 0
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def availability(deployment: Obj) -> Availability:
    """Whether the Deployment's current generation has every replica updated and available."""
    status = deployment.get("status") or {}
    wanted = int(deployment["spec"].get("replicas", 1))
    if wanted == 0:
        # "0 of 0 available" is vacuously complete, but a slot without pods can take no traffic.
        return Availability(False, "", 0, 0)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    observed = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
    if observed and progressing.get("status") == "False":
        return Availability(
            False,
            f"{progressing.get('reason')}: {progressing.get('message', '')}",
            int(status.get("availableReplicas") or 0),
            wanted,
        )
    available = (
        observed
        and int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
    )
    return Availability(available, "", int(status.get("availableReplicas") or 0), wanted)


def pod_problems(kube: Kube, namespace: str, selector: dict[str, str]) -> list[str]:
    """Why a slot's pods are not ready, as the kubelet reports it (ImagePullBackOff, CrashLoopBackOff, ...)."""
    problems = []
    for pod in kube.list(PODS, namespace, labels_selector(selector)):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason"):
                problems.append(
                    f"{pod['metadata']['name']}/{container.get('name')}: {waiting['reason']}"
                    + (f" ({waiting['message']})" if waiting.get("message") else "")
                )
    return sorted(set(problems))[:5]


def wait_available(kube: Kube, namespace: str, name: str, timeout_seconds: float, log: StepLog) -> Obj:
    """Watch the Deployment until every replica is available; fail fast on ProgressDeadlineExceeded."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        live = kube.must_get(DEPLOYMENTS, namespace, name)
        state = availability(live)
        if state.available:
            log("slot-available", deployment=name, replicas=state.wanted)
            return live
        selector = live["spec"]["selector"].get("matchLabels") or {}
        if state.failed_reason:
            reasons = pod_problems(kube, namespace, selector)
            raise CheckFailed(
                f"Deployment {namespace}/{name} failed: {state.failed_reason}"
                + (f"; pods: {', '.join(reasons)}" if reasons else "")
                + "; fix the image or the pod spec and deploy again"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reasons = pod_problems(kube, namespace, selector)
            raise CheckFailed(
                f"Deployment {namespace}/{name} not available within {timeout_seconds:.0f} s "
                f"({state.ready}/{state.wanted} available)"
                + (f"; pods: {', '.join(reasons)}" if reasons else "")
                + "; check the pods, or raise spec.readinessTimeout"
            )
        for _event_type, _obj in kube.watch(
            DEPLOYMENTS,
            namespace,
            name=name,
            resource_version=live["metadata"]["resourceVersion"],
            timeout_seconds=max(1, min(int(remaining) + 1, 60)),
        ):
            break  # re-read and re-evaluate on any change


def scale(kube: Kube, namespace: str, name: str, replicas: int, log: StepLog) -> bool:
    """Set a Deployment's replicas; False when it already had that many or does not exist."""
    live = kube.get(DEPLOYMENTS, namespace, name)
    if live is None or int(live["spec"].get("replicas", 1)) == replicas:
        return False
    kube.merge_patch(DEPLOYMENTS, namespace, name, {"spec": {"replicas": replicas}})
    log("slot-scaled", deployment=name, replicas=replicas)
    return True


#: The port fields a Service of ours copies from the application's Service; the rest (nodePort) is the cluster's.
#: ``appProtocol`` matters to meshes and gateways (Istio picks the protocol from it), so it travels with the port.
_COPIED_PORT_FIELDS = {"name", "port", "targetPort", "protocol", "appProtocol"}


def selecting_service(main_service: Obj, name: str, labels: dict[str, str], selector: dict[str, str]) -> Obj:
    """A Service of ours beside the application's: its ports, its selector narrowed by ``selector``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": main_service["metadata"]["namespace"], "labels": labels},
        "spec": {
            "selector": {**(main_service["spec"].get("selector") or {}), **selector},
            "ports": [
                {key: value for key, value in port.items() if key in _COPIED_PORT_FIELDS}
                for port in main_service["spec"].get("ports") or []
            ],
        },
    }


def preview_service(resource: spec.BlueGreenDeployment, main_service: Obj, slot: spec.Slot) -> Obj:
    """The Service that selects only ``slot``'s pods, for probes and smoke tests before any user traffic."""
    return selecting_service(
        main_service,
        resource.preview_service_name(),
        {spec.SERVICE_LABEL: resource.service},
        {spec.SERVICE_LABEL: resource.service, spec.SLOT_LABEL: slot.value},
    )


def point_preview(kube: Kube, resource: spec.BlueGreenDeployment, main_service: Obj, slot: spec.Slot) -> None:
    """Create or converge the preview Service onto ``slot``."""
    kube.apply(SERVICES, main_service["metadata"]["namespace"], preview_service(resource, main_service, slot))


__all__ = [
    "ADOPTED_ANNOTATION",
    "ARGOCD_TRACKING_LABEL",
    "IMAGE_ANNOTATION",
    "RECORD_ANNOTATION",
    "VERSION_LABEL",
    "Availability",
    "availability",
    "container_index",
    "current_image",
    "delete_and_wait",
    "deployment_name",
    "pod_problems",
    "point_preview",
    "ready_replicas",
    "scale",
    "selecting_service",
    "selector_changed",
    "selector_keys",
    "slot_deployment",
    "untracked",
    "wait_available",
]
