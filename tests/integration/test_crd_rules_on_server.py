"""The BlueGreenDeployment CRD's CEL rules and keyed lists, on the real API server, agree with the model.

Rules that a plain schema cannot state (unique smoke-test and query names, a query with a threshold, a sampling
interval above zero, waits within Argo's step deadlines) are rendered into the CRD as ``x-kubernetes-validations``
and ``x-kubernetes-list-type: map``, so ``kubectl apply`` refuses such a spec instead of the next run's preflight.
"""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes import client

import bluegreen_spec as spec
from testenv.apply import apply_manifest_objects
from testenv.cluster import KubeCluster
from tests.integration.installation import ensure_crds
from tests.unit.test_spec_properties import document, specs

pytestmark = pytest.mark.controlplane

VALID = {
    "healthCheck": {"httpGet": {"path": "/health", "port": 8080}},
    "smokeTests": [{"name": "home", "endpoint": "/"}],
    "analysis": {
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "queries": [{"name": "errors", "query": "sum(rate(errors[1m]))", "max": 1}],
    },
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def plant(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[last] = value

    return plant


def _drop_bounds(body: dict[str, Any]) -> None:
    del body["analysis"]["queries"][0]["max"]


#: (case, change, the model's field and words, the API server's words)
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("readiness-over-cap", _set("readinessTimeout", "45m"), "spec.readinessTimeout", "is over the cap of 14m"),
    ("smoke-budget-over-cap", _set("smokeTestBudget", "5m"), "spec.smokeTestBudget", "is over the cap of 4m"),
    ("window-over-cap", _set("analysis.window", "2h"), "spec.analysis.window", "is over the cap of 59m"),
    ("interval-zero", _set("analysis.interval", "0s"), "spec.analysis.interval", "is not above zero"),
    (
        "promotion-timeout-over-cap",
        _set("promotion", {"mode": "manual", "timeout": "1h1s"}),
        "spec.promotion.timeout",
        "is over the cap of 60m",
    ),
    ("promotion-mode-unknown", _set("promotion", {"mode": "later"}), "spec.promotion.mode", "Unsupported value"),
    ("query-without-threshold", _drop_bounds, "spec.analysis.queries[0]", "set max, min or both"),
    (
        "probe-budget-over-cap",
        _set("healthCheck", {"httpGet": {"port": 8080}, "periodSeconds": 60, "failureThreshold": 10}),  # 12 min
        "spec.healthCheck",
        "over the cap of 9m: Argo stops the probe step at 10m",
    ),
    (
        "signature-without-signer",
        _set("imagePolicy", {"signature": {"keys": [], "keyless": []}}),
        "spec.imagePolicy.signature",
        "list at least one public key or keyless identity",
    ),
    (
        "keyless-two-issuers",
        _set("imagePolicy", {"signature": {"keyless": [{"issuer": "a", "issuerRegExp": "b", "subject": "s"}]}}),
        "spec.imagePolicy.signature.keyless[0]",
        "set exactly one of issuer and issuerRegExp",
    ),
    (
        "keyless-no-subject",
        _set("imagePolicy", {"signature": {"keyless": [{"issuer": "a"}]}}),
        "spec.imagePolicy.signature.keyless[0]",
        "set exactly one of subject and subjectRegExp",
    ),
    (
        "attestation-without-signer",
        _set("imagePolicy", {"vulnerabilities": {"maxSeverity": "HIGH"}}),
        "spec.imagePolicy",
        "vulnerabilities needs signature",
    ),
    (
        "duplicate-smoke-test",
        _set("smokeTests", [{"name": "dup", "endpoint": "/a"}, {"name": "dup", "endpoint": "/b"}]),
        "spec.smokeTests",
        "duplicate entries for key [name=",
    ),
    (
        "duplicate-query",
        _set("analysis.queries", [{"name": "q", "query": "a", "max": 1}, {"name": "q", "query": "b", "min": 0}]),
        "spec.analysis.queries",
        "duplicate entries for key [name=",
    ),
]
MODEL_WORDS = {
    "promotion-mode-unknown": "'later' is not allowed; use one of 'auto' or 'manual'",
    "duplicate-smoke-test": "smoke test name 'dup' is used twice",
    "duplicate-query": "analysis query name 'q' is used twice",
}


@pytest.fixture
def server(kube_cluster: KubeCluster, make_namespace: Callable[..., str]) -> tuple[client.ApiClient, str]:
    api = kube_cluster.admin_api_client()
    ensure_crds(api)
    return api, make_namespace("crd")


def server_verdict(server: tuple[client.ApiClient, str], body: dict[str, Any]) -> str:
    """Empty when the API server would store ``body`` (a dry-run create), else its refusal."""
    api, namespace = server
    (result,) = apply_manifest_objects(api, [body], dry_run=True, namespace=namespace, stop_on_error=False)
    return "" if result.error is None else result.error.message


@pytest.mark.parametrize(("case", "change", "field", "server_says"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_api_server_and_the_model_refuse_the_same_spec(
    server: tuple[client.ApiClient, str],
    case: str,
    change: Callable[[dict[str, Any]], None],
    field: str,
    server_says: str,
) -> None:
    assert server_verdict(server, document(copy.deepcopy(VALID))) == "", "the valid starting point must be stored"
    body = copy.deepcopy(VALID)
    change(body)
    refusal = server_verdict(server, document(body))
    assert server_says in refusal, refusal
    with pytest.raises(spec.SpecError) as refused:
        spec.load_resource(document(body))
    problems = refused.value.problems
    assert any(p.startswith(f"{field}: ") and MODEL_WORDS.get(case, server_says) in p for p in problems), problems


# The namespace is shared by the examples: every create is a dry run, so none of them leaves an object behind.
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(specs)
def test_every_spec_the_model_accepts_is_stored_by_the_api_server(
    server: tuple[client.ApiClient, str], body: dict[str, Any]
) -> None:
    spec.load_resource(document(body))
    assert server_verdict(server, document(body)) == ""


def test_kubectl_explain_reads_the_models_descriptions(kube_cluster: KubeCluster) -> None:
    """The real kubectl, reading the API server's published OpenAPI, shows each field's description from the model."""
    ensure_crds(kube_cluster.admin_api_client())
    command = [
        str(kube_cluster.artifacts.kubectl),
        f"--kubeconfig={kube_cluster.kubeconfig_path}",
        "explain",
        "bgd.spec.healthCheck",
    ]
    # The API server publishes a new CRD's OpenAPI shortly after it is Established: a bounded poll, not a sleep.
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    explained = " ".join(result.stdout.split())
    for field in ("httpGet", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"):
        description = " ".join((spec.HealthCheck.model_fields[_snake(field)].description or "").split())
        assert description and description in explained, (
            f"{field}: {description!r} not in kubectl explain's output:\n{result.stdout}"
        )


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
