"""What a release changes against the live slot, in lines a person reads in the record, the CLI and the Argo UI.

A release is no longer just an image: green is built from the team's Deployment as git last wrote it, so a deploy
may also carry new env, resources, probes or a sidecar. Before anything is written, preflight compares the pod
template the new slot will run with the live slot's and names each difference. The comparison leaves out the labels
the steps add themselves (slot, service, version), which differ between any two slots and say nothing of a release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import bluegreen_spec as spec

#: Pod labels the steps write on every slot: a difference in them is the slot, not the release.
OUR_POD_LABELS = frozenset({spec.SERVICE_LABEL, spec.SLOT_LABEL, spec.VERSION_LABEL})
#: Container fields named one by one; any other difference is reported by its field name.
_DETAILED_CONTAINER_FIELDS = ("name", "image", "env", "resources")
_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
MAX_CHANGES = spec.MAX_RELEASE_CHANGES
#: Characters of one line: an image or a resource quantity is short, and a record must stay small.
MAX_LINE = 240

Obj = Mapping[str, Any]


def _named(items: Iterable[Obj] | None) -> dict[str, Obj]:
    return {str(item.get("name", "")): item for item in items or []}


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """``{"requests": {"memory": "96Mi"}}`` as ``{"resources.requests.memory": "96Mi"}``."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def _env_changes(where: str, before: Obj, after: Obj) -> list[str]:
    old, new = _named(before.get("env")), _named(after.get("env"))
    lines = [f"{where}: env {name} added" for name in new if name not in old]
    lines += [f"{where}: env {name} removed" for name in old if name not in new]
    lines += [f"{where}: env {name} changed" for name in new if name in old and new[name] != old[name]]
    if (before.get("envFrom") or []) != (after.get("envFrom") or []):
        lines.append(f"{where}: envFrom changed")
    return lines


def _resource_changes(where: str, before: Obj, after: Obj) -> list[str]:
    old = _flat(before.get("resources") or {}, "resources") if before.get("resources") else {}
    new = _flat(after.get("resources") or {}, "resources") if after.get("resources") else {}
    lines = [f"{where}: {path} added ({new[path]})" for path in sorted(new) if path not in old]
    lines += [f"{where}: {path} removed ({old[path]})" for path in sorted(old) if path not in new]
    lines += [
        f"{where}: {path} changed ({old[path]} -> {new[path]})"
        for path in sorted(new)
        if path in old and new[path] != old[path]
    ]
    return lines


def _container_changes(kind: str, name: str, before: Obj, after: Obj, *, changing: bool) -> list[str]:
    where = f"{kind} {name}"
    lines = []
    if before.get("image") != after.get("image") and not changing:
        lines.append(f"{where}: image {before.get('image')} -> {after.get('image')}")
    lines += _env_changes(where, before, after)
    lines += _resource_changes(where, before, after)
    for probe in _PROBES:
        if probe in after and probe not in before:
            lines.append(f"{where}: {probe} added")
        elif probe in before and probe not in after:
            lines.append(f"{where}: {probe} removed")
        elif before.get(probe) != after.get(probe):
            lines.append(f"{where}: {probe} changed")
    detailed = {*_DETAILED_CONTAINER_FIELDS, "envFrom", *_PROBES}
    for field in sorted((set(before) | set(after)) - detailed):
        if before.get(field) != after.get(field):
            lines.append(f"{where}: {field} changed")
    return lines


def _containers_changes(
    kind: str, before: Iterable[Obj] | None, after: Iterable[Obj] | None, changing: str
) -> list[str]:
    old, new = _named(before), _named(after)
    lines = [f"{kind} {name} added ({new[name].get('image')})" for name in new if name not in old]
    lines += [f"{kind} {name} removed" for name in old if name not in new]
    for name in new:
        if name in old:
            lines += _container_changes(kind, name, old[name], new[name], changing=name == changing)
    return lines


def _team_labels(metadata: Obj) -> dict[str, str]:
    return {k: v for k, v in (metadata.get("labels") or {}).items() if k not in OUR_POD_LABELS}


def summarize(live: Obj, released: Obj, changing_container: str) -> list[str]:
    """The differences between two pod templates, the live slot's first; empty when they run the same thing.

    ``changing_container`` is the container whose image the release sets: its image change is the first line, named
    without the container, as the record's ``image`` and ``previousImage`` name it.
    """
    before_spec, after_spec = live.get("spec") or {}, released.get("spec") or {}
    old_containers, new_containers = _named(before_spec.get("containers")), _named(after_spec.get("containers"))
    lines = []
    if changing_container in old_containers and changing_container in new_containers:
        old_image = old_containers[changing_container].get("image")
        new_image = new_containers[changing_container].get("image")
        if old_image != new_image:
            lines.append(f"image: {old_image} -> {new_image}")
    lines += _containers_changes(
        "container", before_spec.get("containers"), after_spec.get("containers"), changing_container
    )
    lines += _containers_changes(
        "init container", before_spec.get("initContainers"), after_spec.get("initContainers"), ""
    )
    for field in sorted((set(before_spec) | set(after_spec)) - {"containers", "initContainers"}):
        if before_spec.get(field) != after_spec.get(field):
            lines.append(f"pod: {field} changed")
    before_meta, after_meta = live.get("metadata") or {}, released.get("metadata") or {}
    if _team_labels(before_meta) != _team_labels(after_meta):
        lines.append("pod: labels changed")
    if (before_meta.get("annotations") or {}) != (after_meta.get("annotations") or {}):
        lines.append("pod: annotations changed")
    lines = [line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..." for line in lines]
    if len(lines) > MAX_CHANGES:
        lines = [*lines[: MAX_CHANGES - 1], f"... and {len(lines) - MAX_CHANGES + 1} more"]
    return lines


def describe(changes: list[str]) -> str:
    """One line for a node message or a status line."""
    return "; ".join(changes) if changes else "no change: the same image and pod template as the live slot"


__all__ = ["MAX_CHANGES", "MAX_LINE", "OUR_POD_LABELS", "describe", "summarize"]
