"""The ``BlueGreenDeployment`` custom resource: the one contract that ``pipelines`` and ``steps`` share.

A platform team writes one ``BlueGreenDeployment`` per service. The pipelines render this model's JSON schema into
the CRD's openAPIV3Schema, so the API server rejects a bad spec before any run starts, and the steps load the same
model so they never act on a spec the server would not have accepted. Both halves therefore agree by construction.

The seed example (``examples/user-service.yaml``) loads unchanged apart from ``apiVersion``; every field it does not
name has a default here. Validation messages name the field, what was wrong and what is allowed, because they end up
in front of a person deciding how to fix a deploy.

This module imports pydantic only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_GROUP = "argo-bluegreen.io"
API_VERSION = "v1alpha1"
KIND = "BlueGreenDeployment"
PLURAL = "bluegreendeployments"
SHORT_NAME = "bgd"

RECORD_KIND = "DeploymentRecord"
RECORD_PLURAL = "deploymentrecords"
RECORD_SHORT_NAME = "bgr"

#: Label on every object the pipeline manages; its value is the service name.
SERVICE_LABEL = f"{API_GROUP}/service"
#: Label that tells the two slot Deployments (and their pods) apart.
SLOT_LABEL = f"{API_GROUP}/slot"
#: Annotation on a slot Deployment: until when a previous slot is kept warm for instant rollback.
RETAIN_UNTIL_ANNOTATION = f"{API_GROUP}/retain-until"
#: Label on deployment records naming the workflow that wrote them.
WORKFLOW_LABEL = f"{API_GROUP}/workflow"
#: Annotation on a team's original Deployment once a slot has taken it over; its value names that slot Deployment.
ADOPTED_ANNOTATION = f"{API_GROUP}/adopted-by"
#: Label a team puts on its own objects (Deployment, Services, HPA, PDB, routes) to let the BlueGreenDeployment its
#: value names change their documented fields; the admission policies refuse the steps every other team object.
OPT_IN_LABEL = f"{API_GROUP}/bluegreendeployment"
#: The recommended label for an app's version; Prometheus' Kubernetes discovery exposes it on every scraped series.
VERSION_LABEL = "app.kubernetes.io/version"

#: How long Argo lets each step run: its template's activeDeadlineSeconds, rendered from this table. The spec's own
#: waits must fit inside with :data:`STEP_DEADLINE_MARGIN_SECONDS` to spare, or Argo would kill the step and the run
#: would roll back with a deadline message instead of the real cause; the spec refuses durations that do not fit.
STEP_DEADLINE_SECONDS: dict[str, int] = {
    "preflight": 15 * 60,
    "verify-image": 3 * 60,
    "deploy-green": 20 * 60,
    "probe": 10 * 60,
    "smoke": 5 * 60,
    "await-promotion": 3 * 60,
    "confirm-promotion": 3 * 60,
    "switch": 5 * 60,
    "verify": 60 * 60,
    "retain": 3 * 60,
    "cleanup": 5 * 60,
    "rollback": 15 * 60,
    "notify": 3 * 60,
}
#: A step's time besides the waits the spec sets: its Pod's start, its API calls and records.
STEP_DEADLINE_MARGIN_SECONDS = 60

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A Go-style duration restricted to what a retention window or a deadline needs: ``90s``, ``30m``, ``1h30m``.
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
#: An HTTP status code (``204``) or a class of them (``2xx``).
STATUS_PATTERN = r"^[1-5]([0-9][0-9]|xx)$"
HTTP_PATH_PATTERN = r"^/[^\s]*$"

_DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}


class Slot(StrEnum):
    """The two slots a service alternates between. "Green" in the step names means "the idle one"."""

    blue = "blue"
    green = "green"

    @property
    def other(self) -> Slot:
        """The slot that is not this one."""
        return Slot.green if self is Slot.blue else Slot.blue


class RouterKind(StrEnum):
    """How live traffic is pointed at a slot."""

    istio = "istio"
    service = "service"
    gateway_api = "gateway-api"


class Phase(StrEnum):
    """Where a service's pipeline stands. ``Switching`` is the record of intent written before any routing change."""

    idle = "Idle"
    deploying = "Deploying"
    switching = "Switching"
    verifying = "Verifying"
    succeeded = "Succeeded"
    failed = "Failed"
    rolling_back = "RollingBack"
    rolled_back = "RolledBack"
    aborted = "Aborted"


class Stage(StrEnum):
    """Moments of a run that can send a stage notification."""

    started = "started"
    green_ready = "green-ready"
    switched = "switched"
    succeeded = "succeeded"
    failed = "failed"
    rolled_back = "rolled-back"
    #: A manual-promotion run waits for a person; sent whether or not ``notifications.stages`` lists it.
    awaiting_promotion = "awaiting-promotion"


class PromotionMode(StrEnum):
    """Whether a run switches traffic as soon as its checks pass, or waits for a person to promote it."""

    auto = "auto"
    manual = "manual"


class PromotionState(StrEnum):
    """Where a manual-promotion run stands, as its record shows it."""

    waiting = "Waiting"
    promoted = "Promoted"
    aborted = "Aborted"
    expired = "Expired"


def parse_duration(text: str) -> timedelta:
    """Turn ``1h30m``/``90s`` into a timedelta; raises ValueError naming the allowed form."""
    if not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; use a number with a unit h, m or s, such as 90s, 30m or 1h")
    seconds = sum(int(amount) * _DURATION_UNITS[unit] for amount, unit in re.findall(r"([0-9]+)([hms])", text))
    return timedelta(seconds=seconds)


Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        max_length=16,
        description="A duration such as 90s, 30m, 1h or 1h30m.",
    ),
]
Name = Annotated[
    str,
    Field(pattern=DNS1123_LABEL, min_length=1, max_length=63, description="A DNS-1123 label."),
]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python, and no unknown fields: a typo must fail loudly."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _cap_seconds(*steps: str) -> int:
    """The longest wait a spec may ask of every step in ``steps``."""
    return min(STEP_DEADLINE_SECONDS[step] for step in steps) - STEP_DEADLINE_MARGIN_SECONDS


def _format_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if rest else f"{minutes}m"


@dataclass(frozen=True)
class _Cap:
    """A wait the spec sets, capped so it ends before Argo's deadline for the steps that wait it out."""

    steps: tuple[str, ...]
    what: str

    def seconds(self) -> int:
        return _cap_seconds(*self.steps)

    def message(self) -> str:
        names = " and ".join(f"{step} ({_format_seconds(STEP_DEADLINE_SECONDS[step])})" for step in self.steps)
        cap = _format_seconds(self.seconds())
        return f"is over the cap of {cap}: {self.what}, and Argo stops {names} at its deadline"

    def check(self, value: str) -> str:
        """The model's check: the value, or a ValueError naming the cap."""
        if parse_duration(value).total_seconds() > self.seconds():
            raise ValueError(f"{value!r} {self.message()}; use at most {_format_seconds(self.seconds())}")
        return value

    def rule(self) -> dict[str, JsonValue]:
        """The same check as a CEL rule on the CRD, so the API server refuses the spec too.

        CEL's ``duration()`` reads Go durations, of which :data:`DURATION_PATTERN` is a subset.
        """
        rule: dict[str, JsonValue] = {
            "rule": f"duration(self) <= duration('{self.seconds()}s')",
            "message": self.message(),
        }
        return {"x-kubernetes-validations": [rule]}


_READINESS_CAP = _Cap(
    ("preflight", "deploy-green", "rollback"),
    "adoption, deploy-green and a rollback onto a scaled-down slot each wait this long for availability",
)
_SMOKE_BUDGET_CAP = _Cap(("smoke",), "the smoke step runs its tests for up to this long")
_WINDOW_CAP = _Cap(("verify",), "verify samples for the whole window")


@dataclass(frozen=True)
class _RunCap(_Cap):
    """A wait bounded by the whole run's deadline rather than by one step's."""

    limit_seconds: int = 0
    why: str = ""

    def seconds(self) -> int:
        return self.limit_seconds

    def message(self) -> str:
        return f"is over the cap of {_format_seconds(self.limit_seconds)}: {self.what}, and {self.why}"


#: The longest a run may wait for promotion: the run's own deadline (2h) must leave time for every other step.
PROMOTION_TIMEOUT_CAP_SECONDS = 60 * 60
_PROMOTION_CAP = _RunCap(
    (),
    "a manual run waits this long for promotion",
    limit_seconds=PROMOTION_TIMEOUT_CAP_SECONDS,
    why="the run's 2h deadline must leave time for the other steps",
)
# Each a Duration checked against its cap by the model and, through the CRD's CEL rule, by the API server.
ReadinessTimeout = Annotated[
    Duration, AfterValidator(_READINESS_CAP.check), Field(json_schema_extra=_READINESS_CAP.rule())
]
SmokeTestBudget = Annotated[
    Duration, AfterValidator(_SMOKE_BUDGET_CAP.check), Field(json_schema_extra=_SMOKE_BUDGET_CAP.rule())
]
AnalysisWindow = Annotated[Duration, AfterValidator(_WINDOW_CAP.check), Field(json_schema_extra=_WINDOW_CAP.rule())]
PromotionTimeout = Annotated[
    Duration, AfterValidator(_PROMOTION_CAP.check), Field(json_schema_extra=_PROMOTION_CAP.rule())
]
_PROBE_BUDGET = "initialDelaySeconds + (successThreshold + failureThreshold + 1) x max(periodSeconds, timeoutSeconds)"
_PROBE_BUDGET_RULE = (
    "self.initialDelaySeconds + (self.successThreshold + self.failureThreshold + 1)"
    " * (self.periodSeconds > self.timeoutSeconds ? self.periodSeconds : self.timeoutSeconds)"
)
_INTERVAL_ABOVE_ZERO = "is not above zero; sample at least every second, such as 30s"
_NO_THRESHOLD = "set max, min or both: a query without a threshold can never fail"
#: A list the API server keeps as a map by name, refusing two items of one name (``x-kubernetes-list-type: map``).
_KEYED_BY_NAME: dict[str, JsonValue] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


class HTTPGet(_Model):
    """Where the health check asks, as in a Kubernetes probe's ``httpGet``."""

    path: str = Field(default="/", pattern=HTTP_PATH_PATTERN, description="HTTP path, starting with /.")
    port: Port = Field(description="Container port of the service's pods, 1-65535.")
    scheme: Literal["HTTP", "HTTPS"] = Field(default="HTTP", description="HTTP or HTTPS (certificates not verified).")


class HealthCheck(_Model):
    """Probe semantics follow the Kubernetes readiness probe, so a platform team reads them the same way."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"{_PROBE_BUDGET_RULE} <= {_cap_seconds('probe')}",
                    "message": f"{_PROBE_BUDGET} is over the cap of {_format_seconds(_cap_seconds('probe'))}: "
                    f"Argo stops the probe step at {_format_seconds(STEP_DEADLINE_SECONDS['probe'])}",
                }
            ]
        }
    )

    http_get: HTTPGet = Field(description="The request each probe attempt sends to every pod of the new slot.")
    initial_delay_seconds: int = Field(
        default=0, ge=0, le=3600, description="Seconds to wait after the new slot is available before the first probe."
    )
    period_seconds: int = Field(default=10, ge=1, le=3600, description="Seconds between probe attempts.")
    timeout_seconds: int = Field(default=1, ge=1, le=600, description="Seconds one probe attempt may take.")
    success_threshold: int = Field(
        default=1, ge=1, le=100, description="Consecutive successful attempts that pass the probe."
    )
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failed attempts that fail the probe, and the run."
    )

    def budget_seconds(self) -> float:
        """The probe step's overall deadline, from the probe's own delays and thresholds.

        The initial delay, then ``success + failure thresholds`` attempts plus one more as slack, each spaced by its
        period or by its timeout when that is longer. A service that has reached neither threshold by then is flapping,
        and is better reported so than probed on.
        """
        step = max(self.period_seconds, self.timeout_seconds)
        return float(self.initial_delay_seconds + (self.success_threshold + self.failure_threshold + 1) * step)

    @model_validator(mode="after")
    def _fits_the_probe_deadline(self) -> HealthCheck:
        cap = _cap_seconds("probe")
        if self.budget_seconds() > cap:
            budget = _format_seconds(self.budget_seconds())
            raise ValueError(
                f"{_PROBE_BUDGET} is {budget}, over the cap of {_format_seconds(cap)}: "
                f"Argo stops the probe step at {_format_seconds(STEP_DEADLINE_SECONDS['probe'])}; "
                "lower the delay, the period or the thresholds"
            )
        return self


def _status_text(value: Any) -> Any:
    """An expected status as text: YAML reads an unquoted ``200`` as a number, and the reference allows one.

    Text is what the steps compare with (a class such as ``2xx`` can only be text), so a number becomes its digits
    here, once, and every consumer sees one form. A number outside 100-599 is refused as itself, not as its digits.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an HTTP status code such as 200 or a class such as 2xx, not {yaml_type(value)}")
    if isinstance(value, int):
        if not 100 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status code; use 100 to 599, or a class such as 2xx")
        return str(value)
    return value


#: The CRD's schema for one expected status, so the API server stores ``200`` as the model reads it: a number or
#: text (Kubernetes' one structural form for that), each checked only where it applies (minimum and maximum on the
#: number, the pattern on the text).
_STATUS_SCHEMA: dict[str, JsonValue] = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "minimum": 100,
    "maximum": 599,
    "pattern": STATUS_PATTERN,
    "description": "An HTTP status code such as 200 (a number or text), or a class such as 2xx.",
}
ExpectedStatus = Annotated[
    str, BeforeValidator(_status_text), Field(pattern=STATUS_PATTERN), WithJsonSchema(_STATUS_SCHEMA)
]


class SmokeTest(_Model):
    """One request sent to a ready pod of the new slot, one its preview Service offers, before any user traffic."""

    name: Name = Field(description="Names the test in records and messages; unique within the spec.")
    endpoint: str = Field(pattern=HTTP_PATH_PATTERN, description="HTTP path on the service, starting with /.")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="HTTP method of the request."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers, name to value.")
    body: str | None = Field(default=None, description="Request body, sent as is.")
    expected_status: list[ExpectedStatus] = Field(
        default_factory=lambda: ["2xx"],
        min_length=1,
        description="Accepted status codes or classes, such as 200 or 2xx.",
        json_schema_extra={"default": ["2xx"]},  # so the API server fills it in too
    )
    body_contains: str | None = Field(default=None, description="Text the response body must contain.")
    body_matches: str | None = Field(default=None, description="A regular expression the response body must match.")
    timeout_seconds: int = Field(default=5, ge=1, le=300, description="Seconds this request may take.")

    @field_validator("body_matches")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{value!r} is not a regular expression: {error}") from error
        return value

    def accepts_status(self, status: int) -> bool:
        """Whether ``status`` is one of the expected codes or classes."""
        code = str(status)
        return any(code == want or (want.endswith("xx") and code[0] == want[0]) for want in self.expected_status)


class IstioRouting(_Model):
    """The Istio objects and the routes in them that argo-bluegreen may change; names default from the service.

    Destinations always go to the in-cluster per-slot Services ``<svc>-blue`` and ``<svc>-green``; the hosts
    clients call (``hosts``, ``host``) are only the VirtualService's own ``hosts`` when the steps create it.
    """

    virtual_service: Name | None = Field(
        default=None, description="The VirtualService to route with; the service name if unset."
    )
    destination_rule: Name | None = Field(
        default=None,
        description="The DestinationRule whose traffic policy each slot copies; the service name if unset.",
    )
    host: str | None = Field(
        default=None,
        pattern=DNS1123_SUBDOMAIN,
        description="A host clients call, added to hosts; kept for older specs.",
    )
    hosts: list[Annotated[str, Field(pattern=DNS1123_SUBDOMAIN)]] = Field(
        default_factory=list,
        description="Hosts clients call (VirtualService hosts, may be external names on a gateway); used only "
        "when the steps create the VirtualService. Default: the Service's in-cluster name.",
    )
    routes: list[Name] = Field(
        default_factory=list,
        description="Names of the http routes of a user-owned VirtualService whose destinations for this service "
        "the steps flip (as Argo Rollouts' virtualService.routes); every http route with a destination for the "
        "service if empty.",
    )
    gateways: list[str] = Field(default_factory=list, description="Gateways the VirtualService binds; mesh if empty.")
    port: Port | None = Field(default=None, description="Service port to route to; the Service's only port if unset.")


class ServiceRouting(_Model):
    """The Service whose selector the ``service`` router flips."""

    name: Name | None = Field(default=None, description="The Service to flip; the service name if unset.")


class ParentRef(_Model):
    """A Gateway API parent the HTTPRoute attaches to."""

    name: Name = Field(description="The Gateway's name.")
    namespace: Name | None = Field(default=None, description="The Gateway's namespace; the service's if unset.")
    section_name: Name | None = Field(default=None, description="One listener of the Gateway; all of them if unset.")


class GatewayAPIRouting(_Model):
    """The HTTPRoute whose backendRef weights the ``gateway-api`` router flips."""

    http_route: Name | None = Field(
        default=None, description="The HTTPRoute to route with; the service name if unset."
    )
    parent_refs: list[ParentRef] = Field(
        default_factory=list, description="Gateways an HTTPRoute the steps create attaches to."
    )
    hostnames: list[Annotated[str, Field(pattern=DNS1123_SUBDOMAIN)]] = Field(
        default_factory=list, description="Hostnames of an HTTPRoute the steps create; any if empty."
    )
    port: Port | None = Field(default=None, description="Service port to route to; the Service's only port if unset.")


class Traffic(_Model):
    """How traffic reaches the live slot."""

    router: RouterKind = Field(
        default=RouterKind.istio,
        description="What moves traffic: istio (VirtualService), service (the Service's selector) or gateway-api "
        "(HTTPRoute).",
    )
    istio: IstioRouting = Field(default_factory=IstioRouting, description="Settings of the istio router.")
    service: ServiceRouting = Field(default_factory=ServiceRouting, description="Settings of the service router.")
    gateway_api: GatewayAPIRouting = Field(
        default_factory=GatewayAPIRouting, description="Settings of the gateway-api router."
    )
    preview_service: Name | None = Field(default=None, description="Service that selects the idle slot.")
    isolate_slots: bool = Field(default=True, description="NetworkPolicy: one slot's pods refuse the other slot's.")


class AnalysisQuery(_Model):
    """A PromQL query whose value must stay within bounds after the switch."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "has(self.max) || has(self.min)", "message": _NO_THRESHOLD}]
        }
    )

    name: Name = Field(description="Names the query in records and messages; unique within the analysis.")
    query: str = Field(min_length=1, description="PromQL returning one value, such as an error ratio.")
    max: float | None = Field(default=None, description="Fail when the value rises above this.")
    min: float | None = Field(default=None, description="Fail when the value falls below this.")

    @model_validator(mode="after")
    def _has_bound(self) -> AnalysisQuery:
        if self.max is None and self.min is None:
            raise ValueError(_NO_THRESHOLD)
        return self


_Named = TypeVar("_Named", "SmokeTest", "AnalysisQuery")


def _unique_names(items: list[_Named], what: str) -> list[_Named]:
    """The list, refused when two items share a name (the CRD keys these lists by name)."""
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(f"{what} name {item.name!r} is used twice; names must be unique")
        seen.add(item.name)
    return items


class Analysis(_Model):
    """Optional post-switch analysis against Prometheus; a breach fails the run and the exit handler rolls back."""

    prometheus_url: str = Field(pattern=r"^https?://[^\s]+$", description="Base URL of the Prometheus to query.")
    window: AnalysisWindow = Field(default="5m", description="How long after the switch the queries are sampled.")
    interval: Duration = Field(
        default="30s",
        description="Time between samples, above zero, such as 30s.",
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "duration(self) > duration('0s')", "message": _INTERVAL_ABOVE_ZERO}]
        },
    )
    failure_limit: int = Field(default=1, ge=1, le=100, description="Breaches tolerated before the run fails.")
    queries: list[AnalysisQuery] = Field(
        min_length=1, json_schema_extra=_KEYED_BY_NAME, description="The queries sampled every interval."
    )

    @field_validator("queries")
    @classmethod
    def _unique_query_names(cls, queries: list[AnalysisQuery]) -> list[AnalysisQuery]:
        # Each query's samples are recorded and reported by its name, so two of one name would be indistinguishable.
        return _unique_names(queries, "analysis query")

    @field_validator("interval")
    @classmethod
    def _interval_above_zero(cls, value: str) -> str:
        # Caught here, the spec is refused before a run starts; the analysis itself would refuse it only after the
        # traffic switch, and the run would roll back a good version.
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError(f"{value!r} {_INTERVAL_ABOVE_ZERO}")
        return value


class SlackNotification(_Model):
    """Slack incoming webhook; the URL comes from the notifications Secret, never from this spec."""

    enabled: bool = Field(default=True, description="Send to Slack when the Secret holds slack-webhook-url.")
    channel: str | None = Field(default=None, description="Overrides the webhook's default channel.")


class WebhookNotification(_Model):
    """A generic JSON webhook; the URL comes from the notifications Secret."""

    enabled: bool = Field(default=False, description="POST each message as JSON to the Secret's webhook-url.")


class Notifications(_Model):
    """Who hears about a run. Stage messages are optional; the final summary is always sent when a URL is set."""

    slack: SlackNotification = Field(default_factory=SlackNotification, description="Slack delivery.")
    webhook: WebhookNotification = Field(default_factory=WebhookNotification, description="Webhook delivery.")
    stages: list[Stage] = Field(
        default_factory=list, description="Moments that send a message of their own, besides the final summary."
    )


class Severity(StrEnum):
    """Vulnerability severities as Trivy reports them, lowest first."""

    unknown = "UNKNOWN"
    low = "LOW"
    medium = "MEDIUM"
    high = "HIGH"
    critical = "CRITICAL"

    @property
    def rank(self) -> int:
        """Position in the order UNKNOWN < LOW < MEDIUM < HIGH < CRITICAL."""
        return list(Severity).index(self)


#: CVE, GHSA and other advisory IDs as scanners print them, such as CVE-2024-3094 or GHSA-xxxx-xxxx-xxxx.
VULNERABILITY_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9:._-]*$"
#: A calendar date, as YAML writes one unquoted.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ONE_OF_ISSUER = "set exactly one of issuer and issuerRegExp"
_ONE_OF_SUBJECT = "set exactly one of subject and subjectRegExp"
_NO_AUTHORITY = "list at least one public key or keyless identity: a signature policy without one trusts nobody"
_ATTESTATION_NEEDS_SIGNER = (
    "vulnerabilities needs signature: the attestation is trusted only when it is signed by a key or identity "
    "listed in imagePolicy.signature"
)


class PublicKeyRef(_Model):
    """A cosign public key kept in a ConfigMap of the service's namespace; public keys are not secrets."""

    config_map: Name = Field(description="The ConfigMap holding the PEM public key, in the service's namespace.")
    key: str = Field(
        default="cosign.pub",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="The ConfigMap data key that holds the key, as `cosign generate-key-pair` names it.",
    )

    def describe(self) -> str:
        """How records and messages name this key."""
        return f"key {self.config_map}/{self.key}"


class KeylessIdentity(_Model):
    """A keyless (Fulcio certificate) signer: the OIDC issuer and the identity, each exact or as a regular expression.

    Regular expressions use Go's RE2 syntax, which cosign reads them with.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.issuer) != has(self.issuerRegExp)", "message": _ONE_OF_ISSUER},
                {"rule": "has(self.subject) != has(self.subjectRegExp)", "message": _ONE_OF_SUBJECT},
            ]
        }
    )

    issuer: str | None = Field(
        default=None,
        min_length=1,
        description="The exact OIDC issuer, such as https://token.actions.githubusercontent.com.",
    )
    issuer_reg_exp: str | None = Field(
        default=None, min_length=1, description="The OIDC issuer as a regular expression."
    )
    subject: str | None = Field(
        default=None, min_length=1, description="The exact identity: an e-mail address or a workflow URI."
    )
    subject_reg_exp: str | None = Field(
        default=None, min_length=1, description="The identity as a regular expression."
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> KeylessIdentity:
        if (self.issuer is None) == (self.issuer_reg_exp is None):
            raise ValueError(_ONE_OF_ISSUER)
        if (self.subject is None) == (self.subject_reg_exp is None):
            raise ValueError(_ONE_OF_SUBJECT)
        return self

    def issuer_pattern(self) -> str:
        """The issuer as the anchored regular expression cosign is given."""
        return self.issuer_reg_exp or f"^{re.escape(self.issuer or '')}$"

    def subject_pattern(self) -> str:
        """The identity as the anchored regular expression cosign is given."""
        return self.subject_reg_exp or f"^{re.escape(self.subject or '')}$"

    def describe(self) -> str:
        """How records and messages name this identity."""
        subject = self.subject or f"~{self.subject_reg_exp}"
        issuer = self.issuer or f"~{self.issuer_reg_exp}"
        return f"identity {subject} from {issuer}"


class SignaturePolicy(_Model):
    """Who must have signed an image (cosign); any one listed key or identity is enough."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.keys) ? size(self.keys) : 0) + "
                    "(has(self.keyless) ? size(self.keyless) : 0) > 0",
                    "message": _NO_AUTHORITY,
                },
            ]
        }
    )

    keys: list[PublicKeyRef] = Field(default_factory=list, max_length=8, description="Public keys that may sign.")
    keyless: list[KeylessIdentity] = Field(
        default_factory=list, max_length=8, description="Keyless signers (OIDC issuer and identity) that may sign."
    )
    require_transparency_log: bool = Field(
        default=True,
        description="Require the signature's entry in the Rekor transparency log; turn off only for private "
        "infrastructure that signs with --tlog-upload=false.",
    )

    @model_validator(mode="after")
    def _has_authority(self) -> SignaturePolicy:
        if not self.keys and not self.keyless:
            raise ValueError(_NO_AUTHORITY)
        return self


class IgnoredVulnerability(_Model):
    """A finding accepted for a while, with the reason someone owns."""

    id: str = Field(
        pattern=VULNERABILITY_ID_PATTERN, max_length=64, description="The vulnerability, such as CVE-2024-3094."
    )
    reason: str = Field(min_length=1, max_length=500, description="Why it may ship, for the audit trail.")
    expires: str = Field(
        pattern=DATE_PATTERN,
        json_schema_extra={"format": "date"},
        description="The last day (UTC) the finding is ignored, such as 2026-12-31; after it, it refuses again.",
    )

    @field_validator("expires")
    @classmethod
    def _real_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a calendar date; use YYYY-MM-DD, such as 2026-12-31") from None
        return value


class VulnerabilityPolicy(_Model):
    """A signed vulnerability attestation (cosign's `vuln` predicate, as Trivy plus `cosign attest` make it)."""

    max_severity: Severity = Field(
        default=Severity.high,
        description="The highest severity allowed; a finding above it refuses the image (HIGH refuses CRITICAL).",
    )
    ignore: list[IgnoredVulnerability] = Field(
        default_factory=list, max_length=100, description="Findings that do not count until their expiry date."
    )
    max_age: Duration = Field(
        default="168h", description="How old the newest scan may be, from its scanFinishedOn, such as 168h."
    )

    def max_age_seconds(self) -> float:
        """``max_age`` in seconds."""
        return parse_duration(self.max_age).total_seconds()


class ImagePolicy(_Model):
    """What images may be deployed: where from, pinned or not, signed by whom, and how vulnerable."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!has(self.vulnerabilities) || has(self.signature)", "message": _ATTESTATION_NEEDS_SIGNER}
            ]
        }
    )

    allowed_registries: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Registry hosts (optionally with a path prefix); empty allows any."
    )
    require_digest: bool = Field(default=False, description="Refuse images not pinned by @sha256 digest.")
    signature: SignaturePolicy | None = Field(
        default=None, description="Require a cosign signature by one of these keys or identities; unset checks none."
    )
    vulnerabilities: VulnerabilityPolicy | None = Field(
        default=None, description="Require a signed vulnerability attestation within these limits; unset checks none."
    )
    reverify_on_rollback: bool = Field(
        default=False,
        description="Verify the retained image again before a manual rollback, for example after keys were rotated.",
    )

    @model_validator(mode="after")
    def _attestation_needs_signer(self) -> ImagePolicy:
        if self.vulnerabilities is not None and self.signature is None:
            raise ValueError(_ATTESTATION_NEEDS_SIGNER)
        return self

    def verification_required(self) -> bool:
        """Whether runs must verify the image with cosign before it reaches a slot."""
        return self.signature is not None


class Promotion(_Model):
    """Whether traffic moves as soon as the checks pass (``auto``) or only when a person promotes the run."""

    mode: PromotionMode = Field(
        default=PromotionMode.auto,
        description="auto switches traffic once probe and smoke pass; manual waits after smoke until "
        "`kubectl bluegreen promote` or the Argo UI's Resume, and `kubectl bluegreen abort` rolls back.",
    )
    timeout: PromotionTimeout | None = Field(
        default=None,
        description="How long a manual run waits for promotion before it fails and rolls back; at most 1h, "
        "which is also what an unset timeout waits.",
    )

    def timeout_seconds(self) -> int:
        """How long this run waits for a person: the timeout, or the cap when none is set."""
        if self.timeout is None:
            return PROMOTION_TIMEOUT_CAP_SECONDS
        return max(1, math.ceil(parse_duration(self.timeout).total_seconds()))


class BlueGreenDeploymentSpec(_Model):
    """What a platform team writes for one service."""

    replicas: int = Field(default=2, ge=1, le=1000, description="Pods in each slot while it serves or is retained.")
    deployment: Name | None = Field(
        default=None,
        description="The existing Deployment to adopt on the first run, when it is not named like the service.",
    )
    container: Name | None = Field(default=None, description="Container whose image changes; the first if unset.")
    health_check: HealthCheck = Field(description="How the new slot's pods are probed before any traffic.")
    smoke_tests: list[SmokeTest] = Field(
        default_factory=list,
        json_schema_extra=_KEYED_BY_NAME,
        description="Requests sent to a ready pod of the new slot before the switch; all must pass.",
    )
    smoke_test_budget: SmokeTestBudget = Field(default="30s", description="Time all smoke tests together may take.")
    smoke_test_port: Port | None = Field(
        default=None,
        description="Service port the smoke tests call; the routed service port (spec.traffic) if unset.",
    )
    readiness_timeout: ReadinessTimeout = Field(
        default="10m", description="How long the new slot may take to be available."
    )
    rollback_on_failure: bool = Field(
        default=True, description="Move traffic back to the previous slot when a run fails after the switch."
    )
    retain_previous_version: Duration = Field(
        default="1h", description="How long the previous slot stays scaled up for an instant rollback."
    )
    keep_failed_version: Duration = Field(default="0s", description="Keep a failed new slot scaled up this long.")
    traffic: Traffic = Field(default_factory=Traffic, description="How traffic reaches the live slot.")
    analysis: Analysis | None = Field(default=None, description="Prometheus checks after the switch; none if unset.")
    notifications: Notifications = Field(default_factory=Notifications, description="Who hears about a run.")
    image_policy: ImagePolicy = Field(default_factory=ImagePolicy, description="What images may be deployed.")
    history_limit: int = Field(default=20, ge=1, le=1000, description="Deployment records kept per service.")
    promotion: Promotion = Field(default_factory=Promotion)

    def run_deadlines(self) -> dict[str, int]:
        """This service's deadline for each step whose length the spec sets: its wait plus the margin.

        Preflight passes them to the DAG, so a step that hangs (a stuck connection, a wedged API call) is stopped
        soon after its own wait would have ended, not at the template's cap in :data:`STEP_DEADLINE_SECONDS`.
        """
        waits = {
            "deploy-green": parse_duration(self.readiness_timeout).total_seconds(),
            "probe": self.health_check.budget_seconds(),
            "smoke": parse_duration(self.smoke_test_budget).total_seconds() if self.smoke_tests else 0.0,
            "verify": parse_duration(self.analysis.window).total_seconds() if self.analysis else 0.0,
        }
        return {
            step: min(STEP_DEADLINE_SECONDS[step], math.ceil(wait) + STEP_DEADLINE_MARGIN_SECONDS)
            for step, wait in waits.items()
        }

    @field_validator("smoke_tests")
    @classmethod
    def _unique_smoke_test_names(cls, tests: list[SmokeTest]) -> list[SmokeTest]:
        return _unique_names(tests, "smoke test")


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str = Field(description="What the condition is about.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: str = Field(default="", description="A CamelCase word for why.")
    message: str = Field(default="", description="Why, for people.")
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When status last changed."
    )


class HistoryEntry(_Model):
    """One line of recent history, newest first; the full record is a DeploymentRecord."""

    record: str = Field(description="The run's DeploymentRecord.")
    workflow: str = Field(default="", description="The run's workflow.")
    image: str = Field(default="", description="The image the run deployed.")
    outcome: str = Field(default="", description="Succeeded, Failed, RolledBack or Aborted.")
    started_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the run started."
    )
    finished_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the run ended."
    )
    reason: str = Field(default="", description="Why the run ended as it did, shortened; the record has it whole.")


class BlueGreenDeploymentStatus(_Model):
    """What the steps have observed and done; read by people and by the repair cron."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int | None = Field(default=None, description="The spec generation the steps last read.")
    phase: Phase = Field(default=Phase.idle, description="Where the service's pipeline stands.")
    active_slot: Slot | None = Field(default=None, description="The slot live traffic goes to.")
    active_image: str | None = Field(default=None, description="The image the active slot runs.")
    previous_slot: Slot | None = Field(default=None, description="The retained slot a rollback returns to.")
    previous_image: str | None = Field(default=None, description="The image the previous slot runs.")
    target_slot: Slot | None = Field(default=None, description="The slot a run in progress is moving traffic to.")
    retain_until: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the cleanup scales the previous slot down.",
    )
    workflow: str | None = Field(default=None, description="The workflow currently running for this service.")
    record: str | None = Field(default=None, description="The DeploymentRecord of the current or last run.")
    conditions: list[Condition] = Field(default_factory=list, description="Kubernetes-style conditions.")
    history: list[HistoryEntry] = Field(default_factory=list, max_length=50, description="Recent runs, newest first.")


class ObjectMeta(_Model):
    """The part of metadata the contract relies on; the rest is kept but not modelled."""

    model_config = ConfigDict(extra="allow")

    name: Name
    namespace: Name | None = None


class BlueGreenDeployment(_Model):
    """The whole custom resource as the API server returns it."""

    api_version: Literal["argo-bluegreen.io/v1alpha1"] = "argo-bluegreen.io/v1alpha1"
    kind: Literal["BlueGreenDeployment"] = "BlueGreenDeployment"
    metadata: ObjectMeta
    spec: BlueGreenDeploymentSpec
    status: BlueGreenDeploymentStatus | None = None

    @property
    def service(self) -> str:
        """The service this resource describes: its name."""
        return self.metadata.name

    def virtual_service_name(self) -> str:
        """The Istio VirtualService routing this service."""
        return self.spec.traffic.istio.virtual_service or self.service

    def destination_rule_name(self) -> str:
        """The Istio DestinationRule with one subset per slot."""
        return self.spec.traffic.istio.destination_rule or self.service

    def adopted_deployment_name(self) -> str:
        """The unmanaged Deployment the first run adopts."""
        return self.spec.deployment or self.service

    def router_service_name(self) -> str:
        """The Service whose selector the ``service`` router patches."""
        return self.spec.traffic.service.name or self.service

    def http_route_name(self) -> str:
        """The Gateway API HTTPRoute."""
        return self.spec.traffic.gateway_api.http_route or self.service

    def preview_service_name(self) -> str:
        """The Service that selects the idle slot, for probes and smoke tests."""
        return self.spec.traffic.preview_service or f"{self.service}-preview"


class RecordEntry(_Model):
    """One action of a run, as the audit trail keeps it: a probe attempt, a smoke result, a warning, a transition."""

    time: str = Field(json_schema_extra={"format": "date-time"}, description="When it happened.")
    step: str = Field(description="The step that wrote the entry.")
    event: str = Field(description="What happened, such as probe-attempt, smoke-result, warning or phase.")
    message: str = Field(default="", description="What happened, for people.")
    details: dict[str, str] = Field(default_factory=dict, description="Facts of the event, name to value.")


#: Lines of a record's release summary: a template rewritten from scratch must not make the record large.
MAX_RELEASE_CHANGES = 40


class DeploymentRecordSpec(_Model):
    """Who deployed what, and from where; written once when the run starts."""

    service: Name = Field(description="The service deployed.")
    workflow: str = Field(description="The workflow of the run.")
    workflow_uid: str = Field(
        default="",
        description="The uid of the run's workflow: a later workflow that reuses the name is not this run.",
    )
    image: str = Field(description="The image the run deploys.")
    previous_image: str | None = Field(default=None, description="The image live when the run started.")
    from_slot: Slot | None = Field(default=None, description="The slot live when the run started.")
    to_slot: Slot | None = Field(default=None, description="The slot the run deploys into.")
    commit: str = Field(default="", description="The source commit, as the submitter passed it.")
    triggered_by: str = Field(default="", description="Who or what submitted the run, such as a CI pipeline URL.")
    reason: str = Field(default="", description="Why the run was submitted, as the submitter passed it.")
    started_at: str = Field(json_schema_extra={"format": "date-time"}, description="When the run started.")
    changes: list[str] = Field(
        default_factory=list,
        max_length=MAX_RELEASE_CHANGES,
        description=(
            "What the release changes against the live slot, as preflight found it: the image, and the env, "
            "resources, probes and containers the team's Deployment added, changed or removed. Empty when the new "
            "slot runs what the live one runs."
        ),
    )


class Gate(StrEnum):
    """A check the new slot must pass, for its image, before ``switch`` sends it any traffic."""

    image_policy = "image-policy"
    image_verification = "image-verification"
    available = "available"
    probe = "probe"
    smoke = "smoke"


#: Gates times slots times a few images re-deployed within one run: far more than a run ever writes.
MAX_GATE_RESULTS = 16


class GateResult(_Model):
    """The latest verdict of one gate for one slot and image in a run; the steps that check write it."""

    gate: Gate = Field(description="The gate checked.")
    slot: Slot = Field(description="The slot checked.")
    image: str = Field(description="The image the slot ran when checked.")
    passed: bool = Field(description="The verdict.")
    time: str = Field(json_schema_extra={"format": "date-time"}, description="When the verdict was reached.")
    step: str = Field(default="", description="The step that checked.")


class PromotionRecord(_Model):
    """A manual-promotion run's wait and how it ended: who promoted or aborted it, when, and through what."""

    state: PromotionState = Field(description="Waiting, or how the wait ended: Promoted, Aborted or Expired.")
    preview_url: str = Field(default="", description="Where the waiting new version can be tried.")
    waiting_since: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the run began to wait for a person."
    )
    timeout_seconds: int | None = Field(default=None, description="How long the run waits before it fails.")
    by: str = Field(default="", description="Who promoted or aborted the run, as the API server or Argo named them.")
    at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the run was promoted or aborted."
    )
    how: str = Field(default="", description="Through what: kubectl-bluegreen, argo (UI or CLI), or the timeout.")
    reason: str = Field(default="", description="Why the run was aborted, as the person aborting it wrote.")


class VulnerabilityVerdict(_Model):
    """What the newest verified vulnerability attestation said, and how the policy read it."""

    scanner: str = Field(default="", description="The scanner and its version, as the attestation names them.")
    scanned_at: str = Field(default="", description="When the scan finished (the predicate's scanFinishedOn).")
    highest_severity: str = Field(default="", description="The highest severity found, ignored findings left out.")
    findings: int = Field(default=0, ge=0, description="Findings in the scan, ignored ones included.")
    ignored: list[str] = Field(default_factory=list, description="Findings the policy ignored, unexpired.")
    refused: list[str] = Field(default_factory=list, description="Findings above the allowed severity.")


class ImageVerification(_Model):
    """The supply-chain verdict on the image this run deploys, from cosign's verified output."""

    image: str = Field(description="The image verified, pinned by digest.")
    passed: bool = Field(description="Whether the image may reach a slot.")
    rule: str = Field(default="", description="The policy rule that refused the image; empty when it passed.")
    signer: str = Field(default="", description="The key or keyless identity whose signature verified.")
    transparency_log: bool = Field(default=False, description="Whether the transparency log was required.")
    vulnerabilities: VulnerabilityVerdict | None = Field(
        default=None, description="The attestation's verdict, when the policy asks for one."
    )
    time: str = Field(json_schema_extra={"format": "date-time"}, description="When the verdict was reached.")


class DeploymentRecordStatus(_Model):
    """How the run went; closed exactly once with an outcome."""

    model_config = ConfigDict(frozen=False)

    phase: Phase = Field(default=Phase.deploying, description="Where the run stands.")
    outcome: str = Field(default="", description="How the run ended: Succeeded, Failed, RolledBack or Aborted.")
    reason: str = Field(default="", description="Why the run ended as it did; see docs/troubleshooting.md.")
    digest: str = Field(
        default="", description="The digest the run deploys, when preflight resolved or verified one; else empty."
    )
    switched_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When traffic moved to the new slot."
    )
    finished_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the record was closed."
    )
    entries: list[RecordEntry] = Field(
        default_factory=list, max_length=500, description="What the steps did, oldest first; the oldest drop first."
    )
    # Kept apart from ``entries``, which drop their oldest beyond the cap: a long probe must not push out the
    # verdicts that ``switch`` requires.
    gates: list[GateResult] = Field(
        default_factory=list,
        max_length=MAX_GATE_RESULTS,
        description="The latest verdict of each gate for the slot and image this run deploys.",
    )
    promotion: PromotionRecord | None = Field(default=None, description="A manual-promotion run's wait and its end.")
    verification: ImageVerification | None = Field(
        default=None, description="The signature and vulnerability verdict on the image, when the policy asks."
    )


class RecordMeta(ObjectMeta):
    """A record is named after its workflow, which may be longer than a label: a DNS-1123 subdomain."""

    name: str = Field(pattern=DNS1123_SUBDOMAIN, min_length=1, max_length=253)


class DeploymentRecord(_Model):
    """The durable audit record of one run; it outlives the Workflow object and Event TTLs."""

    api_version: Literal["argo-bluegreen.io/v1alpha1"] = "argo-bluegreen.io/v1alpha1"
    kind: Literal["DeploymentRecord"] = "DeploymentRecord"
    metadata: RecordMeta
    spec: DeploymentRecordSpec
    status: DeploymentRecordStatus | None = None


class SpecError(ValueError):
    """A spec the pipeline refuses, with one line per problem naming the object and the field."""

    def __init__(self, object_name: str, problems: list[str]) -> None:
        self.object_name = object_name
        self.problems = problems
        super().__init__("\n".join(f"{KIND} {object_name}: {problem}" for problem in problems))


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"function-after", "function-before", "constrained-str"} or part.startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


#: What a field of each JSON type must be, for pydantic's type errors, in the words a YAML author uses.
_EXPECTED_TYPES = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text (quote it if YAML reads it as something else)",
    "list_type": "a list (lines starting with '- ')",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
}


def yaml_type(value: Any) -> str:
    """How a YAML author would call a parsed value's type (the linter's messages use it too)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__


def _describe(error: Any) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    got = error.get("input")
    if kind in _EXPECTED_TYPES:
        return f"must be {_EXPECTED_TYPES[kind]}, not {yaml_type(got)}"
    if kind == "string_pattern_mismatch":
        pattern = context.get("pattern", "")
        allowed = {
            DURATION_PATTERN: "a duration such as 90s, 30m or 1h",
            DNS1123_LABEL: "a DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric",
            DNS1123_SUBDOMAIN: "a DNS-1123 subdomain: lower-case DNS labels joined by '.'",
            STATUS_PATTERN: "an HTTP status code such as 200 or a class such as 2xx",
            HTTP_PATH_PATTERN: "an HTTP path starting with / and without spaces",
        }.get(pattern, f"text matching {pattern}")
        return f"{got!r} is not allowed; use {allowed}"
    if kind == "literal_error" or kind == "enum":
        return f"{got!r} is not allowed; use one of {context.get('expected', '')}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        return f"{got!r} is out of range; {str(error['msg']).replace('Input should be', 'it must be')}"
    if kind == "extra_forbidden":
        return "is not a known field; check its spelling against the BlueGreenDeployment reference"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def format_validation_error(object_name: str, error: ValidationError, prefix: str = "") -> SpecError:
    """Turn pydantic's errors into one line per field: ``spec.healthCheck.httpGet.port: 70000 is out of range``."""
    problems = []
    for item in error.errors():
        path = _field_path(tuple(item["loc"]))
        full = f"{prefix}.{path}" if prefix and path else (prefix or path)
        problems.append(f"{full}: {_describe(item)}")
    return SpecError(object_name, problems)


def _as_json(document: dict[str, Any]) -> str:
    """The document as the API server would receive it, for strict JSON-mode validation.

    Strict, because the API server refuses ``replicas: "3"`` against an integer schema, and a spec the lint accepts
    must be one the API server stores. JSON mode still reads enums and durations from their text, as the CRD does.
    A YAML timestamp (an unquoted date) is passed on as its text.
    """
    return json.dumps(document, default=str)


def load_spec(spec: dict[str, Any], object_name: str = "<unnamed>") -> BlueGreenDeploymentSpec:
    """Validate a bare ``spec`` mapping; raises SpecError naming each bad field."""
    try:
        return BlueGreenDeploymentSpec.model_validate_json(_as_json(spec), strict=True)
    except ValidationError as error:
        raise format_validation_error(object_name, error, prefix="spec") from None


def load_resource(document: dict[str, Any]) -> BlueGreenDeployment:
    """Validate a whole ``BlueGreenDeployment`` document; raises SpecError naming each bad field."""
    name = str((document.get("metadata") or {}).get("name") or "<unnamed>")
    try:
        return BlueGreenDeployment.model_validate_json(_as_json(document), strict=True)
    except ValidationError as error:
        raise format_validation_error(name, error) from None


__all__ = [
    "ADOPTED_ANNOTATION",
    "API_GROUP",
    "API_VERSION",
    "DNS1123_LABEL",
    "DURATION_PATTERN",
    "KIND",
    "MAX_GATE_RESULTS",
    "PLURAL",
    "PROMOTION_TIMEOUT_CAP_SECONDS",
    "RECORD_KIND",
    "RECORD_PLURAL",
    "RECORD_SHORT_NAME",
    "RETAIN_UNTIL_ANNOTATION",
    "SERVICE_LABEL",
    "SHORT_NAME",
    "SLOT_LABEL",
    "STEP_DEADLINE_MARGIN_SECONDS",
    "STEP_DEADLINE_SECONDS",
    "WORKFLOW_LABEL",
    "Analysis",
    "AnalysisQuery",
    "BlueGreenDeployment",
    "BlueGreenDeploymentSpec",
    "BlueGreenDeploymentStatus",
    "Condition",
    "DeploymentRecord",
    "DeploymentRecordSpec",
    "DeploymentRecordStatus",
    "Gate",
    "GateResult",
    "HealthCheck",
    "HistoryEntry",
    "ImagePolicy",
    "Notifications",
    "Phase",
    "Promotion",
    "PromotionMode",
    "PromotionRecord",
    "PromotionState",
    "PromotionTimeout",
    "RecordEntry",
    "RecordMeta",
    "RouterKind",
    "Slot",
    "SmokeTest",
    "SpecError",
    "Stage",
    "Traffic",
    "format_validation_error",
    "load_resource",
    "load_spec",
    "parse_duration",
    "yaml_type",
]
