"""Every field of both CRDs is described, so ``kubectl explain bgd.spec.healthCheck`` reads like documentation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines.crd import blue_green_deployment_crd, deployment_record_crd

CRDS = {"BlueGreenDeployment": blue_green_deployment_crd(), "DeploymentRecord": deployment_record_crd()}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


#: The API server forbids a CRD to say anything about metadata but its type; kubectl explains it as ObjectMeta.
SERVER_DESCRIBED = {"BlueGreenDeployment.metadata", "DeploymentRecord.metadata"}


def undescribed(node: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of the properties under ``node`` (through list items and map values) with no description."""
    for name, child in node.get("properties", {}).items():
        if f"{path}.{name}" not in SERVER_DESCRIBED and not str(child.get("description", "")).strip():
            yield f"{path}.{name}"
        yield from undescribed(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from undescribed(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_property_has_a_description(kind: str) -> None:
    assert list(undescribed(schema_of(CRDS[kind]), kind)) == []


def test_the_walk_finds_a_removed_description() -> None:
    schema = copy.deepcopy(schema_of(CRDS["BlueGreenDeployment"]))
    health_check = schema["properties"]["spec"]["properties"]["healthCheck"]
    del health_check["properties"]["httpGet"]["properties"]["port"]["description"]
    del schema["properties"]["spec"]["properties"]["smokeTests"]["items"]["properties"]["method"]["description"]
    assert list(undescribed(schema, "BlueGreenDeployment")) == [
        "BlueGreenDeployment.spec.healthCheck.httpGet.port",
        "BlueGreenDeployment.spec.smokeTests[].method",
    ]


def test_a_field_says_what_it_does_not_only_its_type() -> None:
    spec = schema_of(CRDS["BlueGreenDeployment"])["properties"]["spec"]["properties"]
    assert spec["healthCheck"]["properties"]["periodSeconds"]["description"] == "Seconds between probe attempts."
    assert spec["traffic"]["properties"]["istio"]["properties"]["virtualService"]["description"].startswith(
        "The VirtualService to route with"
    )
