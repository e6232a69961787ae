"""``kubectl bluegreen grant SERVICE``: let the service's slots run as its pods' ServiceAccount and read their Secrets.

The admission policies let argo-bluegreen write a slot whose pods run as a ServiceAccount other than ``default``, or
refer to a Secret, only where the namespace grants its ServiceAccount the RBAC verb ``use`` on that object. This
command, run by the namespace's administrator, reads what the team's Deployment's pods use and applies one Role,
``argo-bluegreen-<service>-identity``, granting ``use`` on exactly those objects, and its RoleBinding. The slots are
written by the ServiceAccount the grant confines, so what they use is only reported, never granted. Run it again
after the team's Deployment changes what it uses: the Role then names what it uses at that moment, and is removed
when that is nothing. ``--dry-run`` prints the objects and changes nothing.
"""

from __future__ import annotations

import argparse
import sys

from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, ROLE_BINDINGS, ROLES
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import NotFoundError
from kubectl_bluegreen.rendering import as_text
from steps import identity_grant
from steps.service_state import load

HELP = "grant argo-bluegreen the ServiceAccount and Secrets the service's pods use (run as the namespace's admin)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [--dry-run]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the Role and RoleBinding as YAML; change nothing"
    )


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Read what the team's pods use, then apply the Role and its binding (or remove them when nothing is needed)."""
    kube, namespace = cluster.kube, cluster.namespace
    # Only the spec and the team's Deployment: a namespace's admin may not be able to read the service's route.
    if kube.get(BLUE_GREEN_DEPLOYMENTS, namespace, args.service) is None:
        raise NotFoundError(
            f"BlueGreenDeployment {namespace}/{args.service} does not exist; check the name and the namespace (-n)"
        )
    resource, _ = load(kube, namespace, args.service)
    needs = identity_grant.team_needs(kube, namespace, resource)
    if needs is None:
        raise NotFoundError(
            f"Deployment {namespace}/{resource.adopted_deployment_name()} does not exist: the grant names what the "
            "team's Deployment uses, so restore it (or name it in spec.deployment), then run this again"
        )
    for slot, kind, name in identity_grant.slot_only_needs(kube, namespace, resource, needs):
        print(
            f"warning: Deployment {namespace}/{slot} uses {identity_grant.KINDS[kind]} {name}, which the team's "
            "Deployment does not; it is not granted",
            file=sys.stderr,
        )
    role, binding = identity_grant.grant_objects(namespace, args.service, needs)
    name = role["metadata"]["name"]
    if args.dry_run:
        sys.stdout.write("---\n".join(as_text(document, "yaml") for document in (role, binding)) if needs else "")
        return 0
    if not needs:
        removed = [kube.delete(r, namespace, name) for r in (ROLE_BINDINGS, ROLES)]
        done = f"; removed Role {name}" if any(removed) else ""
        print(f"the pods of {namespace}/{args.service} run as default and refer to no Secret: nothing to grant{done}")
        return 0
    kube.apply(ROLES, namespace, role)
    kube.apply(ROLE_BINDINGS, namespace, binding)
    granted = ", ".join(f"{identity_grant.KINDS[kind]} {used}" for kind, used in needs)
    print(f"granted use on {granted} in {namespace} (Role {name}) for {args.service}'s slots")
    return 0
