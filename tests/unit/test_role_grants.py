"""The rendered Role, read the way the API server's RBAC authorizer reads it: nothing forbidden, nothing wildcard.

The list of forbidden calls is written apart from the rules the Role is rendered from, so widening a rule (a verb
added, a resource added) is caught here in milliseconds; ``tests/integration/test_rbac.py`` asks the real API server.
"""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen_contract import FORBIDDEN_CALLS, ApiCall
from pipelines.rbac import role
from pipelines.settings import RenderSettings


def grants(rules: list[dict[str, Any]], call: ApiCall) -> bool:
    """Whether any rule allows ``call``, with RBAC's matching: ``*`` matches all, ``plural/sub`` a subresource."""
    resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
    return any(
        {call.group, "*"} & set(rule.get("apiGroups", []))
        and {resource, "*"} & set(rule.get("resources", []))
        and {call.verb, "*"} & set(rule.get("verbs", []))
        for rule in rules
    )


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = role(RenderSettings(namespace="apps"))["rules"]
    return rendered


@pytest.mark.parametrize("call", FORBIDDEN_CALLS, ids=str)
def test_the_role_grants_no_forbidden_call(rules: list[dict[str, Any]], call: ApiCall) -> None:
    assert not grants(rules, call), f"the Role allows {call}: {call.why}"


def test_the_role_names_no_wildcard(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"{field} of {rule} is a wildcard"


def test_the_matcher_sees_a_grant_and_a_wildcard() -> None:
    call = ApiCall("list", "", "configmaps")
    assert grants([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}], call)
    assert grants([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], call)
    assert not grants([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}], call)
    assert not grants([{"apiGroups": ["apps"], "resources": ["configmaps"], "verbs": ["list"]}], call)
