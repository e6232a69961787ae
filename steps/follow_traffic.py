"""Team objects that move with the traffic (an autoscaler's target, a disruption budget's selector), best effort.

They are changed after the route has moved and is serving. A failure to change one leaves a degraded state to report
(an autoscaler scaling an idle slot, a budget protecting it), never a reason to move traffic back: it becomes a
warning in the run's record, and the step goes on.
"""

from __future__ import annotations

from collections.abc import Callable

from bluegreen_contract import ApiResource
from steps.context import StepContext
from steps.errors import ApiError
from steps.kube import Obj


def move_with_traffic(
    ctx: StepContext,
    resource: ApiResource,
    name: str,
    change: Callable[[Obj], bool],
    *,
    record: str,
    step: str,
    moved: tuple[str, str],
    not_moved: str,
) -> bool:
    """Read, ``change``, write back (a conflicting write is read again and retried); record what happened.

    ``moved`` is the record entry's event and message on success; ``not_moved`` opens the warning on failure.
    Returns whether the object now follows the traffic.
    """
    try:
        ctx.kube.modify(resource, ctx.namespace, name, change)
    except ApiError as failure:
        message = f"{not_moved}: {failure}"
        ctx.records.append(record, step, "warning", message)
        ctx.log("warning", message=message)
        return False
    event, message = moved
    ctx.records.append(record, step, event, message)
    ctx.log(event, kind=resource.kind, name=name, message=message)
    return True


__all__ = ["move_with_traffic"]
