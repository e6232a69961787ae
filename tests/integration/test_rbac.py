"""RBAC, proved on the real API server by impersonating the rendered ServiceAccount."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from bluegreen_contract import EXECUTOR_RULES, FORBIDDEN_CALLS, STEP_RULES, ApiCall
from pipelines.settings import SERVICE_ACCOUNT
from testenv.cluster import KubeCluster
from testenv.rest import request
from tests.integration.installation import install

pytestmark = pytest.mark.controlplane


def allowed(
    api: client.ApiClient, namespace: str | None, verb: str, group: str, resource: str, subresource: str = ""
) -> bool:
    """What the authorizer decides for the identity ``api`` acts as."""
    attributes: dict[str, Any] = {"verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    if namespace:
        attributes["namespace"] = namespace
    review = request(
        api,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    return bool(review["status"].get("allowed"))


@pytest.fixture
def deployer(
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    impersonating_client: Callable[[str, str], client.ApiClient],
) -> tuple[str, client.ApiClient]:
    namespace = make_namespace("rbac")
    install(kube_cluster.admin_api_client(), namespace)
    return namespace, impersonating_client(namespace, SERVICE_ACCOUNT)


def test_every_call_the_steps_and_the_executor_make_is_allowed(deployer: tuple[str, client.ApiClient]) -> None:
    namespace, api = deployer
    calls = [call for rule in (*STEP_RULES, *EXECUTOR_RULES) for call in rule.calls()]
    denied = [str(c) for c in calls if not allowed(api, namespace, c.verb, c.group, c.resource, c.subresource)]
    assert denied == []
    assert len(calls) == 70


@pytest.mark.parametrize("call", FORBIDDEN_CALLS, ids=str)
def test_forbidden_calls_are_denied(deployer: tuple[str, client.ApiClient], call: ApiCall) -> None:
    namespace, api = deployer
    assert not allowed(api, namespace, call.verb, call.group, call.resource, call.subresource)


def test_nothing_in_another_namespace_and_nothing_cluster_scoped(
    deployer: tuple[str, client.ApiClient], make_namespace: Callable[..., str]
) -> None:
    namespace, api = deployer
    other = make_namespace("other")
    assert allowed(api, namespace, "get", "apps", "deployments")
    assert not allowed(api, other, "get", "apps", "deployments")
    assert not allowed(api, other, "patch", "apps", "deployments")
    assert not allowed(api, None, "create", "", "namespaces")
    assert not allowed(api, None, "create", "rbac.authorization.k8s.io", "clusterroles")
    assert not allowed(api, None, "update", "apiextensions.k8s.io", "customresourcedefinitions")
    assert not allowed(api, None, "list", "apps", "deployments")  # across all namespaces


def test_real_requests_as_the_service_account(deployer: tuple[str, client.ApiClient]) -> None:
    """Not only the authorizer's word: actual reads and writes succeed or fail as the Role says."""
    namespace, api = deployer
    request(api, "GET", f"/apis/argo-bluegreen.io/v1alpha1/namespaces/{namespace}/bluegreendeployments")
    request(api, "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")
    with pytest.raises(Exception) as caught:
        request(api, "GET", f"/api/v1/namespaces/{namespace}/secrets")
    assert getattr(caught.value, "status", None) == 403
