"""Render-time settings: what a platform team may choose when it renders the manifests for its cluster.

Everything else in the rendered objects is fixed by the code, so two teams rendering with the same settings get
byte-identical manifests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bluegreen_contract import STEPS_SERVICE_ACCOUNT
from bluegreen_version import __version__
from pipelines import cron_schedule

DEFAULT_NAMESPACE = "apps"
#: Where the release workflow publishes the steps image.
STEPS_REPOSITORY = "ghcr.io/argo-bluegreen/steps"
#: The steps image of this release: its tag is the package's version, so templates and steps never drift apart.
DEFAULT_IMAGE = f"{STEPS_REPOSITORY}:{__version__}"
#: sigstore's official cosign image; pin it by digest with the render flag once your registry mirror holds it.
DEFAULT_COSIGN_IMAGE = "ghcr.io/sigstore/cosign/cosign:v2.6.5"
SERVICE_ACCOUNT = STEPS_SERVICE_ACCOUNT
#: The label on every object argo-bluegreen installs.
PART_OF_LABEL = "app.kubernetes.io/part-of"
NOTIFICATIONS_SECRET = "bluegreen-notifications"
SLACK_URL_KEY = "slack-webhook-url"
WEBHOOK_URL_KEY = "webhook-url"

#: The least memory a step's limit may give: a step is a Python process with the Kubernetes client loaded.
STEP_MEMORY_FLOOR_BYTES = 64 * 2**20
#: The step containers' requests and limits unless the render chooses others.
DEFAULT_STEP_CPU_REQUEST = "50m"
DEFAULT_STEP_CPU_LIMIT = "500m"
DEFAULT_STEP_MEMORY_REQUEST = "96Mi"
DEFAULT_STEP_MEMORY_LIMIT = "256Mi"

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Secret's name: a DNS-1123 subdomain.
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SUBDOMAIN = re.compile(SUBDOMAIN_PATTERN)
# A label key: an optional DNS-subdomain prefix and a name; a label value: at most 63 of the same characters, or empty.
_LABEL_NAME_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_NAME = re.compile(f"^{_LABEL_NAME_PATTERN}$")
#: A whole label key: an optional DNS-subdomain prefix and '/', then the name.
LABEL_KEY_PATTERN = f"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME_PATTERN}$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
# The quantities a step's resources take: CPU in cores or millicores, memory in bytes with a binary or decimal suffix.
_CPU = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<unit>m?)$")
_MEMORY = re.compile(r"^(?P<number>[0-9]+)(?P<unit>Ki|Mi|Gi|Ti|k|M|G|T|)$")
_CPU_UNITS = {"": 1000.0, "m": 1.0}
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
# An image reference as a container runtime accepts it: registry/path, then a tag, a digest or both.
IMAGE_PATTERN = (
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_IMAGE = re.compile(IMAGE_PATTERN)


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """Choices baked into the rendered manifests.

    Attributes:
        namespace: where the templates, the RBAC and the services' BlueGreenDeployments live.
        image: the steps image every step container runs.
        cosign_image: the cosign image that verifies signatures and attestations, when a spec asks for it.
        argo_ui_url: base URL of the Argo UI, for links in notifications; empty leaves links out.
        pushgateway_url: Prometheus Pushgateway the steps push each run's metrics to; empty pushes nothing.
        cleanup_schedule: cron schedule of the cleanup/repair CronWorkflow.
        deploy_alert_minutes: a deploy running longer than this raises BlueGreenDeployTooLong.
        cleanup_alert_hours: no successful cleanup for this long raises BlueGreenCleanupNotSucceeding.
        notifications_secret: the Secret in the namespace whose ``slack-webhook-url`` and ``webhook-url`` keys the
            steps notify through; it may be missing, which notifies nobody.
        image_pull_secrets: Secrets, comma-separated, every workflow's Pods pull their images with; empty for none.
        prometheus_rule_labels: labels, ``key=value`` comma-separated, added to the PrometheusRule's own, so a
            Prometheus that selects rules by label (kube-prometheus-stack's ``release``) loads it.
        step_cpu_request, step_cpu_limit, step_memory_request, step_memory_limit: every step container's resources.
    """

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    cosign_image: str = DEFAULT_COSIGN_IMAGE
    argo_ui_url: str = ""
    pushgateway_url: str = ""
    cleanup_schedule: str = "*/5 * * * *"
    deploy_alert_minutes: int = 30
    cleanup_alert_hours: int = 1
    notifications_secret: str = NOTIFICATIONS_SECRET
    image_pull_secrets: str = ""
    prometheus_rule_labels: str = ""
    step_cpu_request: str = DEFAULT_STEP_CPU_REQUEST
    step_cpu_limit: str = DEFAULT_STEP_CPU_LIMIT
    step_memory_request: str = DEFAULT_STEP_MEMORY_REQUEST
    step_memory_limit: str = DEFAULT_STEP_MEMORY_LIMIT

    @property
    def pull_secret_names(self) -> tuple[str, ...]:
        """The image pull Secrets, in the order given."""
        return tuple(name.strip() for name in self.image_pull_secrets.split(",") if name.strip())

    @property
    def rule_labels(self) -> dict[str, str]:
        """The PrometheusRule's extra labels, in the order given."""
        pairs = (item.split("=", 1) for item in self.prometheus_rule_labels.split(",") if item.strip())
        return {key.strip(): value.strip() for key, value in pairs}

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace) or len(self.namespace) > 63:
            raise ValueError(
                f"namespace {self.namespace!r} is not a DNS-1123 label; use lower-case letters, digits and '-'"
            )
        for what, image in (("image", self.image), ("cosign image", self.cosign_image)):
            if not _IMAGE.fullmatch(image):
                raise ValueError(
                    f"{what} {image!r} is not an image reference; use registry/name:tag or name@sha256:<64 hex>"
                )
        if self.argo_ui_url and not re.fullmatch(r"https?://[^\s]+", self.argo_ui_url):
            raise ValueError(f"argo UI URL {self.argo_ui_url!r} must start with http:// or https://")
        if self.pushgateway_url and not re.fullmatch(r"https?://[^\s]+", self.pushgateway_url):
            raise ValueError(f"Pushgateway URL {self.pushgateway_url!r} must start with http:// or https://")
        for name, value in (
            ("deploy alert minutes", self.deploy_alert_minutes),
            ("cleanup alert hours", self.cleanup_alert_hours),
        ):
            if not 1 <= value <= 10_000:
                raise ValueError(f"{name} {value} must be a whole number from 1 to 10000")
        try:
            cron_schedule.check(self.cleanup_schedule)
        except ValueError as error:
            raise ValueError(f"cleanup schedule: {error}") from None
        _check_secret_name("notifications Secret", self.notifications_secret)
        for name in self.pull_secret_names:
            _check_secret_name("image pull Secret", name)
        _check_labels(self.prometheus_rule_labels)
        _check_resources(self)


def _check_secret_name(what: str, name: str) -> None:
    if not _SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise ValueError(f"{what} {name!r} is not a Secret name; use lower-case letters, digits, '-' and '.'")


def _check_labels(text: str) -> None:
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if "=" not in item:
            raise ValueError(f"PrometheusRule label {item!r} has no '='; write key=value, comma-separated")
        key, value = (half.strip() for half in item.split("=", 1))
        if key == PART_OF_LABEL:
            raise ValueError(
                f"PrometheusRule label {key!r} is the one argo-bluegreen finds its own objects by (upgrade and "
                "uninstall list them with it); choose another key"
            )
        prefix, _, name = key.rpartition("/")
        if (prefix and (not _SUBDOMAIN.fullmatch(prefix) or len(prefix) > 253)) or not _LABEL_NAME.fullmatch(name):
            raise ValueError(
                f"PrometheusRule label key {key!r} is not a label key; use an optional DNS prefix and '/', then at "
                "most 63 letters, digits, '-', '_' or '.'"
            )
        if not _LABEL_VALUE.fullmatch(value):
            raise ValueError(
                f"PrometheusRule label {key!r} has value {value!r}, which is not a label value; use at most 63 "
                "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            )


def _quantity(what: str, text: str, pattern: re.Pattern[str], units: dict[str, float] | dict[str, int]) -> float:
    matched = pattern.fullmatch(text)
    if matched is None:
        example = "'250m' or '1'" if pattern is _CPU else "'128Mi' or '1Gi'"
        raise ValueError(f"{what} {text!r} is not a quantity; write one such as {example}")
    return float(matched["number"]) * units[matched["unit"]]


def _check_resources(settings: RenderSettings) -> None:
    """Each step resource is a quantity above zero, and no request is above its limit (the API server refuses that)."""
    for kind, request, limit, pattern, units in (
        ("CPU", settings.step_cpu_request, settings.step_cpu_limit, _CPU, _CPU_UNITS),
        ("memory", settings.step_memory_request, settings.step_memory_limit, _MEMORY, _MEMORY_UNITS),
    ):
        amounts = []
        for what, text in (("request", request), ("limit", limit)):
            amount = _quantity(f"step {kind} {what}", text, pattern, units)
            if amount == 0:
                raise ValueError(f"step {kind} {what} {text!r} is zero; a step needs some {kind}")
            amounts.append(amount)
        if kind == "memory" and amounts[1] < STEP_MEMORY_FLOOR_BYTES:
            unit_left_out = (
                " (a number alone is bytes: did you mean " + repr(f"{limit}Mi") + "?)" if limit.isdigit() else ""
            )
            raise ValueError(
                f"step memory limit {limit!r} is below 64Mi{unit_left_out}; each step runs Python and would be "
                "killed before it starts"
            )
        if amounts[0] > amounts[1]:
            raise ValueError(
                f"step {kind} request {request!r} is above the limit {limit!r}: the API server refuses such a Pod, so "
                f"every step would fail to start; lower the request or raise the limit"
            )
