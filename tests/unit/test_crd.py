from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipelines.crd import blue_green_deployment_crd, deployment_record_crd

CRDS = {"bluegreendeployments": blue_green_deployment_crd(), "deploymentrecords": deployment_record_crd()}


def nodes(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        found += nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += nodes(schema["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("plural", sorted(CRDS))
def test_schema_is_structural(plural: str) -> None:
    schema = CRDS[plural]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in nodes(schema):
        if node.get("x-kubernetes-int-or-string"):
            # Kubernetes' one exception to "every node typed, no anyOf": a number or text, typed by exactly this.
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}] and "type" not in node, path
            continue
        assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs", "title", "const"} & node.keys(), path
        assert "type" in node or path == ".metadata", f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_bluegreendeployment_crd_shape() -> None:
    crd = CRDS["bluegreendeployments"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "bluegreendeployments.argo-bluegreen.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["bgd"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Active"] == ".status.activeSlot"
    assert columns["Image"] == ".status.activeImage"
    assert columns["Phase"] == ".status.phase"
    assert columns["Age"] == ".metadata.creationTimestamp"
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec_schema["required"] == ["healthCheck"]
    assert spec_schema["properties"]["traffic"]["properties"]["router"]["enum"] == ["istio", "service", "gateway-api"]
    port = spec_schema["properties"]["healthCheck"]["properties"]["httpGet"]["properties"]["port"]
    assert (port["minimum"], port["maximum"]) == (1, 65535)


def test_status_has_every_field_design_promises() -> None:
    status = CRDS["bluegreendeployments"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert {
        "phase",
        "activeSlot",
        "activeImage",
        "previousSlot",
        "previousImage",
        "retainUntil",
        "workflow",
        "conditions",
        "history",
    } <= status["properties"].keys()


def test_expected_status_is_a_code_as_a_number_or_text_on_the_server_too() -> None:
    """The API server stores ``expectedStatus: [200]`` as the model reads it, and refuses what the model refuses."""
    schema = CRDS["bluegreendeployments"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    smoke_test = schema["properties"]["spec"]["properties"]["smokeTests"]["items"]
    item = smoke_test["properties"]["expectedStatus"]["items"]
    assert item["x-kubernetes-int-or-string"] is True
    validator = Draft202012Validator(item)
    assert [validator.is_valid(value) for value in (100, 200, 599, "2xx", "204")] == [True] * 5
    assert [validator.is_valid(value) for value in (99, 600, "2XX", "600", True, 2.5)] == [False] * 6
