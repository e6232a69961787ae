from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import bluegreen_spec as spec

REPO = Path(__file__).resolve().parents[2]


def seed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "examples" / "user-service.yaml").read_text())
    return document


def with_spec(**changes: Any) -> dict[str, Any]:
    document = seed()
    document["spec"].update(changes)
    return document


def test_seed_example_loads_with_its_own_values_and_defaults() -> None:
    resource = spec.load_resource(seed())
    assert resource.service == "user-service"
    assert resource.spec.replicas == 3
    assert resource.spec.health_check.http_get.path == "/health"
    assert resource.spec.health_check.http_get.port == 8080
    assert resource.spec.health_check.initial_delay_seconds == 10
    assert resource.spec.health_check.period_seconds == 5
    assert [t.name for t in resource.spec.smoke_tests] == ["api-availability", "database-connectivity"]
    assert resource.spec.rollback_on_failure is True
    assert spec.parse_duration(resource.spec.retain_previous_version) == timedelta(hours=1)
    # Defaults for everything the seed does not say.
    assert resource.spec.health_check.timeout_seconds == 1
    assert resource.spec.health_check.success_threshold == 1
    assert resource.spec.health_check.failure_threshold == 3
    assert resource.spec.smoke_tests[0].method == "GET"
    assert resource.spec.smoke_tests[0].expected_status == ["2xx"]
    assert resource.spec.smoke_test_budget == "30s"
    assert resource.spec.traffic.router is spec.RouterKind.istio
    assert resource.spec.analysis is None
    assert resource.spec.history_limit == 20


def test_router_object_names_default_from_the_service_name() -> None:
    resource = spec.load_resource(seed())
    assert resource.virtual_service_name() == "user-service"
    assert resource.destination_rule_name() == "user-service"
    assert resource.router_service_name() == "user-service"
    assert resource.http_route_name() == "user-service"
    assert resource.preview_service_name() == "user-service-preview"
    named = spec.load_resource(with_spec(traffic={"router": "istio", "istio": {"virtualService": "users-vs"}}))
    assert named.virtual_service_name() == "users-vs"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"retainPreviousVersion": "1 hour"},
            "spec.retainPreviousVersion: '1 hour' is not allowed; use a duration such as 90s, 30m or 1h",
        ),
        (
            {"retainPreviousVersion": "60"},
            "spec.retainPreviousVersion: '60' is not allowed; use a duration such as 90s, 30m or 1h",
        ),
        (
            {"healthCheck": {"httpGet": {"path": "/health", "port": 70000}}},
            "spec.healthCheck.httpGet.port: 70000 is out of range; it must be less than or equal to 65535",
        ),
        (
            {"healthCheck": {"httpGet": {"path": "/health", "port": 0}}},
            "spec.healthCheck.httpGet.port: 0 is out of range; it must be greater than or equal to 1",
        ),
        (
            {"healthCheck": {"httpGet": {"port": 8080}, "failureThreshold": 0}},
            "spec.healthCheck.failureThreshold: 0 is out of range; it must be greater than or equal to 1",
        ),
        (
            {"healthCheck": {"httpGet": {"port": 8080}, "successThreshold": 0}},
            "spec.healthCheck.successThreshold: 0 is out of range; it must be greater than or equal to 1",
        ),
        (
            {"smokeTests": [{"name": "Api_Check", "endpoint": "/x"}]},
            "spec.smokeTests[0].name: 'Api_Check' is not allowed; use a DNS-1123 label: lower-case letters, digits "
            "and '-', starting and ending alphanumeric",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "health"}]},
            "spec.smokeTests[0].endpoint: 'health' is not allowed; "
            "use an HTTP path starting with / and without spaces",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "/x", "expectedStatus": ["2XX"]}]},
            "spec.smokeTests[0].expectedStatus[0]: '2XX' is not allowed; use an HTTP status code such as 200 or a "
            "class such as 2xx",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "/x", "expectedStatus": [600]}]},
            "spec.smokeTests[0].expectedStatus[0]: 600 is not an HTTP status code; use 100 to 599, or a class such "
            "as 2xx",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "/x", "expectedStatus": [True]}]},
            "spec.smokeTests[0].expectedStatus[0]: must be an HTTP status code such as 200 or a class such as 2xx, "
            "not the boolean true",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "/x"}, {"name": "a", "endpoint": "/y"}]},
            "spec.smokeTests: smoke test name 'a' is used twice; names must be unique",
        ),
        (
            {"traffic": {"router": "nginx"}},
            "spec.traffic.router: 'nginx' is not allowed; use one of 'istio', 'service' or 'gateway-api'",
        ),
        (
            {"replicaz": 3},
            "spec.replicaz: is not a known field; check its spelling against the BlueGreenDeployment reference",
        ),
        (
            {"analysis": {"prometheusUrl": "http://prom:9090", "queries": [{"name": "errors", "query": "up"}]}},
            "spec.analysis.queries[0]: set max, min or both: a query without a threshold can never fail",
        ),
        (
            {
                "analysis": {
                    "prometheusUrl": "http://prom:9090",
                    "interval": "0s",
                    "queries": [{"name": "errors", "query": "up", "max": 1}],
                }
            },
            "spec.analysis.interval: '0s' is not above zero; sample at least every second, such as 30s",
        ),
        (
            {"readinessTimeout": "15m"},
            "spec.readinessTimeout: '15m' is over the cap of 14m: adoption, deploy-green and a rollback onto a "
            "scaled-down slot each wait this long for availability, and Argo stops preflight (15m) and deploy-green "
            "(20m) and rollback (15m) at its deadline; use at most 14m",
        ),
        (
            {"promotion": {"mode": "manual", "timeout": "61m"}},
            "spec.promotion.timeout: '61m' is over the cap of 60m: a manual run waits this long for promotion, and "
            "the run's 2h deadline must leave time for the other steps; use at most 60m",
        ),
        (
            {"promotion": {"mode": "later"}},
            "spec.promotion.mode: 'later' is not allowed; use one of 'auto' or 'manual'",
        ),
        (
            {"smokeTestBudget": "5m"},
            "spec.smokeTestBudget: '5m' is over the cap of 4m: the smoke step runs its tests for up to this long, and "
            "Argo stops smoke (5m) at its deadline; use at most 4m",
        ),
        (
            {"healthCheck": {"httpGet": {"port": 8080}, "periodSeconds": 120, "failureThreshold": 3}},
            "spec.healthCheck: initialDelaySeconds + (successThreshold + failureThreshold + 1) x max(periodSeconds, "
            "timeoutSeconds) is 10m, over the cap of 9m: Argo stops the probe step at 10m; lower the delay, the "
            "period or the thresholds",
        ),
        (
            {
                "analysis": {
                    "prometheusUrl": "http://prom:9090",
                    "window": "2h",
                    "queries": [{"name": "errors", "query": "up", "max": 1}],
                }
            },
            "spec.analysis.window: '2h' is over the cap of 59m: verify samples for the whole window, and Argo stops "
            "verify (60m) at its deadline; use at most 59m",
        ),
        (
            {"smokeTests": [{"name": "a", "endpoint": "/x", "bodyMatches": "("}]},
            "spec.smokeTests[0].bodyMatches: '(' is not a regular expression: missing ), unterminated subpattern at "
            "position 0",
        ),
    ],
)
def test_bad_specs_get_an_exact_error_naming_object_and_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(spec.SpecError) as caught:
        spec.load_resource(with_spec(**changes))
    assert str(caught.value) == f"BlueGreenDeployment user-service: {message}"


def test_missing_health_check_is_reported_as_required() -> None:
    document = seed()
    del document["spec"]["healthCheck"]
    with pytest.raises(spec.SpecError) as caught:
        spec.load_resource(document)
    assert caught.value.problems == ["spec.healthCheck: is required"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(spec.SpecError) as caught:
        spec.load_resource(with_spec(replicas=0, historyLimit=0, retainPreviousVersion="soon"))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "spec.replicas",
        "spec.retainPreviousVersion",
        "spec.historyLimit",
    ]


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("0s", 0)])
def test_durations(text: str, seconds: int) -> None:
    assert spec.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "1d", "h", "-1s", "1.5h", "30m1h"])
def test_bad_durations_name_the_allowed_form(text: str) -> None:
    with pytest.raises(ValueError, match="use a number with a unit h, m or s"):
        spec.parse_duration(text)


@pytest.mark.parametrize(
    ("expected", "status", "accepted"),
    [(["2xx"], 204, True), (["2xx"], 301, False), (["200", "404"], 404, True), (["5xx"], 200, False)],
)
def test_smoke_test_status_matching(expected: list[str], status: int, accepted: bool) -> None:
    test = spec.SmokeTest(name="t", endpoint="/", expected_status=expected)
    assert test.accepts_status(status) is accepted


def test_expected_status_written_as_numbers_reads_as_the_same_codes_in_text() -> None:
    """YAML reads ``expectedStatus: [200]`` as a number; the reference promises "such as 200 or 2xx"."""
    smoke = {"name": "a", "endpoint": "/x", "expectedStatus": [200, "3xx", 404]}
    test = spec.load_resource(with_spec(smokeTests=[smoke])).spec.smoke_tests[0]
    assert test.expected_status == ["200", "3xx", "404"]
    assert [test.accepts_status(code) for code in (200, 302, 404, 201)] == [True, True, True, False]
    assert test.model_dump(by_alias=True)["expectedStatus"] == ["200", "3xx", "404"]


def test_slots_alternate() -> None:
    assert spec.Slot.blue.other is spec.Slot.green
    assert spec.Slot.green.other is spec.Slot.blue


def test_status_round_trips_with_wire_names() -> None:
    status = spec.BlueGreenDeploymentStatus.model_validate(
        {
            "phase": "Switching",
            "activeSlot": "blue",
            "targetSlot": "green",
            "retainUntil": "2026-01-01T00:00:00Z",
            "history": [{"record": "r1", "outcome": "Succeeded"}],
        }
    )
    dumped = status.model_dump(by_alias=True, exclude_none=True)
    assert dumped["phase"] == "Switching"
    assert dumped["targetSlot"] == "green"
    assert dumped["history"][0]["record"] == "r1"


@pytest.mark.parametrize(
    "changes",
    [
        {"readinessTimeout": "14m"},
        {"smokeTestBudget": "4m"},
        {"promotion": {"mode": "manual", "timeout": "1h"}},
        {
            "healthCheck": {
                "httpGet": {"port": 8080},
                "periodSeconds": 100,
                "failureThreshold": 3,
                "successThreshold": 1,
            }
        },
    ],
)
def test_durations_at_their_cap_are_accepted(changes: dict[str, Any]) -> None:
    spec.load_resource(with_spec(**changes))


def test_promotion_is_automatic_unless_asked_and_waits_up_to_the_cap_without_a_timeout() -> None:
    assert spec.load_resource(with_spec()).spec.promotion.mode is spec.PromotionMode.auto
    manual = spec.load_resource(with_spec(promotion={"mode": "manual"})).spec.promotion
    assert manual.timeout_seconds() == spec.PROMOTION_TIMEOUT_CAP_SECONDS
    timed = spec.load_resource(with_spec(promotion={"mode": "manual", "timeout": "15m30s"})).spec.promotion
    assert timed.timeout_seconds() == 930


def test_every_step_deadline_is_rendered_from_the_spec_table() -> None:
    """The caps above are only honest if the templates stop each step exactly where the table says."""
    from pipelines.manifests import render_all
    from pipelines.settings import RenderSettings
    from tests.unit.test_pipelines import template_deadline

    seen: dict[str, set[int]] = {}
    for manifest in render_all(RenderSettings()):
        for template in manifest.document.get("spec", {}).get("templates", []):
            if "--all-services" in template.get("container", {}).get("args", []):
                continue  # the sweep cleans every service, with a deadline of its own (see test_pipelines)
            if "container" in template and "activeDeadlineSeconds" in template:
                step = template["container"]["args"][0]
                seen.setdefault(step, set()).add(template_deadline(template))
            # A step in a Pod of several enforces its deadline itself, from its command line.
            for container in template.get("containerSet", {}).get("containers", []):
                for arg in container.get("args", []):
                    if arg.startswith("--deadline-seconds="):
                        seen.setdefault(container["args"][0], set()).add(int(arg.split("=", 1)[1]))
    for step, seconds in spec.STEP_DEADLINE_SECONDS.items():
        assert seen.get(step) == {seconds}, f"{step}: rendered {seen.get(step)}, table {seconds}"
