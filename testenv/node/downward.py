"""The downward API: a Pod's own fields and resources as strings, for env and for volumes.

Both ``env[].valueFrom`` and ``downwardAPI`` volume items name the same fields and resources
(https://kubernetes.io/docs/concepts/workloads/pods/downward-api/), so they are resolved here once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

JsonObj = dict[str, Any]

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class DownwardError(ValueError):
    """A field or resource the downward API does not offer."""


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``256Mi``, ``1e3``) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise DownwardError(f"invalid quantity {text!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


@dataclass(frozen=True)
class PodFacts:
    """What the downward API can expose about one Pod on this node."""

    pod: JsonObj
    pod_ip: str
    host_ip: str
    node_allocatable: dict[str, str]


def field_value(facts: PodFacts, field_path: str) -> str:
    """The value of ``fieldRef.fieldPath`` for the Pod."""
    meta = facts.pod.get("metadata", {})
    spec = facts.pod.get("spec", {})
    subscript = _SUBSCRIPT.match(field_path)
    if subscript:
        return str((meta.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(field_path.split(".")[1]) or {})
    raise DownwardError(f"unsupported fieldPath {field_path!r}")


def format_map(values: dict[str, str]) -> str:
    """Labels or annotations as a downward API file shows them: ``key="value"`` lines, sorted."""
    return "\n".join(f"{key}={json.dumps(values[key])}" for key in sorted(values))


def resource_value(facts: PodFacts, container_name: str, resource: str, divisor: str | None) -> str:
    """``resourceFieldRef``: a container's request or limit, the node's allocatable for a missing limit.

    Rounded up to a whole multiple of the divisor, as the kubelet does (so ``500m`` CPU with the
    default divisor 1 reads as ``1``).
    """
    containers = facts.pod.get("spec", {}).get("containers", []) + facts.pod.get("spec", {}).get("initContainers", [])
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        raise DownwardError(f"resourceFieldRef names unknown container {container_name!r}")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise DownwardError(f"unsupported resource {resource!r}")
    resources = container.get("resources", {})
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None and kind == "limits":
        raw = facts.node_allocatable.get(name)
    if raw is None:
        raw = "0"
    # The API server stores an unset divisor as "0", which means 1.
    amount = parse_quantity(str(raw)) / (parse_quantity(divisor or "0") or Decimal(1))
    return str(math.ceil(amount))
