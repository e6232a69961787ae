import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import bluegreen_spec as spec
from steps.images import version_label
from steps.slots import VERSION_LABEL, slot_deployment

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$")
DIGEST = "sha256:" + "ab12" * 16


def test_the_tag_names_the_version_and_a_digest_only_image_its_digest() -> None:
    assert version_label("registry.example/shop/web:v1.4.2") == "v1.4.2"
    assert version_label(f"registry.example/shop/web:v1.4.2@{DIGEST}") == "v1.4.2"
    assert version_label(f"registry.example/shop/web@{DIGEST}") == "sha256-" + ("ab12" * 16)[:56]
    assert version_label("web") == "latest"
    assert version_label("web:_build.7-") == "build.7"


@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True), st.booleans())
def test_every_valid_tag_gives_a_valid_label_value(tag: str, pinned: bool) -> None:
    image = f"registry.example/web:{tag}" + (f"@{DIGEST}" if pinned else "")
    assert LABEL_VALUE.fullmatch(version_label(image))


def _team_deployment(selector: dict[str, Any]) -> dict[str, Any]:
    """A Helm-style Deployment whose pods already carry the chart's version label."""
    pod_labels = {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "shop", VERSION_LABEL: "1.4.0"}
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": selector,
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [{"name": "web", "image": "x"}]}},
        },
    }


def test_slot_pods_carry_the_new_image_version_but_the_selector_never_does() -> None:
    source = _team_deployment({"matchLabels": {"app.kubernetes.io/name": "web"}})
    slot = slot_deployment(source, "web", spec.Slot.green, "r.example/web:v2.0.1", None, 2, "rec")
    assert slot["spec"]["template"]["metadata"]["labels"][VERSION_LABEL] == "v2.0.1"
    assert VERSION_LABEL not in slot["spec"]["selector"]["matchLabels"]


def test_a_team_selector_on_the_version_label_keeps_the_pods_inside_it() -> None:
    by_labels = _team_deployment({"matchLabels": {"app.kubernetes.io/name": "web", VERSION_LABEL: "1.4.0"}})
    by_expression = _team_deployment(
        {"matchExpressions": [{"key": VERSION_LABEL, "operator": "In", "values": ["1.4.0"]}]}
    )
    for source in (by_labels, by_expression):
        slot = slot_deployment(source, "web", spec.Slot.green, "r.example/web:v2.0.1", None, 2, "rec")
        assert slot["spec"]["template"]["metadata"]["labels"][VERSION_LABEL] == "1.4.0"
        assert slot["spec"]["selector"] == {
            **source["spec"]["selector"],
            "matchLabels": {
                **source["spec"]["selector"].get("matchLabels", {}),
                spec.SERVICE_LABEL: "web",
                spec.SLOT_LABEL: "green",
            },
        }
