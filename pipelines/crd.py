"""The CustomResourceDefinitions, rendered from the spec model's JSON schema rather than written by hand.

Kubernetes wants a *structural* openAPIV3Schema: every node typed, no ``$ref``, no ``anyOf`` around a type, and
``additionalProperties`` never beside ``properties``. Pydantic's JSON schema uses all of those, so this module
inlines references, unwraps optionals and drops what the API server would refuse, keeping every constraint
(patterns, ranges, enums, required fields, defaults) the server can enforce. Kubernetes' one exception, a value
that is a number or text (``x-kubernetes-int-or-string`` beside ``anyOf`` integer, string), is kept as declared.

Kubernetes reference: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
(sections "Specifying a structural schema" and "Additional printer columns").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import bluegreen_spec as spec

# Keywords an apiextensions.k8s.io/v1 JSONSchemaProps accepts that pydantic may emit; everything else is dropped.
_KEPT_KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
    "default",
    # CEL rules and list semantics the model declares (``json_schema_extra``), for what a schema cannot say.
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    # A value that is a number or text (with the ``anyOf`` below), as the model declares for it.
    "x-kubernetes-int-or-string",
}
#: The one ``anyOf`` a structural schema allows: beside ``x-kubernetes-int-or-string``, and exactly this.
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


# Marks a node that came from Optional[X]: absent means "off" (e.g. no analysis), so it must not be defaulted.
_NULLABLE = "x-argo-bluegreen-nullable"


def _resolve(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**_resolve(target, definitions), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, definitions)
    if node.get("x-kubernetes-int-or-string"):
        if node.get("anyOf") != _INT_OR_STRING:
            raise ValueError(f"x-kubernetes-int-or-string needs exactly anyOf {_INT_OR_STRING}: {node}")
        return node  # already structural, as the model wrote it
    if "anyOf" in node:
        # Optional[X] arrives as anyOf [X, null]; the API server expresses "may be absent" by "not required".
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {len(variants)} types structurally: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _resolve({**variants[0], **rest, _NULLABLE: True}, definitions)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve({**node["allOf"][0], **rest}, definitions)
    return {key: _resolve(value, definitions) for key, value in node.items()}


def _structural(node: dict[str, Any], default_objects: bool = False) -> dict[str, Any]:
    """Keep what a structural schema allows.

    With ``default_objects``, optional nested objects get ``default: {}`` so the API server materializes their
    scalar defaults too (it defaults only inside objects that exist), except objects whose absence means "off".
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            out[key] = value
            continue
        if key not in _KEPT_KEYWORDS:
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            required = set(node.get("required") or [])
            out[key] = {
                name: _structural(child, default_objects and name not in required) for name, child in value.items()
            }
        elif key == "items":
            out[key] = _structural(value)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _structural(value)
            # `false` beside `properties` is not allowed; unknown fields are pruned or refused by the server.
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out or "additionalProperties" in out:
        out.setdefault("type", "object")
    if (
        default_objects
        and "properties" in out
        and "default" not in out
        and not out.get("required")
        and not node.get(_NULLABLE)
    ):
        out["default"] = {}
    return out


def structural_schema(model: type[BaseModel], default_objects: bool = False) -> dict[str, Any]:
    """The structural openAPIV3Schema of a pydantic model, with wire (camelCase) names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    schema = _structural(_resolve(raw, definitions), default_objects)
    schema.pop("default", None)  # the root object itself is required, never defaulted
    return schema


def _resource_schema(spec_model: type[BaseModel], status_model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{spec.API_GROUP}/{spec.API_VERSION}"},
            "kind": {"type": "string", "description": "The kind of this object."},
            # The API server refuses anything but the type on metadata; kubectl explain shows ObjectMeta's own text.
            "metadata": {"type": "object"},
            "spec": structural_schema(spec_model, default_objects=True),
            "status": structural_schema(status_model),
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short_name: str,
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{spec.API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "argo-bluegreen"},
        },
        "spec": {
            "group": spec.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["argo-bluegreen"],
            },
            "versions": [
                {
                    "name": spec.API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def blue_green_deployment_crd() -> dict[str, Any]:
    """The CRD for ``BlueGreenDeployment``: ``kubectl get bgd`` shows the live slot, image and phase."""
    return _crd(
        kind=spec.KIND,
        plural=spec.PLURAL,
        short_name=spec.SHORT_NAME,
        schema=_resource_schema(
            spec.BlueGreenDeploymentSpec,
            spec.BlueGreenDeploymentStatus,
            "Blue-green deployment settings of one service, and where its traffic stands.",
        ),
        columns=[
            {"name": "Active", "type": "string", "jsonPath": ".status.activeSlot"},
            {"name": "Image", "type": "string", "jsonPath": ".status.activeImage"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Previous", "type": "string", "jsonPath": ".status.previousSlot", "priority": 1},
            {"name": "Retain-Until", "type": "date", "jsonPath": ".status.retainUntil", "priority": 1},
            {"name": "Workflow", "type": "string", "jsonPath": ".status.workflow", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    )


def deployment_record_crd() -> dict[str, Any]:
    """The CRD for ``DeploymentRecord``, the audit trail: ``kubectl get bgr -l argo-bluegreen.io/service=x``."""
    return _crd(
        kind=spec.RECORD_KIND,
        plural=spec.RECORD_PLURAL,
        short_name=spec.RECORD_SHORT_NAME,
        schema=_resource_schema(
            spec.DeploymentRecordSpec,
            spec.DeploymentRecordStatus,
            "The audit record of one blue-green run: who deployed which image, when, and how it ended.",
        ),
        columns=[
            {"name": "Service", "type": "string", "jsonPath": ".spec.service"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Outcome", "type": "string", "jsonPath": ".status.outcome"},
            {"name": "By", "type": "string", "jsonPath": ".spec.triggeredBy", "priority": 1},
            {"name": "Started", "type": "date", "jsonPath": ".spec.startedAt"},
        ],
    )


__all__ = ["blue_green_deployment_crd", "deployment_record_crd", "structural_schema"]
