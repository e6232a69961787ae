"""The admission policies cover every kind the Role lets the ServiceAccount write, and read params safely.

The policies' behaviour is proven on the real API server (``tests/integration/test_admission_attacks.py`` and
``test_admission_policy.py``); here, in milliseconds, the catalogue is held to the Role: a write rule added to
``STEP_RULES`` for a kind no policy covers fails this test before any cluster is started.
"""

from __future__ import annotations

import re

import pytest

from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENT_RECORDS, EVENTS, STEP_RULES
from bluegreen_spec import OPT_IN_LABEL, SERVICE_LABEL
from pipelines.admission_policy import IS_THE_SERVICE_ACCOUNT, POLICIES, POLICY_PREFIX, Policy, manifests

WRITES = {"create", "patch", "update", "delete"}
#: What the steps write that belongs to argo-bluegreen alone: its own resources' records and status, and Events.
OWN = {(r.group, r.plural) for r in (BLUE_GREEN_DEPLOYMENTS, DEPLOYMENT_RECORDS, EVENTS)}


def _covered(policies: tuple[Policy, ...]) -> set[tuple[str, str]]:
    return {resource for policy in policies for resource in policy.resources}


def test_every_kind_the_role_lets_the_steps_write_has_a_policy_of_its_own() -> None:
    written = {
        (resource.group, resource.plural)
        for rule in STEP_RULES
        if not rule.subresource and WRITES & set(rule.verbs)
        for resource in rule.resources
    } - OWN
    unparameterised = _covered(tuple(p for p in POLICIES if p.param_kind is None))
    assert written == unparameterised, f"uncovered: {written - unparameterised}, stale: {unparameterised - written}"
    assert len(written) == 8


def test_every_policy_concerns_the_service_account_alone() -> None:
    for policy in POLICIES:
        spec = policy.document()["spec"]
        assert spec["matchConditions"] == [
            {"name": "is-the-workflow-service-account", "expression": IS_THE_SERVICE_ACCOUNT}
        ]
        assert spec["failurePolicy"] == ("Ignore" if policy.name == "named-by-spec" else "Fail"), policy.name


@pytest.mark.parametrize("policy", [p for p in POLICIES if p.param_kind is not None], ids=lambda p: p.name)
def test_a_param_policy_reads_its_namespace_and_judges_only_our_objects(policy: Policy) -> None:
    bindings = policy.bindings()
    assert [b["spec"]["matchResources"]["objectSelector"] for b in bindings] == [
        {"matchExpressions": [{"key": label, "operator": "Exists"}]} for label in (SERVICE_LABEL, OPT_IN_LABEL)
    ]
    for binding in bindings:
        # Every param of the request's namespace is evaluated and must allow; none there leaves nothing to compare.
        assert binding["spec"]["paramRef"] == {"selector": {}, "parameterNotFoundAction": "Allow"}
        assert binding["spec"]["policyName"] == policy.full_name


def test_every_refusal_names_its_rule() -> None:
    for policy in POLICIES:
        for validation in policy.document()["spec"]["validations"]:
            assert re.search(r"\[[a-z-]+\]", validation["messageExpression"]), (policy.name, validation)


def test_the_files_are_named_after_the_policies() -> None:
    files = dict(manifests())
    assert len(files) == sum(1 + len(p.bindings()) for p in POLICIES)
    for path, document in files.items():
        assert path.startswith("admission/") and document["metadata"]["name"].startswith(POLICY_PREFIX), path
