"""Every image a release runs passes the spec's image policy, not only the one the run names.

A slot is built from the team's Deployment, so a commit can change a sidecar's or an init container's image as well
as the changing container's. Each of them must come from an allowed registry and, where the spec asks, be pinned by
digest. A signature policy verifies one image per run, the changing container's: a release that would also change
another container's image is refused, because nothing would verify it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bluegreen_spec as spec
from steps import images
from steps.errors import BadInput
from steps.release_source import changing_container_name

Obj = dict[str, Any]


def _images(template: Obj) -> Iterator[tuple[str, str, str]]:
    """(kind, container name, image) for every container and init container."""
    pod = template.get("spec") or {}
    for kind, field in (("container", "containers"), ("init container", "initContainers")):
        for container in pod.get(field) or []:
            yield kind, str(container.get("name", "")), str(container.get("image", ""))


def check(source: Obj, live: Obj, resource: spec.BlueGreenDeployment) -> None:
    """Refuse, before any write, a release whose other images the policy does not allow or cannot verify."""
    changing = changing_container_name(source, resource.spec.container)
    policy = resource.spec.image_policy
    before = {(kind, name): old for kind, name, old in _images(live["spec"]["template"])}
    where = f"Deployment {source['metadata']['name']}"
    for kind, name, other in _images(source["spec"]["template"]):
        if kind == "container" and name == changing:
            continue  # the run's own image, checked and verified as the run's
        try:
            images.check_policy(images.parse(other), policy, resource.service)
        except BadInput as refused:
            raise BadInput(f"{where}, {kind} {name}: {refused}") from None
        if policy.signature is not None and before.get((kind, name)) != other:
            own_run = f"release it in a run of its own (spec.container: {name}), or " if kind == "container" else ""
            raise BadInput(
                f"{where} changes the image of {kind} {name} to {other!r}, but spec.imagePolicy.signature of "
                f"BlueGreenDeployment {resource.service} verifies only container {changing}'s image in a run; "
                f"{own_run}keep the image the live slot runs"
            )


__all__ = ["check"]
