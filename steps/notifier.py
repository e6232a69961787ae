"""Tell people how a run went: Slack and a generic JSON webhook, for chosen stages and always for the summary.

A notification is a courtesy, not part of the deploy: a Slack outage must never fail or roll back a good release.
So every delivery returns a :class:`DeliveryResult` and nothing here raises for what a receiver does. Transient
trouble (connection errors, 429, 5xx) is retried with exponential backoff, bounded in attempts and in total time,
and a 429's ``Retry-After`` is honoured up to a cap; any other 4xx means the request itself is wrong, so it is not
sent again.

The URLs come from the notifications Secret through environment variables, never from the spec, and they carry
credentials (a Slack webhook URL *is* its token), so errors and records name only a URL's scheme and host.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from bluegreen_contract import ARGO_UI_URL_ENV, SLACK_WEBHOOK_URL_ENV, WEBHOOK_URL_ENV
from bluegreen_spec import Notifications, Stage
from steps.clock import Clock, Sleep

_log = logging.getLogger(__name__)

#: Slack's limits: a header's text, a field's text, a section's text.
_HEADER_CHARS = 150
_FIELD_CHARS = 2000
_SECTION_CHARS = 3000
#: How much of a refusing receiver's answer an error quotes.
_EXCERPT_CHARS = 200

_STAGE_TITLES = {
    Stage.started: "deploy started",
    Stage.green_ready: "new version ready in the idle slot",
    Stage.switched: "traffic switched to the new version",
    Stage.succeeded: "deploy succeeded",
    Stage.failed: "deploy failed",
    Stage.rolled_back: "rolled back",
    Stage.awaiting_promotion: "waiting for promotion: `kubectl bluegreen promote` or Resume in the Argo UI",
}
#: Stages that ask a person to act, so they are sent whether or not ``notifications.stages`` lists them.
_ALWAYS_SENT = frozenset({Stage.awaiting_promotion})
_OUTCOME_EMOJI = {
    "Succeeded": ":white_check_mark:",
    "Failed": ":x:",
    "RolledBack": ":leftwards_arrow_with_hook:",
    "Aborted": ":no_entry_sign:",
}


@dataclass(frozen=True)
class RunMessage:
    """The facts of a run that every notification carries."""

    service: str
    namespace: str
    workflow: str
    #: Succeeded, Failed, RolledBack, or for a stage message where the run stands (Running).
    outcome: str
    #: The image live before the run; None on a service's first deploy.
    old_image: str | None
    new_image: str
    duration_seconds: float
    reason: str = ""
    triggered_by: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """Whether one receiver got the message, after how many attempts, and if not, why."""

    target: str
    delivered: bool
    attempts: int
    error: str = ""
    status: int | None = None

    def to_record(self) -> dict[str, str]:
        """The delivery as string details of a DeploymentRecord entry."""
        return {
            "target": self.target,
            "delivered": str(self.delivered).lower(),
            "attempts": str(self.attempts),
            "status": "" if self.status is None else str(self.status),
            "error": self.error,
        }


@dataclass(frozen=True)
class DeliveryRetryPolicy:
    """How hard a delivery tries: bounded in attempts and in total time, so a notify step always ends."""

    max_attempts: int = 5
    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 10.0
    #: A receiver asking for a longer pause than this gets this long.
    retry_after_cap_seconds: float = 30.0
    #: No retry starts when its pause would end later than this after the first attempt.
    total_seconds: float = 60.0
    request_timeout_seconds: float = 10.0


def format_duration(seconds: float) -> str:
    """``42s``, ``2m 5s``, ``1h 0m 3s``: a run's length as people say it."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell receivers apart, without the path that holds the token."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<not a URL>"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}/…"


def workflow_link(argo_ui_url: str | None, message: RunMessage) -> str | None:
    """The run's page in the Argo UI, or None when the UI's URL is not configured."""
    if not argo_ui_url:
        return None
    return f"{argo_ui_url.rstrip('/')}/workflows/{message.namespace}/{message.workflow}"


def _event_title(event: Stage | None, message: RunMessage) -> str:
    return message.outcome if event is None else _STAGE_TITLES[event]


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters; everything else is shown as is.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(
    message: RunMessage, event: Stage | None, link: str | None, channel: str | None = None
) -> dict[str, Any]:
    """An incoming-webhook body: Block Kit ``blocks`` and a ``text`` fallback for notifications and old clients.

    ``event`` is the stage, or None for the run's summary.
    """
    title = _event_title(event, message)
    emoji = _OUTCOME_EMOJI.get(message.outcome, ":rocket:") if event is None else ":large_blue_circle:"
    old_image = message.old_image or "none (first deploy)"

    def fact(label: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_slack_escape(value)}", _FIELD_CHARS)}

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {message.service}: {title}", _HEADER_CHARS)},
        },
        {
            "type": "section",
            "fields": [
                fact("Service", f"{message.namespace}/{message.service}"),
                fact("Outcome", message.outcome),
                fact("New image", message.new_image),
                fact("Old image", old_image),
                fact("Duration", format_duration(message.duration_seconds)),
                fact("Triggered by", message.triggered_by or "unknown"),
            ],
        },
    ]
    if message.reason:
        reason = _clip(f"*Reason*\n{_slack_escape(message.reason)}", _SECTION_CHARS)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": reason}})
    workflow = _slack_escape(message.workflow)
    where = f"<{link}|Workflow {workflow} in Argo>" if link else f"Workflow {workflow}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": where}]})

    fallback = f"{message.service}: {title}; {message.new_image} replaces {old_image}"
    if message.reason:
        fallback += f"; {message.reason}"
    payload: dict[str, Any] = {"text": _clip(fallback, _SECTION_CHARS), "blocks": blocks}
    if channel:
        payload["channel"] = channel
    return payload


def webhook_payload(message: RunMessage, event: Stage | None, link: str | None) -> dict[str, Any]:
    """A flat JSON object with the run's facts; ``event`` is the stage's name or ``summary``."""
    return {
        "event": "summary" if event is None else event.value,
        "service": message.service,
        "namespace": message.namespace,
        "workflow": message.workflow,
        "workflow_url": link,
        "outcome": message.outcome,
        "old_image": message.old_image,
        "new_image": message.new_image,
        "duration_seconds": message.duration_seconds,
        "reason": message.reason,
        "triggered_by": message.triggered_by,
    }


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """The pause a 429 asks for: ``Retry-After`` in seconds or as an HTTP date; None when absent or unreadable."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Notifier:
    """Sends a run's messages to the receivers its Notifications enable and its environment gives URLs for.

    A receiver without a URL is skipped and has no result: Slack is enabled by default, and a cluster without a
    Slack Secret has simply chosen not to hear.
    """

    notifications: Notifications
    slack_url: str | None = None
    webhook_url: str | None = None
    argo_ui_url: str | None = None
    retry: DeliveryRetryPolicy = field(default_factory=DeliveryRetryPolicy)
    sleep: Sleep = time.sleep
    clock: Clock = time.monotonic

    @classmethod
    def from_env(
        cls,
        notifications: Notifications,
        environ: Mapping[str, str] = os.environ,
        *,
        retry: DeliveryRetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> Notifier:
        """URLs from ``BLUEGREEN_SLACK_WEBHOOK_URL``, ``BLUEGREEN_WEBHOOK_URL`` and ``BLUEGREEN_ARGO_UI_URL``.

        An empty variable counts as unset, as an optional Secret key mounted empty would be.
        """
        return cls(
            notifications,
            slack_url=environ.get(SLACK_WEBHOOK_URL_ENV, "").strip() or None,
            webhook_url=environ.get(WEBHOOK_URL_ENV, "").strip() or None,
            argo_ui_url=environ.get(ARGO_UI_URL_ENV, "").strip() or None,
            retry=retry or DeliveryRetryPolicy(),
            sleep=sleep,
            clock=clock,
        )

    def send_stage(self, stage: Stage, message: RunMessage) -> tuple[DeliveryResult, ...]:
        """Send a stage message if ``notifications.stages`` lists the stage, or if it asks a person to act."""
        if stage not in self.notifications.stages and stage not in _ALWAYS_SENT:
            return ()
        return self._send(stage, message)

    def send_summary(self, message: RunMessage) -> tuple[DeliveryResult, ...]:
        """Send the run's summary to every enabled receiver that has a URL."""
        return self._send(None, message)

    def _send(self, event: Stage | None, message: RunMessage) -> tuple[DeliveryResult, ...]:
        link = workflow_link(self.argo_ui_url, message)
        results = []
        if self.notifications.slack.enabled and self.slack_url:
            payload = slack_payload(message, event, link, self.notifications.slack.channel)
            results.append(self._deliver("slack", self.slack_url, payload))
        if self.notifications.webhook.enabled and self.webhook_url:
            results.append(self._deliver("webhook", self.webhook_url, webhook_payload(message, event, link)))
        for result in results:
            if not result.delivered:
                _log.warning("notification to %s not delivered: %s", result.target, result.error)
        return tuple(results)

    def _deliver(self, target: str, url: str, payload: dict[str, Any]) -> DeliveryResult:
        """POST ``payload`` to ``url``, retrying what may pass; the result says how it ended."""
        policy = self.retry
        where = f"POST {redact_url(url)}"
        started = self.clock()
        backoff = policy.first_backoff_seconds
        attempts = 0
        with httpx.Client(timeout=policy.request_timeout_seconds, follow_redirects=False) as client:
            while True:
                attempts += 1
                status: int | None = None
                try:
                    response = client.post(url, json=payload)
                except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
                    return DeliveryResult(target, False, attempts, f"{where}: not a usable URL: {error}")
                except httpx.TransportError as error:
                    problem = f"{type(error).__name__}: {error}"
                    pause = backoff
                else:
                    status = response.status_code
                    if response.is_success:
                        return DeliveryResult(target, True, attempts, "", status)
                    problem = f"{status} {response.text[:_EXCERPT_CHARS]!r}"
                    if status == 429:
                        asked = _retry_after_seconds(response)
                        pause = backoff if asked is None else min(asked, policy.retry_after_cap_seconds)
                    elif status >= 500:
                        pause = backoff
                    else:
                        # 3xx and 4xx: the request or the URL is wrong; sending it again cannot help.
                        return DeliveryResult(target, False, attempts, f"{where}: {problem}; not retried", status)
                if attempts >= policy.max_attempts:
                    return DeliveryResult(
                        target, False, attempts, f"{where}: {problem}; gave up after {attempts} attempts", status
                    )
                if self.clock() + pause - started > policy.total_seconds:
                    return DeliveryResult(
                        target,
                        False,
                        attempts,
                        f"{where}: {problem}; gave up after {attempts} attempts, as waiting {pause:g} s more would "
                        f"pass the {policy.total_seconds:g} s limit",
                        status,
                    )
                self.sleep(pause)
                backoff = min(backoff * 2, policy.max_backoff_seconds)


__all__ = [
    "DeliveryResult",
    "DeliveryRetryPolicy",
    "Notifier",
    "RunMessage",
    "format_duration",
    "redact_url",
    "slack_payload",
    "webhook_payload",
    "workflow_link",
]
