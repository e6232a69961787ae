"""The release summary preflight writes: each difference between the live slot's pod template and the new one."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import bluegreen_spec as spec
from steps.release_changes import MAX_CHANGES, MAX_LINE, describe, summarize

IMAGE_V1, IMAGE_V2 = "r/cart:v1", "r/cart:v2"


def template(image: str = IMAGE_V1, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "cart"}},
        "spec": {"containers": [{"name": "cart", "image": image, **container}]},
    }


def test_the_same_template_in_another_slot_changes_nothing() -> None:
    live = template()
    live["metadata"]["labels"] |= {spec.SLOT_LABEL: "blue", spec.VERSION_LABEL: "v1", spec.SERVICE_LABEL: "cart"}
    released = template()
    released["metadata"]["labels"] |= {spec.SLOT_LABEL: "green", spec.VERSION_LABEL: "v2", spec.SERVICE_LABEL: "cart"}
    assert summarize(live, released, "cart") == []
    assert describe([]).startswith("no change")


def test_each_kind_of_change_is_named() -> None:
    live = template(
        env=[{"name": "KEEP", "value": "1"}, {"name": "GONE", "value": "x"}, {"name": "MOVED", "value": "a"}],
        resources={"requests": {"memory": "64Mi", "cpu": "100m"}},
        livenessProbe={"httpGet": {"path": "/health", "port": 8080}},
    )
    live["spec"]["containers"].append({"name": "proxy", "image": "r/proxy:1"})
    released = template(
        IMAGE_V2,
        env=[{"name": "KEEP", "value": "1"}, {"name": "MOVED", "value": "b"}, {"name": "NEW", "value": "y"}],
        resources={"requests": {"memory": "96Mi"}},
        readinessProbe={"httpGet": {"path": "/ready", "port": 8080}},
    )
    released["spec"]["containers"].append({"name": "log-shipper", "image": "r/ship:2"})
    released["spec"]["serviceAccountName"] = "cart"
    assert summarize(live, released, "cart") == [
        f"image: {IMAGE_V1} -> {IMAGE_V2}",
        "container log-shipper added (r/ship:2)",
        "container proxy removed",
        "container cart: env NEW added",
        "container cart: env GONE removed",
        "container cart: env MOVED changed",
        "container cart: resources.requests.cpu removed (100m)",
        "container cart: resources.requests.memory changed (64Mi -> 96Mi)",
        "container cart: readinessProbe added",
        "container cart: livenessProbe removed",
        "pod: serviceAccountName changed",
    ]


def test_a_sidecar_image_is_named_with_its_container() -> None:
    live, released = template(), template()
    for pod, tag in ((live, "1"), (released, "2")):
        pod["spec"]["containers"].append({"name": "proxy", "image": f"r/proxy:{tag}"})
    assert summarize(live, released, "cart") == ["container proxy: image r/proxy:1 -> r/proxy:2"]


def test_a_rewritten_template_is_summarised_within_the_record_limit() -> None:
    live = template(env=[{"name": f"OLD_{i}", "value": "x"} for i in range(100)])
    released = template(env=[{"name": f"NEW_{i}", "value": "x"} for i in range(100)])
    lines = summarize(live, released, "cart")
    assert len(lines) == MAX_CHANGES
    assert lines[-1] == f"... and {200 - MAX_CHANGES + 1} more"


def test_a_long_line_is_cut_to_its_limit() -> None:
    released = template(f"r/{'x' * 500}:v2")
    (line,) = summarize(template(), released, "cart")
    assert len(line) == MAX_LINE and line.endswith("...")


ENV = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.sampled_from(["1", "2"])),
    unique_by=lambda item: item[0],
    max_size=4,
)


@given(ENV, ENV, st.sampled_from([IMAGE_V1, IMAGE_V2]))
def test_env_lines_name_exactly_the_variables_that_differ(
    before: list[tuple[str, str]], after: list[tuple[str, str]], image: str
) -> None:
    live = template(env=[{"name": n, "value": v} for n, v in before])
    released = template(image, env=[{"name": n, "value": v} for n, v in after])
    lines = summarize(copy.deepcopy(live), released, "cart")
    old, new = dict(before), dict(after)
    named = {line.split(" env ")[1].split(" ")[0] for line in lines if " env " in line}
    assert named == {n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}
    assert (f"image: {IMAGE_V1} -> {IMAGE_V2}" in lines) == (image == IMAGE_V2)
    assert summarize(released, released, "cart") == []
