"""``docs/spec-reference.md``: every field of a BlueGreenDeployment's spec, generated from the CRD's own schema.

The reference is written from the same structural schema the API server enforces (types, defaults, ranges, enums,
CEL rules and descriptions), so it cannot drift from the model; a unit test fails when the committed file is stale.
Regenerate with ``python -m pipelines.spec_reference`` (``make docs``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluegreen_spec as spec
from pipelines.crd import structural_schema

DEFAULT_PATH = Path("docs/spec-reference.md")

_INTRO = f"""# BlueGreenDeployment spec reference

Generated from `bluegreen_spec.py` by `python -m pipelines.spec_reference` (`make docs`); edit the model, not this
file. `kubectl explain {spec.SHORT_NAME}.spec --recursive` shows the same descriptions from the installed CRD.

A `BlueGreenDeployment` (`apiVersion: {spec.API_GROUP}/{spec.API_VERSION}`, short name `{spec.SHORT_NAME}`) is named
after the service it deploys. Field names are as written in YAML. A "required" field has no default; every other
field may be left out. Durations are written like `90s`, `30m`, `1h` or `1h30m`. A rule quotes the error of a CEL
rule on the CRD, so the API server refuses what breaks it, and `bluegreen-lint` refuses the same before that.
"""


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = node.get("type", "object")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type(node['additionalProperties'])}"
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    if kind == "string" and node.get("pattern") == spec.DURATION_PATTERN:
        return "duration"
    return str(kind)


def _constraints(node: dict[str, Any], with_rules: bool) -> list[str]:
    found = []
    if "minimum" in node and "maximum" in node:
        found.append(f"From {node['minimum']} to {node['maximum']}.")
    elif "minimum" in node:
        found.append(f"At least {node['minimum']}.")
    elif "maximum" in node:
        found.append(f"At most {node['maximum']}.")
    if "minItems" in node:
        found.append(f"At least {node['minItems']} item{'s' if node['minItems'] != 1 else ''}.")
    if "maxItems" in node:
        found.append(f"At most {node['maxItems']} items.")
    if node.get("x-kubernetes-list-type") == "map":
        found.append(f"Each {', '.join(node.get('x-kubernetes-list-map-keys', []))} is unique.")
    if with_rules:
        found.extend(f'Rule: "{rule["message"]}".' for rule in node.get("x-kubernetes-validations", []))
    return found


def _anchor(path: str) -> str:
    """The anchor GitHub gives a ``## `path` `` heading: lower case, punctuation dropped."""
    return "".join(c for c in path.lower() if c.isalnum() or c in "-_")


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node or node["default"] == {}:
        return ""
    return f"`{json.dumps(node['default'])}`"


def _sections(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object in the schema with properties, parents first, by its path (``spec.healthCheck.httpGet``)."""
    if node.get("properties"):
        yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _sections(child, f"{path}.{name}")
        if isinstance(child.get("items"), dict):
            yield from _sections(child["items"], f"{path}.{name}[]")


def render() -> str:
    """The whole reference as Markdown."""
    schema = structural_schema(spec.BlueGreenDeploymentSpec, default_objects=True)
    lines = [_INTRO]
    for path, node in _sections(schema, "spec"):
        lines.append(f"## `{path}`\n")
        lines.append(f"{_escape(node.get('description', ''))}\n")
        rules = [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
        for message in rules:
            lines.append(f'- Rule: "{_escape(message)}".')
        if rules:
            lines.append("")
        lines.append("| field | type | default | description |")
        lines.append("|---|---|---|---|")
        required = set(node.get("required", []))
        for name, child in node["properties"].items():
            item = child.get("items") if isinstance(child.get("items"), dict) else None
            own_section = f"{path}.{name}" if child.get("properties") else None
            if item is not None and item.get("properties"):
                own_section = f"{path}.{name}[]"
            kind = _type(child)
            if own_section:
                kind = f"[{kind}](#{_anchor(own_section)})"
            # An object's own rules are listed in its section; a scalar's are stated in its row.
            about = " ".join(
                [child.get("description", ""), *_constraints(child, with_rules=not child.get("properties"))]
            )
            lines.append(f"| `{name}` | {kind} | {_default(child, name in required)} | {_escape(about)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference, or with ``--check`` exit 1 when the file differs from what the model renders."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.spec_reference", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = args.path.read_text() if args.path.exists() else None
    if args.check:
        if current != text:
            print(f"stale: {args.path}; run `make docs` and commit the result", file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    if current != text:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(text)
    print(f"wrote {args.path}" if current != text else f"{args.path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
