"""Where a release's pod template comes from: the team's Deployment, as the team (or git, via Argo CD) last wrote it.

After adoption the team's Deployment runs no pods, but it stays the source of truth, as the workload in git is for
Argo Rollouts and Flagger: every deploy builds the new slot from its pod template, with the deploy's image in the
changing container, so a commit of new env, resources, probes or a sidecar reaches production with the next deploy.
A deploy without an image releases exactly what that Deployment says, image included. Nothing of the Deployment
beyond its pod template and rollout settings is copied: the slot's replicas are the service's, and Argo CD's tracking
stays off the slot (see :func:`steps.slots.slot_deployment`).

Only when that Deployment is gone (a team deleted it after adoption), no longer lent to the service, or one of the
service's own slots (``spec.deployment`` naming ``<svc>-blue``) is the live slot's template the source, and the record
says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import opt_in, slots
from steps.kube import Kube, Obj


@dataclass(frozen=True)
class ReleaseSource:
    """The Deployment a release copies its pod template from, and whether it is the team's own."""

    deployment: Obj
    from_team: bool
    #: Why the team's Deployment is not the source, when it is not.
    why_not: str = ""

    @property
    def name(self) -> str:
        """The Deployment's name."""
        return str(self.deployment["metadata"]["name"])

    def image(self, container: str | None) -> str:
        """The image its changing container runs: what a deploy without an image releases."""
        return slots.current_image(self.deployment, container)

    def warning(self, namespace: str, resource: spec.BlueGreenDeployment) -> str:
        """What the record says when the release cannot come from the team's Deployment."""
        if self.from_team:
            return ""
        return (
            f"Deployment {namespace}/{resource.adopted_deployment_name()} {self.why_not}, so this "
            f"release copies the live slot's pod template from {self.name}; restore the team's Deployment (in git) "
            "to make it the source again"
        )


def team_deployment(kube: Kube, resource: spec.BlueGreenDeployment, namespace: str) -> Obj | None:
    """The Deployment ``spec.deployment`` (else the service's name) names, adopted or not yet."""
    return kube.get(DEPLOYMENTS, namespace, resource.adopted_deployment_name())


def release_source(kube: Kube, resource: spec.BlueGreenDeployment, namespace: str, live: Obj) -> ReleaseSource:
    """The team's Deployment; the live slot's (``live``) only when the team's is gone."""
    team = team_deployment(kube, resource, namespace)
    if team is None:
        return ReleaseSource(live, from_team=False, why_not="does not exist")
    if opt_in.ours(team, resource.service):
        # spec.deployment naming a slot would make a release of the other slot's template: never the team's word.
        return ReleaseSource(live, from_team=False, why_not="is a slot of the service, not the team's Deployment")
    if not opt_in.lent(team, resource.service):
        # The label is the team's consent that this Deployment describes the service; without it, it may be anyone's.
        return ReleaseSource(live, from_team=False, why_not=f"is not labelled {spec.OPT_IN_LABEL}={resource.service}")
    return ReleaseSource(team, from_team=True)


def changing_container_name(source: Obj, container: str | None) -> str:
    """The name of the container whose image a release sets."""
    template = source["spec"]["template"]
    index = slots.container_index(template, container, f"Deployment {source['metadata']['name']}")
    return str(template["spec"]["containers"][index].get("name", ""))


__all__ = ["ReleaseSource", "changing_container_name", "release_source", "team_deployment"]
