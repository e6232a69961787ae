"""Where probes and smoke tests call the idle slot, on Helm-style Services; and which steps Argo retries."""

from __future__ import annotations

from typing import Any

import yaml

import bluegreen_spec as spec
from pipelines.step_container import POD_LOSS_RETRY_EXPRESSION
from steps.preview_address import preview_base_url, smoke_base_url

TEMPLATE = {
    "spec": {
        "containers": [
            {
                "name": "cart",
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}],
            }
        ]
    }
}
HELM_SERVICE: dict[str, Any] = {
    "metadata": {"name": "cart", "namespace": "apps"},
    "spec": {
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "admin", "port": 8081, "targetPort": "admin"},
        ]
    },
}


def resource(**fields: Any) -> spec.BlueGreenDeployment:
    return spec.BlueGreenDeployment.model_validate(
        {"metadata": {"name": "cart"}, "spec": {"healthCheck": {"httpGet": {"port": 8080}}, **fields}}
    )


def test_named_target_port_is_resolved_through_the_pod_template() -> None:
    assert preview_base_url(resource(), HELM_SERVICE, "apps", TEMPLATE) == "http://cart-preview.apps.svc:80"


def test_smoke_tests_call_the_routed_port_not_the_health_port() -> None:
    health_on_admin = resource(healthCheck={"httpGet": {"port": 8081, "path": "/healthz"}})
    assert preview_base_url(health_on_admin, HELM_SERVICE, "apps", TEMPLATE).endswith(":8081")
    assert smoke_base_url(health_on_admin, "apps", 80) == "http://cart-preview.apps.svc:80"
    assert smoke_base_url(resource(smokeTestPort=8081), "apps", 80).endswith(":8081")


def test_probe_smoke_and_verify_are_retried_on_pod_errors_only() -> None:
    with open("manifests/workflows/blue-green-deploy.yaml") as rendered:
        templates = {t["name"]: t for t in yaml.safe_load(rendered)["spec"]["templates"]}
    for name in ("probe", "smoke", "verify"):
        retry = templates[name]["retryStrategy"]
        assert retry["expression"] == POD_LOSS_RETRY_EXPRESSION, name
        assert "--transient-retries=3" in templates[name]["container"]["args"], name
