"""CEL macros in the admission policies never reuse an enclosing macro's variable name.

In ``a.all(v, b.exists(v, v.x == v.y))`` the inner ``v`` hides the outer one, so a comparison meant to read one
item from each list reads the same item twice and always holds. The policies build such nested checks from
Python helpers, so a helper that picks a name an outer helper also uses opens a hole no reviewer sees in the
source; this reads every rendered expression instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines import submit_policy
from pipelines.admission_policy import manifests

MACRO = re.compile(r"\.(all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


def _closing(text: str, opening: int) -> int:
    """The index of the parenthesis that closes the one at ``opening``, skipping quoted strings."""
    depth, quote, index = 0, "", opening
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError(f"unbalanced parentheses after {text[opening : opening + 80]!r}")


def shadowed_variables(expression: str) -> list[str]:
    """Each macro variable declared again inside the body of a macro that already declared it."""
    found = []
    for match in MACRO.finditer(expression):
        opening = match.start() + 1 + len(match.group(1))  # the "(" after ".all", ".exists", ...
        body = expression[match.end() : _closing(expression, opening)]
        for inner in MACRO.finditer(body):
            if inner.group(2) == match.group(2):
                found.append(f"{match.group(2)} in .{match.group(1)}(...) is declared again by .{inner.group(1)}(...)")
    return found


def _expressions(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("expression", "messageExpression") and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(document, list):
        for item in document:
            yield from _expressions(item)


def test_the_check_finds_a_shadowed_variable() -> None:
    assert shadowed_variables("a.all(v, b.exists(v, v.x == 1))")
    assert not shadowed_variables("a.all(v, b.exists(w, w.x == v.x)) && c.all(v, v.y)")


POLICY_DOCUMENTS = [*(document for _, document in manifests()), submit_policy.policy()]


@pytest.mark.parametrize("document", POLICY_DOCUMENTS, ids=[d["metadata"]["name"] for d in POLICY_DOCUMENTS])
def test_no_policy_expression_hides_a_variable_of_an_enclosing_macro(document: dict[str, Any]) -> None:
    problems = [problem for expression in _expressions(document) for problem in shadowed_variables(expression)]
    assert not problems, problems
