"""Render-time settings: what a platform team may choose when it renders the manifests for its cluster.

Everything else in the rendered objects is fixed by the code, so two teams rendering with the same settings get
byte-identical manifests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bluegreen_version import __version__
from pipelines import cron_schedule

DEFAULT_NAMESPACE = "apps"
#: Where the release workflow publishes the steps image.
STEPS_REPOSITORY = "ghcr.io/argo-bluegreen/steps"
#: The steps image of this release: its tag is the package's version, so templates and steps never drift apart.
DEFAULT_IMAGE = f"{STEPS_REPOSITORY}:{__version__}"
#: sigstore's official cosign image; pin it by digest with the render flag once your registry mirror holds it.
DEFAULT_COSIGN_IMAGE = "ghcr.io/sigstore/cosign/cosign:v2.6.5"
SERVICE_ACCOUNT = "bluegreen-deployer"
NOTIFICATIONS_SECRET = "bluegreen-notifications"
SLACK_URL_KEY = "slack-webhook-url"
WEBHOOK_URL_KEY = "webhook-url"

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# An image reference as a container runtime accepts it: registry/path, then a tag, a digest or both.
_IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


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
    """

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    cosign_image: str = DEFAULT_COSIGN_IMAGE
    argo_ui_url: str = ""
    pushgateway_url: str = ""
    cleanup_schedule: str = "*/5 * * * *"
    deploy_alert_minutes: int = 30
    cleanup_alert_hours: int = 1

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
