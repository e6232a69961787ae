"""Notifications to a recording receiver on loopback: payloads, stage filtering, retries, failures as results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bluegreen_spec import Notifications, Stage
from steps.notifier import DeliveryResult, DeliveryRetryPolicy, Notifier, RunMessage, format_duration
from tests.steps.http_servers import RecordingWebhook, Reply, SkippingClock, unused_port

TOKEN_PATH = "/services/T0000/B0000/secret-token"
MESSAGE = RunMessage(
    service="user-service",
    namespace="apps",
    workflow="user-service-deploy-x7k2p",
    outcome="RolledBack",
    old_image="registry.example.com/user-service:2.4.0",
    new_image="registry.example.com/user-service:2.4.1",
    duration_seconds=125.4,
    reason="query error-rate breached its bounds: 0.2 > 0.05 <critical> & rising",
    triggered_by="ci/github-actions",
)


def notifications(**fields: Any) -> Notifications:
    return Notifications.model_validate(fields)


@pytest.fixture
def receiver() -> Iterator[RecordingWebhook]:
    with RecordingWebhook() as server:
        yield server


@pytest.fixture
def clock() -> SkippingClock:
    return SkippingClock()


def slack_notifier(receiver: RecordingWebhook, clock: SkippingClock, **fields: Any) -> Notifier:
    environ = {
        "BLUEGREEN_SLACK_WEBHOOK_URL": receiver.url + TOKEN_PATH,
        "BLUEGREEN_ARGO_UI_URL": "https://argo.example.com/",
    }
    return Notifier.from_env(notifications(**fields), environ, sleep=clock.sleep, clock=clock)


def all_text(payload: dict[str, Any]) -> str:
    """Every text of a Block Kit payload, joined, whatever block it is in."""
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    texts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload["blocks"])
    return "\n".join(texts)


def test_slack_summary_carries_the_facts_and_the_link(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    results = slack_notifier(receiver, clock).send_summary(MESSAGE)

    assert results == (DeliveryResult("slack", True, 1, "", 200),)
    (request,) = receiver.received()
    assert request.method == "POST" and request.path == TOKEN_PATH
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json()
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "section", "context"]
    assert payload["blocks"][0]["text"]["text"] == ":leftwards_arrow_with_hook: user-service: RolledBack"
    text = all_text(payload)
    for fact in (
        "apps/user-service",
        "RolledBack",
        "registry.example.com/user-service:2.4.0",
        "registry.example.com/user-service:2.4.1",
        "2m 5s",
        "ci/github-actions",
        "<https://argo.example.com/workflows/apps/user-service-deploy-x7k2p|"
        "Workflow user-service-deploy-x7k2p in Argo>",
        # Slack's control characters in the reason are escaped, so they show as written.
        "0.2 &gt; 0.05 &lt;critical&gt; &amp; rising",
    ):
        assert fact in text
    assert payload["text"].startswith("user-service: RolledBack; registry.example.com/user-service:2.4.1 replaces")
    assert "channel" not in payload


def test_slack_channel_override_and_first_deploy(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    notifier = slack_notifier(receiver, clock, slack={"channel": "#deploys"})
    first = RunMessage("user-service", "apps", "wf-1", "Succeeded", None, "img:1", 42, triggered_by="alice")

    notifier.send_summary(first)

    payload = receiver.bodies()[0]
    assert payload["channel"] == "#deploys"
    assert "none (first deploy)" in all_text(payload)
    assert "42s" in all_text(payload)


def test_stage_messages_are_sent_only_for_listed_stages(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    environ = {"BLUEGREEN_WEBHOOK_URL": receiver.url + "/hook", "BLUEGREEN_SLACK_WEBHOOK_URL": ""}
    notifier = Notifier.from_env(
        notifications(webhook={"enabled": True}, stages=["switched", "rolled-back"]), environ, clock=clock
    )

    assert notifier.send_stage(Stage.started, MESSAGE) == ()
    assert notifier.send_stage(Stage.green_ready, MESSAGE) == ()
    assert receiver.received() == []

    (switched,) = notifier.send_stage(Stage.switched, MESSAGE)
    (summary,) = notifier.send_summary(MESSAGE)

    assert switched.delivered and switched.target == "webhook" and summary.delivered
    events = receiver.bodies()
    assert [event["event"] for event in events] == ["switched", "summary"]
    assert events[1] == {
        "event": "summary",
        "service": "user-service",
        "namespace": "apps",
        "workflow": "user-service-deploy-x7k2p",
        "workflow_url": None,
        "outcome": "RolledBack",
        "old_image": "registry.example.com/user-service:2.4.0",
        "new_image": "registry.example.com/user-service:2.4.1",
        "duration_seconds": 125.4,
        "reason": MESSAGE.reason,
        "triggered_by": "ci/github-actions",
    }


def test_disabled_or_unset_receivers_are_skipped(receiver: RecordingWebhook) -> None:
    environ = {"BLUEGREEN_SLACK_WEBHOOK_URL": receiver.url, "BLUEGREEN_WEBHOOK_URL": receiver.url}
    assert Notifier.from_env(notifications(slack={"enabled": False}), environ).send_summary(MESSAGE) == ()
    assert Notifier.from_env(notifications(), {}).send_summary(MESSAGE) == ()
    assert receiver.received() == []


def test_retries_after_429_and_500_then_delivers(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    receiver.script(Reply(429, "rate_limited", headers={"Retry-After": "7"}), Reply(500, "oops"))

    (result,) = slack_notifier(receiver, clock).send_summary(MESSAGE)

    assert result == DeliveryResult("slack", True, 3, "", 200)
    assert len(receiver.received()) == 3
    # Retry-After is honoured for the 429; the 500 then waits the next exponential step.
    assert clock.sleeps == [7.0, 2.0]


def test_a_long_retry_after_is_capped(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    receiver.script(Reply(429, headers={"Retry-After": "3600"}))

    (result,) = slack_notifier(receiver, clock).send_summary(MESSAGE)

    assert result.delivered and result.attempts == 2
    assert clock.sleeps == [30.0]


def test_a_400_is_not_retried(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    receiver.script(Reply(400, "invalid_blocks"))

    (result,) = slack_notifier(receiver, clock).send_summary(MESSAGE)

    assert not result.delivered
    assert (result.attempts, result.status) == (1, 400)
    assert result.error == f"POST {receiver.url}/…: 400 'invalid_blocks'; not retried"
    assert len(receiver.received()) == 1 and clock.sleeps == []


def test_5xx_is_retried_a_bounded_number_of_times(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    receiver.script(*[503] * 10)

    (result,) = slack_notifier(receiver, clock).send_summary(MESSAGE)

    assert not result.delivered and result.attempts == 5
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert result.error.endswith("; gave up after 5 attempts")


def test_retries_stop_at_the_total_time_limit(receiver: RecordingWebhook, clock: SkippingClock) -> None:
    receiver.script(*[503] * 10)
    notifier = Notifier.from_env(
        notifications(),
        {"BLUEGREEN_SLACK_WEBHOOK_URL": receiver.url},
        retry=DeliveryRetryPolicy(total_seconds=5),
        sleep=clock.sleep,
        clock=clock,
    )

    (result,) = notifier.send_summary(MESSAGE)

    assert not result.delivered and result.attempts == 3
    assert clock.sleeps == [1.0, 2.0]
    assert "waiting 4 s more would pass the 5 s limit" in result.error


def test_an_unreachable_receiver_is_a_result_not_an_exception(clock: SkippingClock) -> None:
    url = f"http://127.0.0.1:{unused_port()}{TOKEN_PATH}"
    notifier = Notifier.from_env(notifications(), {"BLUEGREEN_SLACK_WEBHOOK_URL": url}, sleep=clock.sleep, clock=clock)

    (result,) = notifier.send_summary(MESSAGE)

    assert not result.delivered and result.attempts == 5 and result.status is None
    assert "ConnectError" in result.error
    assert "secret-token" not in result.error, "the webhook URL's token leaked into the error"
    assert result.to_record()["delivered"] == "false"


def test_a_malformed_url_fails_at_once() -> None:
    notifier = Notifier.from_env(notifications(), {"BLUEGREEN_SLACK_WEBHOOK_URL": "hooks.slack.com/services/x"})

    (result,) = notifier.send_summary(MESSAGE)

    assert not result.delivered and result.attempts == 1
    assert "not a usable URL" in result.error


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.6, "1m 0s"), (125.4, "2m 5s"), (3603, "1h 0m 3s")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
