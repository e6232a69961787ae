"""Property tests: the pydantic model and the CRD schema rendered from it agree on what a valid spec is."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import bluegreen_spec as spec
from pipelines.crd import blue_green_deployment_crd
from pipelines.lint import spec_file
from pipelines.lint.documents import Document

CRD_SCHEMA = blue_green_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
VALIDATOR = Draft202012Validator(CRD_SCHEMA)

label = st.from_regex(r"\A[a-z]([-a-z0-9]{0,20}[a-z0-9])?\Z")
path = st.from_regex(r"\A/[a-z0-9/_.-]{0,30}\Z")
duration = st.builds(
    lambda h, m, s: "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v is not None) or "0s",
    st.none() | st.integers(0, 48),
    st.none() | st.integers(0, 59),
    st.none() | st.integers(0, 59),
)
# A code or class as text, or a code as YAML reads an unquoted 200: a number.
status = st.from_regex(r"\A[1-5]([0-9][0-9]|xx)\Z") | st.integers(100, 599)


def within(cap_seconds: int) -> st.SearchStrategy[str]:
    """Durations of at most ``cap_seconds``, written in minutes and seconds."""
    return st.builds(lambda m, s: f"{m}m{s}s", st.integers(0, cap_seconds // 60 - 1), st.integers(0, 59))


def probe_cap() -> int:
    return spec.STEP_DEADLINE_SECONDS["probe"] - spec.STEP_DEADLINE_MARGIN_SECONDS


def probe_budget(check: dict[str, Any]) -> int:
    step = max(check.get("periodSeconds", 10), check.get("timeoutSeconds", 1))
    thresholds = check.get("successThreshold", 1) + check.get("failureThreshold", 3) + 1
    return int(check.get("initialDelaySeconds", 0) + thresholds * step)


def health_checks(delay: int, period: int, timeout: int, threshold: int) -> st.SearchStrategy[dict[str, Any]]:
    """Health checks with every timing up to the given bounds."""
    return st.fixed_dictionaries(
        {"httpGet": st.fixed_dictionaries({"port": st.integers(1, 65535)}, optional={"path": path})},
        optional={
            "initialDelaySeconds": st.integers(0, delay),
            "periodSeconds": st.integers(1, period),
            "timeoutSeconds": st.integers(1, timeout),
            "successThreshold": st.integers(1, threshold),
            "failureThreshold": st.integers(1, threshold),
        },
    )


#: Anything the schema's own ranges allow, over the probe cap or not.
health_check = health_checks(delay=3600, period=3600, timeout=600, threshold=100)

public_key_ref = st.fixed_dictionaries(
    {"configMap": label}, optional={"key": st.sampled_from(["cosign.pub", "ci.pub"])}
)
keyless_identity = st.fixed_dictionaries(
    {
        "issuer": st.just("https://token.actions.githubusercontent.com"),
        "subjectRegExp": st.just("^https://github.com/acme/.*$"),
    }
) | st.fixed_dictionaries({"issuerRegExp": st.just("^https://.*$"), "subject": st.just("ci@example.com")})
signature_policy = st.fixed_dictionaries(
    {"keys": st.lists(public_key_ref, min_size=1, max_size=2)},
    optional={"keyless": st.lists(keyless_identity, max_size=2), "requireTransparencyLog": st.booleans()},
) | st.fixed_dictionaries({"keyless": st.lists(keyless_identity, min_size=1, max_size=2)})
vulnerability_policy = st.fixed_dictionaries(
    {},
    optional={
        "maxSeverity": st.sampled_from([severity.value for severity in spec.Severity]),
        "maxAge": duration,
        "ignore": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from(["CVE-2026-1", "GHSA-abcd-efgh-ijkl"]),
                    "reason": st.just("not reachable"),
                    "expires": st.dates().map(lambda day: day.isoformat()),
                }
            ),
            max_size=2,
        ),
    },
)
smoke_test = st.fixed_dictionaries(
    {"name": label, "endpoint": path},
    optional={
        "method": st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        "headers": st.dictionaries(st.from_regex(r"\A[A-Za-z-]{1,12}\Z"), st.text(max_size=10), max_size=3),
        "expectedStatus": st.lists(status, min_size=1, max_size=3),
        "bodyContains": st.text(max_size=10),
        "timeoutSeconds": st.integers(1, 300),
    },
)


def by_name(item: dict[str, Any]) -> str:
    return str(item["name"])


analysis_query: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"name": label, "query": st.just("sum(rate(x[1m]))"), "max": st.floats(0, 100, allow_nan=False)}
)

#: Strategies for a spec's fields, typed loosely: each field's values have their own type.
Fields = dict[str, st.SearchStrategy[Any]]

specs = st.fixed_dictionaries(
    Fields(
        # Probe timings that fit the probe step's deadline; the ones that do not are the next test's subject.
        healthCheck=health_checks(delay=120, period=60, timeout=60, threshold=5).filter(
            lambda check: probe_budget(check) <= probe_cap()
        ),
    ),
    optional={
        "replicas": st.integers(1, 1000),
        "smokeTests": st.lists(smoke_test, max_size=4, unique_by=lambda t: t["name"]),
        "smokeTestBudget": within(spec.STEP_DEADLINE_SECONDS["smoke"] - spec.STEP_DEADLINE_MARGIN_SECONDS),
        "readinessTimeout": within(spec.STEP_DEADLINE_SECONDS["preflight"] - spec.STEP_DEADLINE_MARGIN_SECONDS),
        "rollbackOnFailure": st.booleans(),
        "retainPreviousVersion": duration,
        "traffic": st.fixed_dictionaries(
            {"router": st.sampled_from(["istio", "service", "gateway-api"])},
            optional={"isolateSlots": st.booleans(), "previewService": label},
        ),
        "imagePolicy": st.fixed_dictionaries(
            {
                "allowedRegistries": st.lists(st.sampled_from(["ghcr.io", "registry.example.com/team"]), max_size=2),
                "requireDigest": st.booleans(),
            }
        )
        | st.fixed_dictionaries(
            {"signature": signature_policy},
            optional={"vulnerabilities": vulnerability_policy, "reverifyOnRollback": st.booleans()},
        ),
        "historyLimit": st.integers(1, 1000),
        "analysis": st.none()
        | st.fixed_dictionaries(
            Fields(
                prometheusUrl=st.just("http://prometheus.monitoring:9090"),
                queries=st.lists(analysis_query, min_size=1, max_size=2, unique_by=by_name),
            ),
            optional={"window": within(spec.STEP_DEADLINE_SECONDS["verify"] - spec.STEP_DEADLINE_MARGIN_SECONDS)},
        ),
    },
)


def document(body: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in body.items() if v is not None}
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": "svc"},
        "spec": cleaned,
    }


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_any_valid_spec_loads_renders_and_is_accepted_by_the_crd_schema(body: dict[str, Any]) -> None:
    doc = document(body)
    resource = spec.load_resource(doc)
    # Rendering the loaded spec back to YAML and loading it again gives the same spec.
    rendered = yaml.safe_dump(resource.model_dump(by_alias=True, exclude_none=True, mode="json"))
    assert spec.load_resource(yaml.safe_load(rendered)) == resource
    assert list(VALIDATOR.iter_errors(doc)) == []
    assert list(VALIDATOR.iter_errors(yaml.safe_load(rendered))) == []
    assert spec_file.check(Document("x.yaml", doc)) == []


@given(health_check)
def test_probe_timings_past_the_step_deadline_are_refused_exactly_at_the_cap(check: dict[str, Any]) -> None:
    """The cap adds fields up, which only the CRD's CEL rule can do on the server (see test_crd_rules_on_server);
    here the lint refuses exactly the timings over it, and the schema's own ranges let every one of them through."""
    doc = document({"healthCheck": check})
    assert list(VALIDATOR.iter_errors(doc)) == []
    findings = [f.field for f in spec_file.check(Document("x.yaml", doc))]
    assert findings == (["spec.healthCheck"] if probe_budget(check) > probe_cap() else [])


@given(specs, st.integers().filter(lambda p: not 1 <= p <= 65535))
def test_model_and_crd_both_reject_a_bad_port(body: dict[str, Any], port: int) -> None:
    body = {**body, "healthCheck": {"httpGet": {"port": port}}}
    doc = document(body)
    assert list(VALIDATOR.iter_errors(doc)) != []
    assert spec_file.check(Document("x.yaml", doc))[0].field == "spec.healthCheck.httpGet.port"


@given(specs, st.sampled_from(["replicas", "historyLimit"]), st.integers(1, 1000))
def test_model_and_crd_both_reject_a_number_written_as_text(body: dict[str, Any], field: str, value: int) -> None:
    """The API server refuses ``replicas: "3"`` against an integer schema; the model must not quietly convert it."""
    doc = document({**body, field: str(value)})
    assert list(VALIDATOR.iter_errors(doc)) != []
    (finding,) = spec_file.check(Document("x.yaml", doc))
    assert (finding.field, finding.message) == (f"spec.{field}", f"must be a whole number, not the text '{value}'")


@given(
    specs, st.text(max_size=8).filter(lambda t: not __import__("re").fullmatch(spec.DURATION_PATTERN, t) or len(t) < 2)
)
def test_model_and_crd_both_reject_a_bad_duration(body: dict[str, Any], text: str) -> None:
    doc = document({**body, "retainPreviousVersion": text})
    assert list(VALIDATOR.iter_errors(doc)) != []
    assert [f.field for f in spec_file.check(Document("x.yaml", doc))] == ["spec.retainPreviousVersion"]


@given(specs, st.integers().filter(lambda code: not 100 <= code <= 599))
def test_model_and_crd_both_reject_a_status_code_out_of_range(body: dict[str, Any], code: int) -> None:
    doc = document({**body, "smokeTests": [{"name": "a", "endpoint": "/", "expectedStatus": [code]}]})
    assert list(VALIDATOR.iter_errors(doc)) != []
    assert [f.field for f in spec_file.check(Document("x.yaml", doc))] == ["spec.smokeTests[0].expectedStatus[0]"]


def seconds(duration: str) -> float:
    return spec.parse_duration(duration).total_seconds()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_run_deadlines_outlast_every_wait_and_stay_within_the_caps(body: dict[str, Any]) -> None:
    """Argo must never stop a step before the wait the spec asked for has ended, nor later than the template cap."""
    resource = spec.load_resource(document(body))
    waits = {
        "deploy-green": seconds(body.get("readinessTimeout", "10m")),
        "probe": probe_budget(body["healthCheck"]),
        "smoke": seconds(body.get("smokeTestBudget", "30s")) if body.get("smokeTests") else 0,
        "verify": seconds((body.get("analysis") or {}).get("window", "5m")) if body.get("analysis") else 0,
    }
    deadlines = resource.spec.run_deadlines()
    assert deadlines.keys() == waits.keys()
    for step, wait in waits.items():
        assert (
            wait + spec.STEP_DEADLINE_MARGIN_SECONDS <= deadlines[step] < wait + spec.STEP_DEADLINE_MARGIN_SECONDS + 1
        )
        assert deadlines[step] <= spec.STEP_DEADLINE_SECONDS[step]
