"""docs/operations/troubleshooting.md explains every outcome a step closes a record with and every Event it writes."""

from __future__ import annotations

import ast
from pathlib import Path

import bluegreen_spec as spec

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "operations" / "troubleshooting.md").read_text()


def _calls(name: str) -> list[ast.Call]:
    """Every call in steps/ and the kubectl plugin of a function or method named ``name``."""
    found = []
    for source in sorted([*(REPO / "steps").rglob("*.py"), *(REPO / "kubectl_bluegreen").rglob("*.py")]):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append(node)
    return found


def _phases_in(call: ast.Call) -> set[str]:
    """The ``spec.Phase.<member>`` values named anywhere in the call's arguments."""
    return {
        spec.Phase[node.attr].value
        for node in ast.walk(call)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "Phase"
        and node.attr in spec.Phase.__members__
    }


def test_every_outcome_a_record_can_be_closed_with_has_a_section() -> None:
    outcomes = set().union(*(_phases_in(call) for call in _calls("close") + _calls("_finish")))
    assert outcomes >= {"Succeeded", "Failed", "RolledBack", "Aborted"}, outcomes
    missing = sorted(o for o in outcomes if f"### `{o}`" not in DOC)
    assert missing == [], f"docs/operations/troubleshooting.md has no section for outcome(s) {missing}"


def _strings(argument: ast.expr) -> set[str]:
    """The reason texts an argument can take: a literal, or either branch of ``a if cond else b``."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if isinstance(argument, ast.IfExp):
        return _strings(argument.body) | _strings(argument.orelse)
    raise AssertionError(f"an Event reason at line {argument.lineno} is not a literal this test can read")


def test_every_event_reason_the_steps_write_is_explained() -> None:
    reasons = set().union(*(_strings(call.args[0]) for call in _calls("event") if call.args))
    assert {"Switched", "RolledBack", "Promoted", "Routed"} <= reasons, reasons
    missing = sorted(r for r in reasons if f"| `{r}` |" not in DOC)
    assert missing == [], f"docs/operations/troubleshooting.md does not explain Event reason(s) {missing}"
