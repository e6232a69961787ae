"""``kubectl bluegreen grant SERVICE``: let the service's slots run as its pods' ServiceAccount and read their Secrets.

The admission policies let argo-bluegreen write a slot whose pods run as a ServiceAccount other than ``default``, or
refer to a Secret, only where the namespace grants its ServiceAccount the RBAC verb ``use`` on that object. This
command, run by someone who may write Roles in the namespace, reads what the service's pods use (the team's
Deployment and each slot, as they are now) and applies one Role, ``argo-bluegreen-<service>-identity``, granting
``use`` on exactly those objects, and its RoleBinding. Run it again after the team's Deployment starts using another
ServiceAccount or Secret; the Role then names what the pods use at that moment. ``--dry-run`` prints the objects and
changes nothing.
"""

from __future__ import annotations

import argparse
import sys

from bluegreen_contract import ROLE_BINDINGS, ROLES
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.rendering import as_text
from kubectl_bluegreen.service_view import read_service
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
    """Read what the pods use, then apply the Role and its binding."""
    kube, namespace = cluster.kube, cluster.namespace
    read_service(kube, namespace, args.service)
    resource, _ = load(kube, namespace, args.service)
    needs = identity_grant.service_needs(kube, namespace, resource)
    if not needs:
        print(f"the pods of {namespace}/{args.service} run as default and refer to no Secret; nothing to grant")
        return 0
    role, binding = identity_grant.grant_objects(namespace, args.service, needs)
    if args.dry_run:
        sys.stdout.write("---\n".join(as_text(document, "yaml") for document in (role, binding)))
        return 0
    kube.apply(ROLES, namespace, role)
    kube.apply(ROLE_BINDINGS, namespace, binding)
    granted = ", ".join(f"{identity_grant.KINDS[kind]} {name}" for kind, name in needs)
    print(f"granted use on {granted} in {namespace} (Role {role['metadata']['name']}) for {args.service}'s slots")
    return 0
