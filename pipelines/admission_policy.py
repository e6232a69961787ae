"""ValidatingAdmissionPolicies that confine the workflow ServiceAccount to what argo-bluegreen owns or was lent.

RBAC cannot say "only Deployments labelled so": the Role has to grant writes on every Deployment, Service,
NetworkPolicy, HPA, PDB, VirtualService, DestinationRule and HTTPRoute of the namespace. These policies narrow that
grant at admission, in CEL, for requests made by the ServiceAccount (in any namespace it is installed into) and
nobody else. The ServiceAccount may change:

- objects it created, labelled ``argo-bluegreen.io/service=<service>`` before and after the write, each in the shape
  the steps give it: slot Deployments named ``<service>-<slot>`` whose pods keep the host and privilege rules of Pod
  Security's baseline and never run as the deployer; ClusterIP Services that select one slot's pods; isolation
  NetworkPolicies over the service's own slot pods; routes and DestinationRules that lead only to the service's slot
  Services;
- objects a team labelled ``argo-bluegreen.io/bluegreendeployment=<service>``, in the documented fields only, every
  other field (``metadata`` included) compared whole: the adoption of its Deployment (the ``adopted-by`` annotation,
  replicas to zero), the slot key of its Service's and its PDB's selectors, its HPA's target (the service's slot
  Deployments), and in its VirtualService or HTTPRoute the destinations of the service, replaced by its slot Services.

Why a label the team writes: a binding that selects BlueGreenDeployments as params evaluates the policy once per
BlueGreenDeployment of the namespace and ANDs the verdicts, so no policy can say "some BlueGreenDeployment names this
object". The label is the team's consent, on the object itself, which the ServiceAccount cannot add (``metadata`` is
compared whole); the BlueGreenDeployment it names then narrows it further.

Three policies read params, each evaluated once per object of the param kind in the request's namespace:

- the BlueGreenDeployments: a labelled object is the one that spec names (its Deployment, router Service,
  VirtualService, HTTPRoute), an HPA moves from one of its Deployments, and the routes we create carry its hosts,
  gateways and parents;
- the Services: a slot's pods join only Services of their own service, and a route gives up only destinations of
  Services of its own service;
- the Deployments: a slot's pods run as the ServiceAccount of the service's Deployment the team labelled and the steps
  adopted, refer only to Secrets it refers to and carry its pod labels; a Service of ours selects only pods of its
  own service; an HPA moves only from a Deployment of its own service.

A slot of a service with no such Deployment has nothing to be compared with, and no policy can require that one
exists (the verdicts are ANDed). So every slot is also held to the namespace's grant: its pods run as a ServiceAccount
other than ``default``, or refer to a Secret, only where RBAC grants the ServiceAccount the verb ``use`` on it, which
the policy asks the API server's authorizer (docs/reference/rbac.md).

The expressions use two-variable comprehensions (CEL in Kubernetes 1.33 and newer) and the list functions
``distinct()`` and ``flatten()`` (1.34 and newer). Kubernetes reference:
https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bluegreen_contract import GRANT_VERB, GRANTED_SECRETS_LIMIT
from bluegreen_spec import (
    ADOPTED_ANNOTATION,
    API_GROUP,
    API_VERSION,
    KIND,
    OPT_IN_LABEL,
    SERVICE_LABEL,
    SLOT_LABEL,
    VERSION_LABEL,
    Slot,
)
from pipelines.run_policy import PART_OF
from pipelines.settings import SERVICE_ACCOUNT

ADMISSION_API = "admissionregistration.k8s.io/v1"
POLICY_PREFIX = "argo-bluegreen-managed-"

#: The ServiceAccount in whatever namespace it is installed into: one cluster-wide policy serves every install.
IS_THE_SERVICE_ACCOUNT = (
    f"request.userInfo.username.startsWith('system:serviceaccount:') && "
    f"request.userInfo.username.endsWith(':{SERVICE_ACCOUNT}')"
)

#: Metadata the API server writes on every update; everything else in ``metadata`` is compared whole.
SERVER_METADATA = ("managedFields", "resourceVersion", "generation")
#: Capabilities Pod Security's baseline level lets a container add.
BASELINE_CAPABILITIES = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)
ROUTE_KINDS = ("http", "tcp", "tls")


# -- CEL building blocks ----------------------------------------------------------------------------------------------


def q(value: str) -> str:
    """A CEL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_list(values: Sequence[str]) -> str:
    """A CEL list of string literals."""
    return "[" + ", ".join(q(v) for v in values) + "]"


def or_default(expr: str, default: str) -> str:
    """``expr`` where the field is present, else ``default``; ``expr`` must end in a field selection."""
    return f"(has({expr}) ? {expr} : {default})"


def same_except(new: str, old: str, keys: Sequence[str] = ()) -> str:
    """Two maps equal in every key but ``keys``: the same keys, the same values."""
    skip = cel_list(keys)
    return (
        f"({new}.all(k, k in {skip} || (k in {old} && {old}[k] == {new}[k])) && "
        f"{old}.all(k, k in {skip} || k in {new}))"
    )


def labels_of(obj: str) -> str:
    return or_default(f"{obj}.metadata.labels", "{}")


SLOT_VALUES = cel_list([slot.value for slot in Slot])


def names_service(host: str, name: str) -> str:
    """Whether an Istio host names Service ``name`` of the request's namespace, in any of its in-cluster forms."""
    qualified = f"{name} + '.' + request.namespace"
    return (
        f"({host} == {name} || {host} == {qualified} || {host} == {qualified} + '.svc' || "
        f"{host}.startsWith({qualified} + '.svc.'))"
    )


def local_host(host: str) -> str:
    """Whether an Istio host names some Service of the request's namespace (short or qualified)."""
    parts = f"{host}.split('.')"
    return (
        f"(!{host}.contains('.') || ({parts}[1] == request.namespace && (size({parts}) == 2 || {parts}[2] == 'svc')))"
    )


def slot_host(host: str) -> str:
    """Whether an Istio host names one of the service's slot Services."""
    return f"({names_service(host, 'variables.slots[0]')} || {names_service(host, 'variables.slots[1]')})"


def slot_destination(item: str) -> str:
    return f"(has({item}.destination) && has({item}.destination.host) && {slot_host(f'{item}.destination.host')})"


def local_destination(item: str) -> str:
    return f"(has({item}.destination) && has({item}.destination.host) && {local_host(f'{item}.destination.host')})"


def local_ref(ref: str) -> str:
    """Whether an HTTPRoute backendRef names a Service of the route's namespace."""
    return (
        f"((!has({ref}.group) || {ref}.group == '') && (!has({ref}.kind) || {ref}.kind == 'Service') && "
        f"(!has({ref}.namespace) || {ref}.namespace == request.namespace))"
    )


def no_mirror(filters_owner: str) -> str:
    return f"(!has({filters_owner}.filters) || {filters_owner}.filters.all(f, f.type != 'RequestMirror'))"


def slot_ref(ref: str) -> str:
    return f"({local_ref(ref)} && {ref}.name in variables.slots && {no_mirror(ref)})"


def selects(selector: str, labels: str) -> str:
    """Whether a non-empty Service-style selector (a map) selects an object labelled ``labels``."""
    return f"(size({selector}) > 0 && {selector}.all(k, k in {labels} && {labels}[k] == {selector}[k]))"


def pod_containers(pod: str) -> str:
    return f"({or_default(f'{pod}.containers', '[]')} + {or_default(f'{pod}.initContainers', '[]')})"


def service_account_of(pod: str) -> str:
    """The ServiceAccount a pod runs as: ``serviceAccountName``, its deprecated alias, or ``default``."""
    return (
        f"(has({pod}.serviceAccountName) && {pod}.serviceAccountName != '' ? {pod}.serviceAccountName : "
        f"(has({pod}.serviceAccount) && {pod}.serviceAccount != '' ? {pod}.serviceAccount : 'default'))"
    )


def mounts_token(pod: str) -> str:
    return or_default(f"{pod}.automountServiceAccountToken", "true")


# -- what every policy knows about the request ------------------------------------------------------------------------

#: ``target``: the object as it will be (as it was, for a delete). ``ours``: created by the steps, labelled before and
#: after. ``optedIn``: a team's object its team lent, the label unchanged and never ours. ``bgd``: the service (the
#: BlueGreenDeployment) the write is made for. ``slots``: that service's slot Deployments and Services.
_COMMON_VARIABLES: tuple[tuple[str, str], ...] = (
    ("target", "request.operation == 'DELETE' ? oldObject : object"),
    ("labels", labels_of("variables.target")),
    (
        "oldLabels",
        "request.operation == 'UPDATE' && has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}",
    ),
    (
        "ours",
        f"{q(SERVICE_LABEL)} in variables.labels && "
        f"(request.operation != 'UPDATE' || {q(SERVICE_LABEL)} in variables.oldLabels)",
    ),
    (
        "optedIn",
        f"request.operation == 'UPDATE' && !({q(SERVICE_LABEL)} in variables.labels) && "
        f"!({q(SERVICE_LABEL)} in variables.oldLabels) && {q(OPT_IN_LABEL)} in variables.oldLabels && "
        f"{q(OPT_IN_LABEL)} in variables.labels && "
        f"variables.labels[{q(OPT_IN_LABEL)}] == variables.oldLabels[{q(OPT_IN_LABEL)}]",
    ),
    (
        "bgd",
        f"variables.optedIn ? variables.labels[{q(OPT_IN_LABEL)}] : "
        f"({q(SERVICE_LABEL)} in variables.labels ? variables.labels[{q(SERVICE_LABEL)}] : '')",
    ),
    ("slots", "[" + ", ".join(f"variables.bgd + '-{slot.value}'" for slot in Slot) + "]"),
    ("writesOurs", "variables.ours && request.operation != 'DELETE'"),
)

SAME_METADATA = same_except("object.metadata", "oldObject.metadata", SERVER_METADATA)


@dataclass(frozen=True)
class Rule:
    """One validation: ``expression`` must hold; a refusal names the rule and says what is allowed instead."""

    name: str
    expression: str
    allowed: str

    def validation(self) -> dict[str, Any]:
        """The rule as a policy's validation."""
        text = f"{SERVICE_ACCOUNT} may not make this write [{self.name}]: {self.allowed}; refused: "
        return {
            "expression": self.expression,
            "messageExpression": f"{q(text)} + request.operation + ' ' + request.namespace + '/' + request.name",
            "reason": "Forbidden",
        }


OURS_OR_OPTED_IN = "ours-or-opted-in"
_OURS_ONLY = f"only objects argo-bluegreen created, labelled {SERVICE_LABEL}"
_OURS_OR_LENT = (
    f"{_OURS_ONLY}, or the documented fields of a team's object labelled {OPT_IN_LABEL}=<its BlueGreenDeployment>"
)
_LENT_ONLY = f"only the documented fields of a team's object labelled {OPT_IN_LABEL}=<its BlueGreenDeployment>"


def _label_kept() -> Rule:
    return Rule(
        "slot-shape",
        f"!variables.ours || request.operation != 'UPDATE' || "
        f"variables.oldLabels[{q(SERVICE_LABEL)}] == variables.labels[{q(SERVICE_LABEL)}]",
        f"an object of ours keeps its {SERVICE_LABEL} label",
    )


# -- the Deployments ----------------------------------------------------------------------------------------------

_TEMPLATE_CHANGED = (
    "request.operation == 'CREATE' || "
    "(request.operation == 'UPDATE' && object.spec.template != oldObject.spec.template)"
)
_POD = "object.spec.template.spec"
_POD_LABELS = or_default("object.spec.template.metadata.labels", "{}")


#: Volume types Pod Security's restricted profile refuses: the node's paths, and in-tree storage drivers, several of
#: which take a Secret the admission policies would not see (``cephfs.secretRef``, ``azureFile.secretName``...).
UNRESTRICTED_VOLUME_TYPES = (
    "hostPath",
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)


def _baseline(pod: str) -> str:
    """Pod Security baseline's host and privilege rules, and never the deployer's own identity."""
    security = "c.securityContext"
    capabilities = f"{security}.capabilities"
    container = (
        f"(!has({security}) || ((!has({security}.privileged) || !{security}.privileged) && "
        f"(!has({capabilities}) || !has({capabilities}.add) || "
        f"{capabilities}.add.all(x, x in {cel_list(BASELINE_CAPABILITIES)})))) && "
        "(!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))"
    )
    return " && ".join(
        [
            *(f"(!has({pod}.{field}) || !{pod}.{field})" for field in ("hostNetwork", "hostPID", "hostIPC")),
            f"(!has({pod}.volumes) || {pod}.volumes.all(v, "
            + " && ".join(f"!has(v.{kind})" for kind in UNRESTRICTED_VOLUME_TYPES)
            + "))",
            f"{pod_containers(pod)}.all(c, {container})",
            f"{service_account_of(pod)} != {q(SERVICE_ACCOUNT)}",
        ]
    )


def _every_secret(pod: str, known: Callable[[str], str]) -> str:
    """``known(name)`` holds for every Secret ``pod`` refers to: volumes, projections, environment, pull secrets."""
    return " && ".join(
        [
            f"(!has({pod}.volumes) || {pod}.volumes.all(v, "
            f"(!has(v.secret) || !has(v.secret.secretName) || {known('v.secret.secretName')}) && "
            f"(!has(v.projected) || !has(v.projected.sources) || v.projected.sources.all(s, "
            f"!has(s.secret) || !has(s.secret.name) || {known('s.secret.name')}))))",
            f"{pod_containers(pod)}.all(c, (!has(c.env) || c.env.all(e, !has(e.valueFrom) || "
            f"!has(e.valueFrom.secretKeyRef) || {known('e.valueFrom.secretKeyRef.name')})) && "
            f"(!has(c.envFrom) || c.envFrom.all(e, !has(e.secretRef) || {known('e.secretRef.name')})))",
            f"(!has({pod}.imagePullSecrets) || {pod}.imagePullSecrets.all(s, !has(s.name) || {known('s.name')}))",
            f"(!has({pod}.volumes) || {pod}.volumes.all(v, !has(v.csi) || !has(v.csi.nodePublishSecretRef) || "
            f"!has(v.csi.nodePublishSecretRef.name) || {known('v.csi.nodePublishSecretRef.name')}))",
        ]
    )


def granted(resource: str, name: str) -> str:
    """Whether the requester holds the grant verb on the namespace's ``resource`` ``name`` (an RBAC check)."""
    return (
        f"authorizer.group('').resource({q(resource)}).namespace(request.namespace).name({name})"
        f".check({q(GRANT_VERB)}).allowed()"
    )


def _secret_names(pod: str) -> str:
    """Every Secret ``pod`` refers to, once each: volumes, projections, environment, pull secrets."""
    volumes = or_default(f"{pod}.volumes", "[]")
    containers = pod_containers(pod)
    return (
        "("
        + " + ".join(
            [
                f"{volumes}.filter(v, has(v.secret) && has(v.secret.secretName)).map(v, v.secret.secretName)",
                f"{volumes}.filter(v, has(v.projected) && has(v.projected.sources)).map(v, v.projected.sources"
                ".filter(s, has(s.secret) && has(s.secret.name)).map(s, s.secret.name)).flatten()",
                f"{containers}.map(c, has(c.env) ? c.env.filter(e, has(e.valueFrom) && "
                "has(e.valueFrom.secretKeyRef)).map(e, e.valueFrom.secretKeyRef.name) : []).flatten()",
                f"{containers}.map(c, has(c.envFrom) ? c.envFrom.filter(e, has(e.secretRef))"
                ".map(e, e.secretRef.name) : []).flatten()",
                f"{or_default(f'{pod}.imagePullSecrets', '[]')}.filter(s, has(s.name)).map(s, s.name)",
                f"{volumes}.filter(v, has(v.csi) && has(v.csi.nodePublishSecretRef) && "
                "has(v.csi.nodePublishSecretRef.name)).map(v, v.csi.nodePublishSecretRef.name)",
            ]
        )
        + ").distinct()"
    )


_GRANT_APPLIES = f"!variables.writesOurs || !({_TEMPLATE_CHANGED})"
_GRANTED = (
    f"a slot's pods run as a ServiceAccount other than default, and refer to a Secret (a volume, a projection, the "
    f"environment, a pull secret), only where the namespace grants {SERVICE_ACCOUNT} the RBAC verb {GRANT_VERB} on "
    f"it, and to at most {GRANTED_SECRETS_LIMIT} Secrets"
)


def _identity_granted_rules() -> tuple[Rule, ...]:
    """The slot's ServiceAccount, the number of its Secrets, then each Secret: one RBAC check per validation."""
    account = service_account_of(_POD)
    return (
        Rule(
            "identity-granted",
            f"{_GRANT_APPLIES} || {account} == 'default' || {granted('serviceaccounts', account)}",
            _GRANTED,
        ),
        Rule(
            "identity-granted",
            f"{_GRANT_APPLIES} || size(variables.secretNames) <= {GRANTED_SECRETS_LIMIT}",
            _GRANTED,
        ),
        *(
            Rule(
                "identity-granted",
                f"{_GRANT_APPLIES} || size(variables.secretNames) <= {index} || "
                f"{granted('secrets', f'variables.secretNames[{index}]')}",
                _GRANTED,
            )
            for index in range(GRANTED_SECRETS_LIMIT)
        ),
    )


def _adoption() -> str:
    annotations, old_annotations = (
        or_default("object.metadata.annotations", "{}"),
        or_default("oldObject.metadata.annotations", "{}"),
    )
    return " && ".join(
        [
            same_except("object.metadata", "oldObject.metadata", (*SERVER_METADATA, "annotations")),
            same_except(annotations, old_annotations, (ADOPTED_ANNOTATION,)),
            f"{q(ADOPTED_ANNOTATION)} in {annotations} && {annotations}[{q(ADOPTED_ANNOTATION)}] in variables.slots",
            same_except("object.spec", "oldObject.spec", ("replicas",)),
            "(object.spec.replicas == oldObject.spec.replicas || object.spec.replicas == 0)",
        ]
    )


def _slot_deployment_shape() -> str:
    slot = f"variables.labels[{q(SLOT_LABEL)}]"
    match = or_default("object.spec.selector.matchLabels", "{}")
    return " && ".join(
        [
            f"{q(SLOT_LABEL)} in variables.labels && {slot} in {SLOT_VALUES}",
            f"object.metadata.name == variables.bgd + '-' + {slot}",
            # A paused slot would let the Deployment controller adopt and scale a ReplicaSet orphaned by an earlier
            # slot of the same name, whose template the policies checked against an earlier grant.
            "(!has(object.spec.paused) || !object.spec.paused)",
            *(
                f"{q(key)} in {labels} && {labels}[{q(key)}] == {value}"
                for labels in (match, _POD_LABELS)
                for key, value in ((SERVICE_LABEL, "variables.bgd"), (SLOT_LABEL, slot))
            ),
        ]
    )


_DEPLOYMENT_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours || variables.optedIn", _OURS_OR_LENT),
    _label_kept(),
    Rule(
        "slot-shape",
        f"!variables.writesOurs || {_slot_deployment_shape()}",
        f"a Deployment of ours is a slot: named <service>-<slot>, never paused, its selector and pods labelled "
        f"{SERVICE_LABEL} and {SLOT_LABEL} alike",
    ),
    Rule(
        "pod-baseline",
        f"!variables.writesOurs || !({_TEMPLATE_CHANGED}) || ({_baseline(_POD)})",
        "a slot's pods keep Pod Security baseline's host and privilege rules (no host network, PID, IPC, ports or "
        "paths, no privileged container, no capability beyond baseline's), use only the volume types of the "
        f"restricted profile, and never run as {SERVICE_ACCOUNT}",
    ),
    *_identity_granted_rules(),
    Rule(
        "adoption-only",
        f"!variables.optedIn || ({_adoption()})",
        f"a team's Deployment may only be adopted: annotated {ADOPTED_ANNOTATION}=<its slot> and scaled to zero, "
        "everything else as it was",
    ),
)


# -- the Services -----------------------------------------------------------------------------------------------------


def _pin(new: str, old: str) -> str:
    """``new`` (a label map) equals ``old`` but for the slot key, which names a slot."""
    slot = q(SLOT_LABEL)
    return f"{same_except(new, old, (SLOT_LABEL,))} && {slot} in {new} && {new}[{slot}] in {SLOT_VALUES}"


_SERVICE_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours || variables.optedIn", _OURS_OR_LENT),
    _label_kept(),
    Rule(
        "managed-service-shape",
        "!variables.writesOurs || ("
        "(!has(object.spec.type) || object.spec.type == 'ClusterIP') && "
        "(!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0) && "
        f"has(object.spec.selector) && {q(SLOT_LABEL)} in object.spec.selector && "
        f"object.spec.selector[{q(SLOT_LABEL)}] in {SLOT_VALUES})",
        f"a Service of ours is a ClusterIP Service without external IPs whose selector names one slot ({SLOT_LABEL})",
    ),
    Rule(
        "slot-pin-only",
        f"!variables.optedIn || ({SAME_METADATA} && {same_except('object.spec', 'oldObject.spec', ('selector',))} && "
        f"{_pin(or_default('object.spec.selector', '{}'), or_default('oldObject.spec.selector', '{}'))})",
        f"a team's Service may only have the {SLOT_LABEL} key of its selector set to a slot, everything else as "
        "it was",
    ),
)


# -- NetworkPolicies, HPAs, PDBs --------------------------------------------------------------------------------------

_NETWORK_POLICY_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours", _OURS_ONLY),
    _label_kept(),
    Rule(
        "slot-shape",
        "!variables.writesOurs || ("
        "has(object.spec.podSelector) && has(object.spec.podSelector.matchLabels) && "
        f"{q(SERVICE_LABEL)} in object.spec.podSelector.matchLabels && "
        f"object.spec.podSelector.matchLabels[{q(SERVICE_LABEL)}] == variables.bgd && "
        f"{q(SLOT_LABEL)} in object.spec.podSelector.matchLabels && "
        f"object.spec.podSelector.matchLabels[{q(SLOT_LABEL)}] in {SLOT_VALUES} && "
        "has(object.spec.policyTypes) && object.spec.policyTypes == ['Ingress'])",
        f"a NetworkPolicy of ours governs only the ingress of one slot's pods of its own service "
        f"({SERVICE_LABEL} and {SLOT_LABEL} in its podSelector)",
    ),
)

_TARGET, _OLD_TARGET = "object.spec.scaleTargetRef", "oldObject.spec.scaleTargetRef"
_HPA_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.optedIn", _LENT_ONLY),
    Rule(
        "autoscaler-follows-slot",
        f"!variables.optedIn || ({SAME_METADATA} && "
        f"{same_except('object.spec', 'oldObject.spec', ('scaleTargetRef',))} && "
        f"{same_except(_TARGET, _OLD_TARGET, ('name',))} && {_TARGET}.name in variables.slots)",
        "a team's HorizontalPodAutoscaler may only be aimed at a slot Deployment of its service, everything else as "
        "it was",
    ),
)

_SELECTOR, _OLD_SELECTOR = "object.spec.selector", "oldObject.spec.selector"
_PDB_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.optedIn", _LENT_ONLY),
    Rule(
        "slot-pin-only",
        f"!variables.optedIn || ({SAME_METADATA} && {same_except('object.spec', 'oldObject.spec', ('selector',))} && "
        f"has({_SELECTOR}) && has({_OLD_SELECTOR}) && "
        f"{same_except(_SELECTOR, _OLD_SELECTOR, ('matchLabels',))} && "
        f"{_pin(or_default(f'{_SELECTOR}.matchLabels', '{}'), or_default(f'{_OLD_SELECTOR}.matchLabels', '{}'))})",
        f"a team's PodDisruptionBudget may only have the {SLOT_LABEL} key of its matchLabels set to a slot, "
        "everything else as it was",
    ),
)


# -- routes -----------------------------------------------------------------------------------------------------------


def _kept_items(new_items: str, old_items: str, ours: Callable[[str], str], given_up: Callable[[str], str]) -> str:
    """A route's list after a flip: the items not ``ours`` are the old ones, in their order.

    Items of ours may be added, and an old item may go only where ``given_up`` says it led to a Service of the
    namespace (the service-selectors policy then checks whose).
    """
    return (
        f"{new_items}.all(d, {ours('d')} || d in {old_items}) && "
        f"{new_items}.filter(d, !{ours('d')}) == {old_items}.filter(d, !{ours('d')} && d in {new_items}) && "
        f"{old_items}.all(d, d in {new_items} || {ours('d')} || {given_up('d')})"
    )


def _routes_flipped(kind: str) -> str:
    """The ``kind`` routes of a team's VirtualService: each as it was but for the service's destinations."""
    new, old = or_default(f"object.spec.{kind}", "[]"), or_default(f"oldObject.spec.{kind}", "[]")
    new_items, old_items = or_default("r.route", "[]"), or_default(f"{old}[i].route", "[]")
    return (
        f"size({new}) == size({old}) && {new}.all(i, r, {same_except('r', f'{old}[i]', ('route',))} && "
        f"{_kept_items(new_items, old_items, slot_destination, local_destination)})"
    )


def _rules_flipped() -> str:
    """The rules of a team's HTTPRoute: each as it was but for the service's backendRefs."""
    new, old = or_default("object.spec.rules", "[]"), or_default("oldObject.spec.rules", "[]")
    new_items, old_items = or_default("r.backendRefs", "[]"), or_default(f"{old}[i].backendRefs", "[]")
    return (
        f"size({new}) == size({old}) && {new}.all(i, r, {same_except('r', f'{old}[i]', ('backendRefs',))} && "
        f"{_kept_items(new_items, old_items, slot_ref, local_ref)})"
    )


def _created_routes_lead_to_slots() -> str:
    checks = []
    for kind in ROUTE_KINDS:
        route = (
            f"(!has(r.route) || r.route.all(d, {slot_destination('d')}))"
            if kind != "http"
            else f"(!has(r.route) || r.route.all(d, {slot_destination('d')})) && "
            "!has(r.mirror) && !has(r.mirrors) && !has(r.delegate)"
        )
        checks.append(f"(!has(object.spec.{kind}) || object.spec.{kind}.all(r, {route}))")
    return " && ".join(checks)


_ROUTES_OWN = "routes-own-destinations"
_ROUTES_TO_SLOTS = "routes-to-own-slots"
_VIRTUAL_SERVICE_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours || variables.optedIn", _OURS_OR_LENT),
    _label_kept(),
    Rule(
        _ROUTES_TO_SLOTS,
        f"!variables.writesOurs || ({_created_routes_lead_to_slots()})",
        "a VirtualService of ours sends only to its service's slot Services, and mirrors and delegates nothing",
    ),
    Rule(
        _ROUTES_OWN,
        f"!variables.optedIn || ({SAME_METADATA} && "
        f"{same_except('object.spec', 'oldObject.spec', ROUTE_KINDS)} && "
        + " && ".join(_routes_flipped(kind) for kind in ROUTE_KINDS)
        + ")",
        "in a team's VirtualService only the service's destinations may be replaced by its slot Services, every "
        "other destination, route field and host as it was",
    ),
)

_DESTINATION_RULE_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours", _OURS_ONLY),
    _label_kept(),
    Rule(
        _ROUTES_TO_SLOTS,
        f"!variables.writesOurs || ({q(SLOT_LABEL)} in variables.labels && "
        f"variables.labels[{q(SLOT_LABEL)}] in {SLOT_VALUES} && "
        f"object.metadata.name == variables.bgd + '-' + variables.labels[{q(SLOT_LABEL)}] && "
        f"{names_service('object.spec.host', 'object.metadata.name')})",
        "a DestinationRule of ours is a slot's: named <service>-<slot>, for that slot Service's host",
    ),
)

_HTTP_ROUTE_RULES = (
    Rule(OURS_OR_OPTED_IN, "variables.ours || variables.optedIn", _OURS_OR_LENT),
    _label_kept(),
    Rule(
        _ROUTES_TO_SLOTS,
        "!variables.writesOurs || !has(object.spec.rules) || object.spec.rules.all(r, "
        f"(!has(r.backendRefs) || r.backendRefs.all(b, {slot_ref('b')})) && {no_mirror('r')})",
        "an HTTPRoute of ours sends only to its service's slot Services and mirrors nothing",
    ),
    Rule(
        _ROUTES_OWN,
        f"!variables.optedIn || ({SAME_METADATA} && {same_except('object.spec', 'oldObject.spec', ('rules',))} && "
        f"{_rules_flipped()})",
        "in a team's HTTPRoute only the service's backendRefs may be replaced by its slot Services, every other "
        "backendRef, rule field, hostname and parent as it was",
    ),
)


# -- the policies -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One ValidatingAdmissionPolicy, its resources and, for a param policy, the kind it reads and its bindings."""

    name: str
    resources: tuple[tuple[str, str], ...]
    rules: tuple[Rule, ...]
    param_kind: tuple[str, str] | None = None
    variables: tuple[tuple[str, str], ...] = ()
    failure_policy: str = "Fail"

    @property
    def full_name(self) -> str:
        """The policy's object name."""
        return POLICY_PREFIX + self.name

    def document(self) -> dict[str, Any]:
        """The ValidatingAdmissionPolicy."""
        spec: dict[str, Any] = {
            "failurePolicy": self.failure_policy,
            # matchConstraints is an atomic struct in server-side apply. Spelling out what the API server would
            # default (matchPolicy, both selectors, scope) makes the applied value equal the stored one, so a second
            # field manager (kubectl after a GitOps tool, say) co-owns it instead of meeting a conflict.
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
                "resourceRules": [
                    {
                        "apiGroups": [group],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "resources": [resource],
                        "scope": "*",
                    }
                    for group, resource in self.resources
                ],
            },
            "matchConditions": [{"name": "is-the-workflow-service-account", "expression": IS_THE_SERVICE_ACCOUNT}],
            "variables": [
                {"name": name, "expression": expression} for name, expression in (*_COMMON_VARIABLES, *self.variables)
            ],
            "validations": [rule.validation() for rule in self.rules],
        }
        if self.param_kind is not None:
            api_version, kind = self.param_kind
            spec = {"paramKind": {"apiVersion": api_version, "kind": kind}, **spec}
        return {
            "apiVersion": ADMISSION_API,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.full_name, "labels": dict(PART_OF)},
            "spec": spec,
        }

    def bindings(self) -> list[dict[str, Any]]:
        """Its ValidatingAdmissionPolicyBindings.

        A param policy is bound twice, to the objects of ours and to the team's lent objects: nothing else is
        evaluated against its params, so no other object's write depends on their informer.
        """
        if self.param_kind is None:
            return [_binding(self.full_name, self.full_name, None)]
        return [
            _binding(f"{self.full_name}-{which}", self.full_name, label)
            for which, label in (("ours", SERVICE_LABEL), ("opted-in", OPT_IN_LABEL))
        ]


def _binding(name: str, policy: str, label: str | None) -> dict[str, Any]:
    """Enforces a policy everywhere: its match condition already narrows it to the ServiceAccount.

    A param policy's binding selects the params of the request's namespace (all of them: each is evaluated and every
    verdict must allow) and only objects carrying ``label``; with no param in the namespace there is nothing to
    compare and the policy allows.
    """
    spec: dict[str, Any] = {"policyName": policy, "validationActions": ["Deny"]}
    if label is not None:
        spec["paramRef"] = {"selector": {}, "parameterNotFoundAction": "Allow"}
        spec["matchResources"] = {
            "matchPolicy": "Equivalent",
            "namespaceSelector": {},
            "objectSelector": {"matchExpressions": [{"key": label, "operator": "Exists"}]},
        }
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": spec,
    }


# -- the param policies -----------------------------------------------------------------------------------------------

_RESOURCE = "request.resource.resource"


def _for(resource: str, condition: str, check: str) -> str:
    return f"{_RESOURCE} != {q(resource)} || !({condition}) || ({check})"


# The BlueGreenDeployment: the object is the one its spec names.
_B = "params"


def _bgd_field(path: str, default: str) -> str:
    """A field of the BlueGreenDeployment's spec (``traffic.istio.hosts``), ``default`` where any part is absent."""
    parts = path.split(".")
    guards = " && ".join(f"has({_B}.spec.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))
    return f"({guards} ? {_B}.spec.{path} : {default})"


_BGD_VARIABLES = (
    ("named", f"{_B}.metadata.name == variables.bgd"),
    ("router", _bgd_field("traffic.router", q("istio"))),
    ("adopted", _bgd_field("deployment", f"{_B}.metadata.name")),
    ("routerService", _bgd_field("traffic.service.name", f"{_B}.metadata.name")),
    ("virtualService", _bgd_field("traffic.istio.virtualService", f"{_B}.metadata.name")),
    ("httpRoute", _bgd_field("traffic.gatewayApi.httpRoute", f"{_B}.metadata.name")),
    ("preview", _bgd_field("traffic.previewService", f"{_B}.metadata.name + '-preview'")),
    (
        "clientHosts",
        f"{_bgd_field('traffic.istio.hosts', '[]')} + "
        f"({_bgd_field('traffic.istio.host', q(''))} != '' ? [{_B}.spec.traffic.istio.host] : [])",
    ),
    ("routes", _bgd_field("traffic.istio.routes", "[]")),
)

_HOSTS = or_default("object.spec.hosts", "[]")
_PARENTS = or_default("object.spec.parentRefs", "[]")
_SPEC_PARENTS = _bgd_field("traffic.gatewayApi.parentRefs", "[]")


def _named_http_routes_only() -> str:
    outside = "!(has(r.name) && r.name in variables.routes)"
    new, old = or_default("object.spec.http", "[]"), or_default("oldObject.spec.http", "[]")
    return f"size(variables.routes) == 0 || {new}.filter(r, {outside}) == {old}.filter(r, {outside})"


_PARENT_NAMED = (
    "q.name == p.name && "
    "(has(q.namespace) ? q.namespace : request.namespace) == (has(p.namespace) ? p.namespace : request.namespace) && "
    "(has(q.sectionName) ? q.sectionName : '') == (has(p.sectionName) ? p.sectionName : '')"
)

_NAMED_BY_SPEC = "named-by-spec"
_SPEC_RULES = (
    Rule(
        _NAMED_BY_SPEC,
        " && ".join(
            f"({_for(resource, f'variables.named && {condition}', check)})"
            for resource, condition, check in (
                ("deployments", "variables.optedIn", "object.metadata.name == variables.adopted"),
                ("services", "variables.optedIn", "object.metadata.name == variables.routerService"),
                (
                    "services",
                    "variables.writesOurs",
                    "object.metadata.name in variables.slots || object.metadata.name == variables.preview",
                ),
                (
                    "horizontalpodautoscalers",
                    "variables.optedIn",
                    "oldObject.spec.scaleTargetRef.name == variables.adopted || "
                    "oldObject.spec.scaleTargetRef.name in variables.slots",
                ),
                (
                    "virtualservices",
                    "variables.optedIn",
                    f"variables.router == 'istio' && object.metadata.name == variables.virtualService && "
                    f"({_named_http_routes_only()})",
                ),
                (
                    "virtualservices",
                    "variables.writesOurs",
                    "variables.router == 'istio' && object.metadata.name == variables.virtualService && "
                    f"{_HOSTS}.all(h, size(variables.clientHosts) > 0 ? h in variables.clientHosts : "
                    f"{names_service('h', 'variables.routerService')}) && "
                    f"{or_default('object.spec.gateways', '[]')} == {_bgd_field('traffic.istio.gateways', '[]')}",
                ),
                ("destinationrules", "variables.writesOurs", "variables.router == 'istio'"),
                (
                    "httproutes",
                    "variables.optedIn",
                    "variables.router == 'gateway-api' && object.metadata.name == variables.httpRoute",
                ),
                (
                    "httproutes",
                    "variables.writesOurs",
                    "variables.router == 'gateway-api' && object.metadata.name == variables.httpRoute && "
                    f"{or_default('object.spec.hostnames', '[]')} == "
                    f"{_bgd_field('traffic.gatewayApi.hostnames', '[]')} && "
                    f"{_PARENTS}.all(p, {_SPEC_PARENTS}.exists(q, {_PARENT_NAMED}))",
                ),
            )
        ),
        "the object is the one its BlueGreenDeployment names (spec.deployment, spec.traffic), for the router it "
        "names, and a route we create carries only the hosts, gateways and parents its spec gives",
    ),
)


# The Services: who selects a slot's pods, and whose destinations a route gives up.
_S = "params"
_SERVICE_VARIABLES = (
    ("paramLabels", labels_of(_S)),
    (
        "paramBelongs",
        f"({q(SERVICE_LABEL)} in variables.paramLabels && variables.paramLabels[{q(SERVICE_LABEL)}] == variables.bgd) "
        f"|| (!({q(SERVICE_LABEL)} in variables.paramLabels) && {q(OPT_IN_LABEL)} in variables.paramLabels && "
        f"variables.paramLabels[{q(OPT_IN_LABEL)}] == variables.bgd)",
    ),
)


def _given_up_destinations() -> str:
    """No destination naming the param Service leaves a team's VirtualService route."""
    checks = []
    for kind in ROUTE_KINDS:
        new, old = or_default(f"object.spec.{kind}", "[]"), or_default(f"oldObject.spec.{kind}", "[]")
        kept = f"(i < size({new}) && has({new}[i].route) && d in {new}[i].route)"
        host = "d.destination.host"
        names = f"(has(d.destination) && has({host}) && {names_service(host, f'{_S}.metadata.name')})"
        checks.append(f"{old}.all(i, r, !has(r.route) || r.route.all(d, {kept} || !{names}))")
    return " && ".join(checks)


def _given_up_backends() -> str:
    new, old = or_default("object.spec.rules", "[]"), or_default("oldObject.spec.rules", "[]")
    kept = f"(i < size({new}) && has({new}[i].backendRefs) && b in {new}[i].backendRefs)"
    return (
        f"{old}.all(i, r, !has(r.backendRefs) || r.backendRefs.all(b, {kept} || "
        f"!({local_ref('b')} && b.name == {_S}.metadata.name)))"
    )


_POD_LABELS_CHANGED = (
    f"request.operation == 'CREATE' || (request.operation == 'UPDATE' && {_POD_LABELS} != "
    f"{or_default('oldObject.spec.template.metadata.labels', '{}')})"
)
_PARAM_SELECTOR = or_default(f"{_S}.spec.selector", "{}")
_SERVICES_RULES = (
    Rule(
        "joins-own-services",
        "variables.paramBelongs || ("
        + _for(
            "deployments",
            f"variables.writesOurs && ({_POD_LABELS_CHANGED})",
            f"!{selects(_PARAM_SELECTOR, _POD_LABELS)}",
        )
        + ")",
        "a slot's pods join only Services of their own service (labelled for it, or ours)",
    ),
    Rule(
        "routes-own-services",
        "variables.paramBelongs || ("
        + " && ".join(
            f"({_for(resource, condition, check)})"
            for resource, condition, check in (
                (
                    "virtualservices",
                    "variables.writesOurs",
                    f"{_HOSTS}.all(h, !{names_service('h', f'{_S}.metadata.name')})",
                ),
                ("virtualservices", "variables.optedIn", _given_up_destinations()),
                ("httproutes", "variables.optedIn", _given_up_backends()),
            )
        )
        + ")",
        "a route gives up, or answers for, only Services of its own service (labelled for it, or ours)",
    ),
)


# The Deployments: the labelled team Deployment a slot is a copy of, and who a Service or an HPA points at.
_T = "params"
_TEAM_POD = f"{_T}.spec.template.spec"


def _secret_named(pod: str, name: str) -> str:
    """Whether ``pod`` refers to the Secret ``name`` anywhere: a volume, a projection, an env var, a pull secret.

    ``name`` is an expression over the variables of the slot's loops (:func:`_secrets_within`), so the loops here take
    names of their own (``tv``, ``ts``, ``tc``, ``te``): a CEL macro's variable hides an outer one of the same name,
    and ``name`` would then be read from the team's own item and always match.
    """
    return (
        f"((has({pod}.volumes) && {pod}.volumes.exists(tv, "
        f"(has(tv.secret) && has(tv.secret.secretName) && tv.secret.secretName == {name}) || "
        f"(has(tv.projected) && has(tv.projected.sources) && tv.projected.sources.exists(ts, "
        f"has(ts.secret) && has(ts.secret.name) && ts.secret.name == {name})))) || "
        f"{pod_containers(pod)}.exists(tc, (has(tc.env) && tc.env.exists(te, has(te.valueFrom) && "
        f"has(te.valueFrom.secretKeyRef) && te.valueFrom.secretKeyRef.name == {name})) || "
        f"(has(tc.envFrom) && tc.envFrom.exists(te, has(te.secretRef) && te.secretRef.name == {name}))) || "
        f"(has({pod}.imagePullSecrets) && {pod}.imagePullSecrets.exists(ts, has(ts.name) && ts.name == {name})) || "
        f"(has({pod}.volumes) && {pod}.volumes.exists(tv, has(tv.csi) && has(tv.csi.nodePublishSecretRef) && "
        f"has(tv.csi.nodePublishSecretRef.name) && tv.csi.nodePublishSecretRef.name == {name})))"
    )


def _secrets_within(pod: str, team: str) -> str:
    """Every Secret ``pod`` refers to is one ``team`` refers to."""
    return _every_secret(pod, lambda name: _secret_named(team, name))


_OURS_ON_PODS = cel_list((SERVICE_LABEL, SLOT_LABEL, VERSION_LABEL))
_TEAM_POD_LABELS = or_default(f"{_T}.spec.template.metadata.labels", "{}")
_DEPLOYMENT_VARIABLES = (
    ("paramLabels", labels_of(_T)),
    (
        "teamOfService",
        f"!({q(SERVICE_LABEL)} in variables.paramLabels) && {q(OPT_IN_LABEL)} in variables.paramLabels && "
        f"variables.paramLabels[{q(OPT_IN_LABEL)}] == variables.bgd",
    ),
    (
        "paramBelongs",
        f"variables.teamOfService || ({q(SERVICE_LABEL)} in variables.paramLabels && "
        f"variables.paramLabels[{q(SERVICE_LABEL)}] == variables.bgd)",
    ),
    # The Deployment the slots are copies of: the service's, and adopted (annotated before the first slot exists), so
    # another Deployment labelled for the service but not adopted is no model for its slots.
    (
        "copiedFrom",
        f"variables.teamOfService && has({_T}.metadata.annotations) && "
        f"{q(ADOPTED_ANNOTATION)} in {_T}.metadata.annotations && "
        f"{_T}.metadata.annotations[{q(ADOPTED_ANNOTATION)}] in variables.slots",
    ),
)
_IDENTITY = " && ".join(
    [
        f"{service_account_of(_POD)} == {service_account_of(_TEAM_POD)}",
        f"(!{mounts_token(_POD)} || {mounts_token(_TEAM_POD)})",
        _secrets_within(_POD, _TEAM_POD),
        f"{_POD_LABELS}.all(k, k in {_OURS_ON_PODS} || (k in {_TEAM_POD_LABELS} && "
        f"{_TEAM_POD_LABELS}[k] == {_POD_LABELS}[k]))",
        f"{_TEAM_POD_LABELS}.all(k, k in {_POD_LABELS})",
    ]
)
_SERVICE_SELECTOR_CHANGED = (
    "request.operation == 'CREATE' || (request.operation == 'UPDATE' && "
    f"{or_default('object.spec.selector', '{}')} != {or_default('oldObject.spec.selector', '{}')})"
)
_DEPLOYMENTS_RULES = (
    Rule(
        "slot-identity",
        _for("deployments", f"variables.writesOurs && ({_TEMPLATE_CHANGED}) && variables.copiedFrom", _IDENTITY),
        "a slot's pods run as the ServiceAccount of the team's Deployment it took over (labelled for the service and "
        "annotated adopted-by), mount a token only where it does, refer only to Secrets it refers to, and carry its "
        "pod labels plus ours",
    ),
    Rule(
        "references-own-deployments",
        "variables.paramBelongs || ("
        + _for(
            "services",
            f"variables.writesOurs && ({_SERVICE_SELECTOR_CHANGED})",
            f"!{selects(or_default('object.spec.selector', '{}'), _TEAM_POD_LABELS)}",
        )
        + ") && ("
        + _for(
            "horizontalpodautoscalers",
            "variables.optedIn",
            f"oldObject.spec.scaleTargetRef.name != {_T}.metadata.name",
        )
        + ")",
        "a Service of ours selects only pods of its own service, and an HPA moves only from a Deployment of its own "
        "service",
    ),
)


# -- the catalogue ----------------------------------------------------------------------------------------------------

_APPS, _CORE, _NETWORKING = "apps", "", "networking.k8s.io"
_ISTIO, _GATEWAY = "networking.istio.io", "gateway.networking.k8s.io"

POLICIES: tuple[Policy, ...] = (
    Policy(
        "deployments",
        ((_APPS, "deployments"),),
        _DEPLOYMENT_RULES,
        variables=(("secretNames", _secret_names(_POD)),),
    ),
    Policy("services", ((_CORE, "services"),), _SERVICE_RULES),
    Policy("networkpolicies", ((_NETWORKING, "networkpolicies"),), _NETWORK_POLICY_RULES),
    Policy("horizontalpodautoscalers", (("autoscaling", "horizontalpodautoscalers"),), _HPA_RULES),
    Policy("poddisruptionbudgets", (("policy", "poddisruptionbudgets"),), _PDB_RULES),
    Policy("virtualservices", ((_ISTIO, "virtualservices"),), _VIRTUAL_SERVICE_RULES),
    Policy("destinationrules", ((_ISTIO, "destinationrules"),), _DESTINATION_RULE_RULES),
    Policy("httproutes", ((_GATEWAY, "httproutes"),), _HTTP_ROUTE_RULES),
    Policy(
        "named-by-spec",
        (
            (_APPS, "deployments"),
            (_CORE, "services"),
            ("autoscaling", "horizontalpodautoscalers"),
            (_ISTIO, "virtualservices"),
            (_ISTIO, "destinationrules"),
            (_GATEWAY, "httproutes"),
        ),
        _SPEC_RULES,
        param_kind=(f"{API_GROUP}/{API_VERSION}", KIND),
        variables=_BGD_VARIABLES,
        # Only this policy reads a custom resource: were our CRD removed while the policies stay, a failing param
        # lookup must not make every labelled object of the cluster unwritable. The other policies still hold.
        failure_policy="Ignore",
    ),
    Policy(
        "service-selectors",
        ((_APPS, "deployments"), (_ISTIO, "virtualservices"), (_GATEWAY, "httproutes")),
        _SERVICES_RULES,
        param_kind=("v1", "Service"),
        variables=_SERVICE_VARIABLES,
    ),
    Policy(
        "deployment-references",
        ((_APPS, "deployments"), (_CORE, "services"), ("autoscaling", "horizontalpodautoscalers")),
        _DEPLOYMENTS_RULES,
        param_kind=("apps/v1", "Deployment"),
        variables=_DEPLOYMENT_VARIABLES,
    ),
)

#: The kinds every policy together covers, by resource.
KINDS = tuple(policy.name for policy in POLICIES if policy.param_kind is None)


def policy_named(name: str) -> Policy:
    """One of :data:`POLICIES` by its short name."""
    for policy in POLICIES:
        if policy.name == name:
            return policy
    raise KeyError(name)


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every policy and binding, each with its file under ``admission/`` of the install's ``cluster/`` part."""
    files = []
    for policy in POLICIES:
        files.append((f"admission/{policy.name}-policy.yaml", policy.document()))
        bindings = policy.bindings()
        for binding in bindings:
            suffix = binding["metadata"]["name"].removeprefix(policy.full_name)
            files.append((f"admission/{policy.name}-policy-binding{suffix}.yaml", binding))
    return files


__all__ = [
    "KINDS",
    "POLICIES",
    "POLICY_PREFIX",
    "Policy",
    "Rule",
    "manifests",
    "policy_named",
]
