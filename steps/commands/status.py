"""``bluegreen-step status SERVICE``: the live slot (read from the route), image, phase and retention."""

from __future__ import annotations

import argparse

from steps.context import StepContext
from steps.kube import Kube


def run(kube: Kube, args: argparse.Namespace) -> int:
    """Print the service's state, one fact per line."""
    ctx = StepContext.open(kube, args.namespace, args.service, "status")
    status = ctx.status
    live = ctx.router.live_slot()
    facts = {
        "service": f"{ctx.namespace}/{ctx.service}",
        "router": ctx.resource.spec.traffic.router.value,
        "live slot (route)": live.value if live else "-",
        "active image": status.active_image or "-",
        "phase": status.phase.value,
        "previous slot": status.previous_slot.value if status.previous_slot else "-",
        "previous image": status.previous_image or "-",
        "retained until": status.retain_until or "-",
        "running workflow": status.workflow or "-",
    }
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    return 0


__all__ = ["run"]
