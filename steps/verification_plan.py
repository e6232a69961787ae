"""What cosign is asked to check: one call per signer the image policy trusts, planned by preflight.

Preflight reads the policy and the public keys' ConfigMaps before any write, so a missing or malformed key is a clear
error naming the ConfigMap, not a cosign container failing later. The plan is a JSON list that the deploy template
loops over, one cosign container per signer; the keys travel in the plan because a public key is not a secret and
the cosign container then needs no Kubernetes API access at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import bluegreen_spec as spec
from bluegreen_contract import CONFIG_MAPS, COSIGN_PUBLIC_KEY_ENV, CosignCheck, CosignField
from steps.errors import BadInput
from steps.kube import Kube

PEM_PUBLIC_KEY_HEADER = "-----BEGIN PUBLIC KEY-----"


@dataclass(frozen=True)
class Signer:
    """One key or keyless identity the policy trusts, as cosign is given it."""

    authority: str
    public_key: str = ""
    identity: str = ""
    issuer: str = ""

    @property
    def keyed(self) -> bool:
        """A key pair signer (else a keyless, certificate-based one)."""
        return bool(self.public_key)


def _public_key(kube: Kube, namespace: str, service: str, index: int, ref: spec.PublicKeyRef) -> str:
    field = f"spec.imagePolicy.signature.keys[{index}]"
    where = f"BlueGreenDeployment {namespace}/{service}"
    found = kube.get(CONFIG_MAPS, namespace, ref.config_map)
    if found is None:
        raise BadInput(
            f"{where}: {field} names ConfigMap {namespace}/{ref.config_map}, which does not exist; publish the key "
            f"with `kubectl create configmap {ref.config_map} -n {namespace} --from-file={ref.key}=cosign.pub`"
        )
    value = str((found.get("data") or {}).get(ref.key) or "")
    if not value:
        raise BadInput(
            f"{where}: {field}: ConfigMap {namespace}/{ref.config_map} has no data key {ref.key!r}; add the PEM "
            f"public key under that key, or set {field}.key to the key that holds it"
        )
    if PEM_PUBLIC_KEY_HEADER not in value:
        raise BadInput(
            f"{where}: {field}: ConfigMap {namespace}/{ref.config_map} key {ref.key!r} is not a PEM public key; "
            "store the cosign.pub that `cosign generate-key-pair` wrote"
        )
    return value


def signers(kube: Kube, namespace: str, service: str, policy: spec.SignaturePolicy) -> list[Signer]:
    """The policy's signers in spec order, keys read from their ConfigMaps; raises :class:`BadInput` on a bad key."""
    keyed = [
        Signer(ref.describe(), public_key=_public_key(kube, namespace, service, index, ref))
        for index, ref in enumerate(policy.keys)
    ]
    keyless = [
        Signer(identity.describe(), identity=identity.subject_pattern(), issuer=identity.issuer_pattern())
        for identity in policy.keyless
    ]
    return [*keyed, *keyless]


def plan(signers: list[Signer], image: str, checks: list[CosignCheck], *, require_tlog: bool) -> list[dict[str, str]]:
    """One cosign call per check and signer, each a map of :class:`CosignField` names to argument values."""
    return [
        {
            CosignField.check: check.value,
            CosignField.command: check.command,
            CosignField.flag: check.flag,
            CosignField.authority: signer.authority,
            # cosign reads a key from the environment with env://; an empty --key selects keyless verification.
            CosignField.key_ref: f"env://{COSIGN_PUBLIC_KEY_ENV}" if signer.keyed else "",
            CosignField.public_key: signer.public_key,
            CosignField.identity: signer.identity,
            CosignField.issuer: signer.issuer,
            CosignField.ignore_tlog: "false" if require_tlog else "true",
            CosignField.image: image,
        }
        for check in checks
        for signer in signers
    ]


def for_policy(kube: Kube, namespace: str, service: str, policy: spec.ImagePolicy, image: str) -> list[dict[str, str]]:
    """The calls ``policy`` asks for on ``image``: signatures, and vulnerability attestations when it asks."""
    if policy.signature is None:
        return []
    checks = [CosignCheck.signature, *([CosignCheck.attestation] if policy.vulnerabilities is not None else [])]
    trusted = signers(kube, namespace, service, policy.signature)
    return plan(trusted, image, checks, require_tlog=policy.signature.require_transparency_log)


def encode(calls: list[dict[str, str]]) -> str:
    """The plan as the JSON list each cosign container reads its call from."""
    return json.dumps(calls, separators=(",", ":"))


def encode_indexes(calls: list[dict[str, str]]) -> str:
    """The calls' indexes as the JSON list of strings Argo's ``withParam`` loops over."""
    return json.dumps([str(index) for index in range(len(calls))])


__all__ = ["PEM_PUBLIC_KEY_HEADER", "Signer", "encode", "encode_indexes", "for_policy", "plan", "signers"]
