"""What a slot's pods need granted, read from a pod spec, and the Role that grants exactly that.

The admission policy finds the same references with CEL; the integration tests try each way against the API server.
Here the pure reading is checked over generated pod specs: every reference is found once, with a field path that
leads to it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bluegreen_contract import GRANT_VERB, STEPS_SERVICE_ACCOUNT
from steps import identity_grant

NAMES = st.sampled_from(["db", "tls", "registry", "api-key"])


def _at(pod: dict[str, Any], field: str) -> Any:
    """The value at a field path such as ``containers[0].env[1].valueFrom.secretKeyRef.name``."""
    value: Any = pod
    for part in field.split("."):
        key, _, index = part.partition("[")
        value = value[key]
        if index:
            value = value[int(index.rstrip("]"))]
    return value


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    def container(name: str) -> dict[str, Any]:
        env = [
            {"name": f"E{i}", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}
            for i, secret in enumerate(draw(st.lists(NAMES, max_size=3)))
        ]
        env.append({"name": "PLAIN", "value": "x"})
        env_from = [{"secretRef": {"name": s}} for s in draw(st.lists(NAMES, max_size=2))]
        env_from.append({"configMapRef": {"name": "settings"}})
        return {"name": name, "image": "app", "env": env, "envFrom": env_from}

    volumes: list[dict[str, Any]] = [
        {"name": f"v{i}", "secret": {"secretName": s}} for i, s in enumerate(draw(st.lists(NAMES, max_size=2)))
    ]
    volumes.append(
        {"name": "p", "projected": {"sources": [{"secret": {"name": s}} for s in draw(st.lists(NAMES, max_size=2))]}}
    )
    volumes.append({"name": "scratch", "emptyDir": {}})
    if draw(st.booleans()):
        volumes.append({"name": "vault", "csi": {"driver": "d", "nodePublishSecretRef": {"name": draw(NAMES)}}})
    pod: dict[str, Any] = {
        "containers": [container("app")],
        "initContainers": [container("setup")] if draw(st.booleans()) else [],
        "volumes": volumes,
        "imagePullSecrets": [{"name": s} for s in draw(st.lists(NAMES, max_size=2))],
    }
    account = draw(st.sampled_from(["", "default", "cart-sa"]))
    if account:
        pod["serviceAccountName"] = account
    return pod


def _every_secret_named(pod: dict[str, Any]) -> set[str]:
    names = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    names |= {s["secret"]["name"] for v in pod["volumes"] if "projected" in v for s in v["projected"]["sources"]}
    names |= {v["csi"]["nodePublishSecretRef"]["name"] for v in pod["volumes"] if "csi" in v}
    for container in pod["containers"] + pod["initContainers"]:
        names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        names |= {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
    return names | {s["name"] for s in pod["imagePullSecrets"]}


@given(pod_specs())
def test_every_secret_and_a_named_service_account_is_needed_once_at_a_field_that_names_it(pod: dict[str, Any]) -> None:
    needs = identity_grant.needed(pod)
    keys = [(resource, name) for resource, name, _ in needs]
    assert len(keys) == len(set(keys))
    assert {name for resource, name in keys if resource == "secrets"} == _every_secret_named(pod)
    accounts = [name for resource, name in keys if resource == "serviceaccounts"]
    assert accounts == ([] if pod.get("serviceAccountName", "default") == "default" else ["cart-sa"])
    for resource, name, field in needs:
        assert _at(pod, field) == name, (resource, field)


def test_the_role_grants_use_on_exactly_the_named_objects_to_the_steps_service_account() -> None:
    needs = [("secrets", "db"), ("serviceaccounts", "cart-sa"), ("secrets", "api-key")]
    role, binding = identity_grant.grant_objects("shop", "cart", needs)
    assert role["metadata"] == {
        "name": "argo-bluegreen-cart-identity",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/part-of": "argo-bluegreen"},
    }
    # One rule per resource: a name granted as a Secret is not also granted as a ServiceAccount.
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": [GRANT_VERB], "resourceNames": ["api-key", "db"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": [GRANT_VERB], "resourceNames": ["cart-sa"]},
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": STEPS_SERVICE_ACCOUNT, "namespace": "shop"}]
