"""Image references: syntax, and the spec's image policy (allowed registries, digest pinning).

Reference grammar as container runtimes read it: ``[registry[:port]/]path[:tag][@sha256:<64 hex>]``, where the first
path component is a registry only if it contains a dot or a colon, or is ``localhost``; otherwise the image is on
Docker Hub (``docker.io``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bluegreen_spec as spec
from steps.errors import BadInput

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?)/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference."""

    text: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None


def parse(text: str) -> ImageReference:
    """Parse ``text``; a malformed reference is bad input with the expected form."""
    match = _REFERENCE.fullmatch(text)
    if not text or match is None or len(text) > 512:
        raise BadInput(
            f"image {text!r} is not a valid image reference; use registry/name:tag or registry/name@sha256:<64 hex>"
        )
    registry = match.group("registry")
    name = match.group("name")
    if registry and ("." in registry or ":" in registry or registry == "localhost"):
        repository = name[len(registry) + 1 :]
    else:
        registry, repository = "docker.io", name
    return ImageReference(text, registry, repository, match.group("tag"), match.group("digest"))


#: Kubernetes label values: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE_MAX = 63
_LABEL_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def version_label(image: str) -> str:
    """The ``app.kubernetes.io/version`` value for pods running ``image``: its tag, else its digest, else ``latest``.

    A tag is what people call a version, so it wins; a digest-only reference gives ``sha256-`` and the digest's first
    hex digits. Both are cut to a label value's 63 characters and trimmed to start and end alphanumeric.
    """
    reference = parse(image)
    if reference.tag:
        value = _LABEL_EDGE.sub("", reference.tag[:_LABEL_VALUE_MAX])
        if value:
            return value
    if reference.digest:
        return reference.digest.replace(":", "-")[:_LABEL_VALUE_MAX]
    return "latest"


def check_policy(reference: ImageReference, policy: spec.ImagePolicy, service: str) -> None:
    """Refuse images the spec's policy does not allow, naming the rule and how to comply."""
    if policy.allowed_registries:
        location = f"{reference.registry}/{reference.repository}"
        if not any(
            location == allowed or location.startswith(allowed.rstrip("/") + "/")
            for allowed in policy.allowed_registries
        ):
            raise BadInput(
                f"image {reference.text!r} comes from {reference.registry}, which BlueGreenDeployment {service} "
                f"does not allow (spec.imagePolicy.allowedRegistries: {policy.allowed_registries}); "
                "push the image to an allowed registry"
            )
    if policy.require_digest and reference.digest is None:
        raise BadInput(
            f"image {reference.text!r} is not pinned by digest, but BlueGreenDeployment {service} has "
            "spec.imagePolicy.requireDigest; deploy registry/name@sha256:<digest>"
        )


__all__ = ["ImageReference", "check_policy", "parse"]
