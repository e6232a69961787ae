"""Validation of Kubernetes' own kinds against the OpenAPI v3 schema of the Kubernetes release the project pins.

The k8s.io/kubernetes module carries the schema the API server publishes, one file per group and version, in
``api/openapi-spec/v3``. ``testenv/kubernetes_schema.py`` names that directory for the release testenv/go.mod
pins (the one the local cluster runs), and ``make manifests`` passes it as ``--kubernetes-schema``; nothing of it is
committed. Like ``kubectl --validate=strict``, every object that lists its properties is closed, so a misspelt field
is a finding, and a value of the wrong type is one, where the API server would otherwise refuse or drop it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from bluegreen_spec import yaml_type
from pipelines.lint.documents import Document, FieldPath
from pipelines.lint.findings import Finding

#: The core group's file; every release has it, so its absence means the directory is not the schema.
CORE_FILE = "api__v1_openapi.json"
_MISSING = (
    f"no {CORE_FILE} there; pass the api/openapi-spec/v3 directory of the k8s.io/kubernetes module "
    "(testenv/kubernetes_schema.py)"
)
#: Kinds kubectl handles itself rather than the API server: a ``List`` is split into its items before sending.
_CLIENT_KINDS = {"List"}
#: How a YAML author calls each JSON type, as the BlueGreenDeployment's own messages do.
_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


class SchemaError(Exception):
    """The schema directory, or one of its files, cannot be read: the lint cannot judge the objects it covers."""


def _file_name(group: str, version: str) -> str:
    """The schema file of one group and version, named after the API path it documents."""
    return f"api__{version}_openapi.json" if not group else f"apis__{group}__{version}_openapi.json"


def _release(directory: Path) -> str:
    """``Kubernetes v1.37.2`` from the module's directory name in Go's cache, for messages."""
    found = re.search(r"kubernetes@(v[0-9][^/]*)", str(directory.resolve()))
    return f"Kubernetes {found.group(1)}" if found else "Kubernetes"


def _close(schema: Any) -> None:
    """Forbid unknown fields in every object schema that lists its properties, following only schema keywords.

    Following keywords rather than every mapping matters: CustomResourceDefinition's JSONSchemaProps has
    properties named ``properties`` and ``additionalProperties``, which are field names there, not keywords.
    """
    if not isinstance(schema, dict):
        return
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for child in (schema.get("properties") or {}).values():
        _close(child)
    for keyword in ("items", "additionalProperties", "not"):
        _close(schema.get(keyword))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(keyword) or []:
            _close(child)


def _without_nulls(value: Any) -> Any:
    """The value with every ``field: null`` left out: the API server reads a null field as one not set."""
    if isinstance(value, dict):
        return {key: _without_nulls(child) for key, child in value.items() if child is not None}
    if isinstance(value, list):
        return [_without_nulls(child) for child in value]
    return value


def _as_sent(body: dict[str, Any]) -> dict[str, Any]:
    """The object as kubectl sends it: JSON, so an unquoted date is its text, and without null fields."""
    sent: dict[str, Any] = json.loads(json.dumps(_without_nulls(body), default=str))
    return sent


def field_label(body: Any, path: Sequence[str | int]) -> str:
    """``spec.template.spec.containers[web].ports[0]``: list items by their name when they have one."""
    label = ""
    node = body
    for part in path:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            label += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            node = item
        else:
            label += f".{part}" if label else part
            node = node.get(part) if isinstance(node, dict) else None
    return label or "<root>"


class _GroupVersion:
    """One group and version's schema file, closed, with a validator per kind made on first use."""

    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text())
            schemas: dict[str, Any] = document["components"]["schemas"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SchemaError(f"cannot read {path}: {error}") from error
        for schema in schemas.values():
            _close(schema)
        self._root = {"components": {"schemas": schemas}}
        self.kinds = {
            str(gvk["kind"]): name
            for name, schema in schemas.items()
            for gvk in schema.get("x-kubernetes-group-version-kind") or []
        }
        # Messages name the type a field belongs to, found from the very schema object an error points at.
        self.type_names = {id(schema): name.rsplit(".", 1)[-1] for name, schema in schemas.items()}
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, kind: str) -> Draft202012Validator | None:
        """The validator for ``kind``, or None when this group and version has no such kind."""
        name = self.kinds.get(kind)
        if name is None:
            return None
        if kind not in self._validators:
            self._validators[kind] = Draft202012Validator({**self._root, "$ref": f"#/components/schemas/{name}"})
        return self._validators[kind]


class KubernetesSchema:
    """The schema directory of one Kubernetes release; group-version files are read when an object needs them."""

    def __init__(self, directory: Path) -> None:
        if not (directory / CORE_FILE).is_file():
            raise SchemaError(_MISSING)
        self._directory = directory
        self.release = _release(directory)
        self._loaded: dict[str, _GroupVersion] = {}

    def _serves_group(self, group: str) -> bool:
        # A group this release does not have is a custom resource's (Argo's, ours, Prometheus'): not ours to judge.
        return not group or (self._directory / f"apis__{group}_openapi.json").is_file()

    def _versions(self, group: str) -> list[str]:
        if not group:
            return ["v1"]
        prefix = f"apis__{group}__"
        files = self._directory.glob(f"{prefix}*_openapi.json")
        return sorted(p.name.removeprefix(prefix).removesuffix("_openapi.json") for p in files)

    def _group_version(self, group: str, version: str) -> _GroupVersion | None:
        name = _file_name(group, version)
        if name not in self._loaded:
            path = self._directory / name
            if not path.is_file():
                return None
            self._loaded[name] = _GroupVersion(path)
        return self._loaded[name]

    def check(self, document: Document) -> list[Finding]:
        """Findings for one object of a Kubernetes kind; none for custom resources. Raises SchemaError."""
        api_version = str(document.body.get("apiVersion") or "")
        if not api_version or not document.kind or document.kind in _CLIENT_KINDS:
            return []  # a missing kind is the identity check's finding
        group, _, version = api_version.rpartition("/")
        if not self._serves_group(group):
            return []
        schema = self._group_version(group, version)
        if schema is None:
            served = ", ".join(f"{group}/{v}" for v in self._versions(group))
            message = f"{self.release} does not serve {api_version}; it serves {served}"
            return [Finding(document.where(("apiVersion",)), document.label, "apiVersion", message)]
        validator = schema.validator(document.kind)
        if validator is None:
            hint = _did_you_mean(document.kind, sorted(schema.kinds))
            message = f"{self.release}'s {api_version} has no kind {document.kind!r}{hint}"
            return [Finding(document.where(("kind",)), document.label, "kind", message)]
        body = _as_sent(document.body)
        findings: list[Finding] = []
        for error in validator.iter_errors(body):
            findings.extend(self._findings(document, body, schema, error))
        return findings

    def _findings(
        self, document: Document, body: dict[str, Any], schema: _GroupVersion, error: ValidationError
    ) -> list[Finding]:
        """The findings one validation error stands for, each at the place of the field to fix."""
        owner = f"{self.release}'s {schema.type_names.get(id(error.schema), document.kind)}"
        return [
            Finding(document.where(where), document.label, field_label(body, where), message)
            for where, message in self._problems(error, owner)
        ]

    def _problems(self, error: ValidationError, owner: str) -> list[tuple[FieldPath, str]]:
        """(field path, message) per problem: one error of unknown or missing fields names them all at once."""
        path: FieldPath = tuple(error.absolute_path)
        node = error.schema if isinstance(error.schema, dict) else {}
        value = error.validator_value
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(node.get("properties") or {})
            return [
                ((*path, key), f"unknown field: {owner} has no such field{_did_you_mean(str(key), known)}")
                for key in error.instance
                if key not in known
            ]
        if error.validator == "required" and isinstance(error.instance, dict) and isinstance(value, list):
            return [((*path, key), f"is required by {owner}") for key in value if key not in error.instance]
        if error.validator == "type":
            wanted = value if isinstance(value, list) else [value]
            return [(path, f"must be {_either(wanted)}, not {yaml_type(error.instance)}")]
        if error.validator in {"oneOf", "anyOf"} and isinstance(value, list):
            # IntOrString and Quantity, which are a number or text: branches that only name a type.
            types = [b["type"] for b in value if isinstance(b, dict) and set(b) == {"type"}]
            if len(types) == len(value):
                return [(path, f"must be {_either(types)}, not {yaml_type(error.instance)}")]
        return [(path, f"{self.release} schema: {error.message}")]


def _did_you_mean(word: str, known: list[str]) -> str:
    near = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {near[0]}?" if near else ""


def _either(types: list[Any]) -> str:
    """``a whole number or text``, from JSON type names."""
    return " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in types)


__all__ = ["CORE_FILE", "KubernetesSchema", "SchemaError", "field_label"]
