"""Waiting for the real deployment controller and the node agent to finish what a test set in motion.

A test that changes a Deployment (applies it, scales it, or lets a step do so) and then reads availability must first
let the rollout end, as the old stand-in's ``wait_idle()`` did. Here the controllers are real, so "settled" is read
from the API: each Deployment's status describes its current generation, and its rollout is either complete (every
replica updated and available, no old Pod counted) or has failed (Progressing=False, as after
ProgressDeadlineExceeded). That is :func:`steps.slots.availability`, the same reading the steps make.
"""

from __future__ import annotations

import time

from bluegreen_contract import DEPLOYMENTS
from steps import slots
from steps.kube import Kube, Obj

#: Generous: the node is shared by the whole session on a busy machine, and a Pod start is a process start.
SETTLE_TIMEOUT_SECONDS = 180.0
#: How often to look again. No single watch covers "every Deployment of a namespace has settled" without
#: re-evaluating the list, and the namespaces hold a handful of Deployments, so a short bounded poll is as cheap.
POLL_SECONDS = 0.2


def settled(deployment: Obj) -> bool:
    """Whether the controller has caught up with ``deployment`` and its rollout has ended, well or badly.

    A Deployment scaled to zero has settled once the controller observed it and no running Pod is counted any more;
    the steps never call such a slot available (it can take no traffic), but for waiting it is as finished as it gets.
    Pods still stopping are not waited for: they are out of every Service's endpoints already, and their graceful stop
    (the test app's 10 s preStop plus its drain) goes on in the background, as it does behind the steps in a real
    cluster. Waiting for it cost every adoption and every scale-down in the suite about 12 s.
    """
    if int(deployment["spec"].get("replicas", 1)) == 0:
        status = deployment.get("status") or {}
        observed = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        return observed and not int(status.get("replicas") or 0)
    state = slots.availability(deployment)
    return state.available or bool(state.failed_reason)


def wait_settled(kube: Kube, namespace: str, timeout: float = SETTLE_TIMEOUT_SECONDS) -> None:
    """Return once every Deployment in ``namespace`` has settled; TimeoutError naming the ones that have not."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [d for d in kube.list(DEPLOYMENTS, namespace) if not settled(d)]
        if not pending:
            return
        if time.monotonic() > deadline:
            described = ", ".join(f"{d['metadata']['name']} {d.get('status') or {}}" for d in pending)
            raise TimeoutError(f"Deployments in {namespace} not settled after {timeout:.0f} s: {described}")
        time.sleep(POLL_SECONDS)


__all__ = ["SETTLE_TIMEOUT_SECONDS", "settled", "wait_settled"]
