"""The namespace's grant of a slot identity: RBAC ``use`` on the ServiceAccount and Secrets a slot's pods rely on.

A Deployment the steps write runs pods, so whoever writes it chooses what those pods run as and read. The admission
policies (rule ``identity-granted`` in ``pipelines/admission_policy.py``) let the workflow's ServiceAccount write a
slot whose pods run as a ServiceAccount other than ``default``, or refer to a Secret, only where the namespace grants
it the verb ``use`` on that object. That holds for a service no team lent a Deployment to compare with, too, which
no comparison can cover.

Preflight asks the API server (SelfSubjectAccessReview) for each grant the slots' template needs before its first
write, so a missing one fails the run with the command that adds it (``kubectl bluegreen grant``) instead of a 403
at deploy-green. The grant is a Role of the team's namespace, so it is the namespace's administrator who gives it.
"""

from __future__ import annotations

from collections.abc import Iterator

import bluegreen_spec as spec
from bluegreen_contract import (
    DEPLOYMENTS,
    GRANT_VERB,
    GRANTED_SECRETS_LIMIT,
    ROLE_BINDINGS,
    ROLES,
    STEPS_SERVICE_ACCOUNT,
)
from steps import slots
from steps.context import StepContext
from steps.errors import BadInput
from steps.kube import Kube, Obj

ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
KINDS = {"serviceaccounts": "ServiceAccount", "secrets": "Secret"}


def service_account_of(pod: Obj) -> str:
    """What the pod runs as: ``serviceAccountName``, its deprecated alias, else ``default`` (as the API server)."""
    return str(pod.get("serviceAccountName") or pod.get("serviceAccount") or "default")


def _secret_references(pod: Obj) -> Iterator[tuple[str, str]]:
    """Each Secret the pod refers to, with the field that refers to it."""
    for index, volume in enumerate(pod.get("volumes") or []):
        if (volume.get("secret") or {}).get("secretName"):
            yield volume["secret"]["secretName"], f"volumes[{index}].secret.secretName"
        if ((volume.get("csi") or {}).get("nodePublishSecretRef") or {}).get("name"):
            yield volume["csi"]["nodePublishSecretRef"]["name"], f"volumes[{index}].csi.nodePublishSecretRef.name"
        for source_index, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            if (source.get("secret") or {}).get("name"):
                yield source["secret"]["name"], f"volumes[{index}].projected.sources[{source_index}].secret.name"
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(kind) or []):
            where = f"{kind}[{index}]"
            for env_index, env in enumerate(container.get("env") or []):
                reference = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                if reference.get("name"):
                    yield reference["name"], f"{where}.env[{env_index}].valueFrom.secretKeyRef.name"
            for from_index, source in enumerate(container.get("envFrom") or []):
                if (source.get("secretRef") or {}).get("name"):
                    yield source["secretRef"]["name"], f"{where}.envFrom[{from_index}].secretRef.name"
    for index, pull in enumerate(pod.get("imagePullSecrets") or []):
        if pull.get("name"):
            yield pull["name"], f"imagePullSecrets[{index}].name"


def needed(pod: Obj) -> list[tuple[str, str, str]]:
    """The grants a slot with this pod spec needs: (resource, name, the first field that needs it)."""
    wanted: dict[tuple[str, str], str] = {}
    account = service_account_of(pod)
    if account != "default":
        wanted[("serviceaccounts", account)] = "serviceAccountName"
    for secret, field in _secret_references(pod):
        wanted.setdefault(("secrets", secret), field)
    return [(resource, name, field) for (resource, name), field in wanted.items()]


def allowed(ctx: StepContext, resource: str, name: str) -> bool:
    """Whether the steps' own identity holds ``use`` on the namespace's ``resource`` ``name``."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": ctx.namespace,
                "verb": GRANT_VERB,
                "group": "",
                "resource": resource,
                "name": name,
            }
        },
    }
    answer = ctx.kube.post(ACCESS_REVIEW_PATH, review, what=f"check the grant of {resource}/{name}")
    return bool((answer.get("status") or {}).get("allowed"))


def role_name(service: str) -> str:
    """The Role that holds ``service``'s grant."""
    return f"argo-bluegreen-{service}-identity"


def team_needs(kube: Kube, namespace: str, resource: spec.BlueGreenDeployment) -> list[tuple[str, str]] | None:
    """What the team's Deployment's pods use, sorted; None when it does not exist.

    Only the team's Deployment speaks for the team: the slots are written by the ServiceAccount the grant confines, so
    what they use is no reason to grant it.
    """
    deployment = kube.get(DEPLOYMENTS, namespace, resource.adopted_deployment_name())
    if deployment is None:
        return None
    return sorted({(kind, name) for kind, name, _ in needed(deployment["spec"]["template"].get("spec") or {})})


def slot_only_needs(
    kube: Kube, namespace: str, resource: spec.BlueGreenDeployment, granted: list[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """What a slot's pods use that the team's Deployment does not: (slot Deployment, resource, name)."""
    found = []
    for slot in spec.Slot:
        name = slots.deployment_name(resource.service, slot)
        deployment = kube.get(DEPLOYMENTS, namespace, name)
        if deployment is not None:
            for kind, used, _ in needed(deployment["spec"]["template"].get("spec") or {}):
                if (kind, used) not in granted:
                    found.append((name, kind, used))
    return found


def grant_objects(namespace: str, service: str, needs: list[tuple[str, str]]) -> list[Obj]:
    """The Role granting ``use`` on exactly ``needs`` (one rule per resource), and its binding to the steps."""
    name = role_name(service)
    rules = [
        {
            "apiGroups": [""],
            "resources": [kind],
            "verbs": [GRANT_VERB],
            "resourceNames": sorted(granted for k, granted in needs if k == kind),
        }
        for kind in sorted({kind for kind, _ in needs})
    ]
    labels = {"app.kubernetes.io/part-of": "argo-bluegreen"}
    return [
        {
            "apiVersion": ROLES.api_version,
            "kind": ROLES.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "rules": rules,
        },
        {
            "apiVersion": ROLE_BINDINGS.api_version,
            "kind": ROLE_BINDINGS.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": ROLES.group, "kind": ROLES.kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": STEPS_SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]


def require(ctx: StepContext, deployment: Obj) -> None:
    """Refuse, before any write, slots copied from ``deployment`` whose identity the namespace has not granted."""
    pod = deployment["spec"]["template"].get("spec") or {}
    name = deployment["metadata"]["name"]
    wanted = needed(pod)
    secrets = sorted(granted for resource, granted, _ in wanted if resource == "secrets")
    if len(secrets) > GRANTED_SECRETS_LIMIT:
        raise BadInput(
            f"Deployment {ctx.namespace}/{name}: spec.template.spec refers to {len(secrets)} Secrets "
            f"({', '.join(secrets)}); the admission policies check at most {GRANTED_SECRETS_LIMIT} per slot, so its "
            "slots would be refused. Gather them into fewer Secrets (or one projected volume of fewer Secrets), "
            "then run again"
        )
    missing = [
        (resource, granted, field) for resource, granted, field in wanted if not allowed(ctx, resource, granted)
    ]
    if not missing:
        return
    what = "; ".join(
        f"spec.template.spec.{field} names {KINDS[resource]} {granted}" for resource, granted, field in missing
    )
    raise BadInput(
        f"Deployment {ctx.namespace}/{name}: {what}, and the namespace does not grant {STEPS_SERVICE_ACCOUNT} the "
        f"RBAC verb {GRANT_VERB} on {'it' if len(missing) == 1 else 'them'}: the admission policies let a slot's pods "
        "run as a ServiceAccount other than default, or refer to a Secret, only where that is granted. As the "
        f"namespace's administrator, grant what the service's pods use (Role {role_name(ctx.service)}), then run "
        f"again: kubectl bluegreen grant {ctx.service} -n {ctx.namespace}"
    )


__all__ = [
    "KINDS",
    "allowed",
    "grant_objects",
    "needed",
    "require",
    "role_name",
    "service_account_of",
    "slot_only_needs",
    "team_needs",
]
