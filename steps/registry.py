"""Tag to digest: what a registry says a tag points to now, through the OCI distribution API.

A run that verifies its image resolves a tag once, in preflight; cosign, the slot and the record then all name that
digest, so a tag moved mid-run cannot swap the image between the check and the deploy. The lookup is a ``HEAD`` of
the manifest, with the anonymous bearer-token handshake public registries ask for. Registries that need credentials
are not read: pin the image by digest and no lookup happens.

The scheme follows go-containerregistry, which cosign uses, so both reach a registry the same way: plain HTTP for
``localhost``, loopback, ``*.local`` and private (RFC 1918) addresses, HTTPS for everything else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

import httpx

from steps.errors import BadInput, CheckFailed, Transient
from steps.images import ImageReference

#: What we accept for a manifest: image indexes and single manifests, OCI and Docker's older types.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DIGEST_HEADER = "Docker-Content-Digest"
TIMEOUT_SECONDS = 10.0
#: Docker Hub's API lives on another host than its name, and its one-word images live under ``library/``.
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_CHALLENGE_FIELD = re.compile(r'(\w+)="([^"]*)"')


def uses_plain_http(registry: str) -> bool:
    """Whether ``registry`` is reached over plain HTTP, as go-containerregistry decides it."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost" or host.endswith((".local", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or any(
        address in ipaddress.ip_network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    )


def manifest_url(reference: ImageReference) -> str:
    """The manifest URL of the reference's tag (``latest`` when it has none)."""
    host = DOCKER_HUB_API if reference.registry == DOCKER_HUB else reference.registry
    repository = reference.repository
    if reference.registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    scheme = "http" if uses_plain_http(reference.registry) else "https"
    return f"{scheme}://{host}/v2/{repository}/manifests/{reference.tag or 'latest'}"


def _anonymous_token(client: httpx.Client, challenge: str) -> str | None:
    """A pull token for a ``Bearer`` challenge, asked for without credentials; None for any other challenge."""
    if not challenge.lower().startswith("bearer "):
        return None
    fields = dict(_CHALLENGE_FIELD.findall(challenge))
    realm = fields.pop("realm", "")
    if not realm:
        return None
    answer = client.get(realm, params=fields)
    if answer.status_code != 200:
        return None
    body = answer.json()
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None


def resolve_digest(reference: ImageReference, *, timeout: float = TIMEOUT_SECONDS) -> str:
    """The ``sha256:`` digest the reference names: its own digest, or the one its tag points to now.

    Raises :class:`BadInput` when the tag does not exist, :class:`CheckFailed` when the registry will not say without
    credentials, and :class:`Transient` when it cannot be reached.
    """
    if reference.digest:
        return reference.digest
    url = manifest_url(reference)
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            answer = client.head(url, headers=headers)
            if answer.status_code == 401:
                token = _anonymous_token(client, answer.headers.get("WWW-Authenticate", ""))
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                    answer = client.head(url, headers=headers)
            digest = answer.headers.get(DIGEST_HEADER, "")
            if answer.status_code == 200 and not digest:
                # A registry may leave the header out; the digest is then the hash of the manifest's bytes.
                body = client.get(url, headers=headers)
                body.raise_for_status()
                digest = "sha256:" + hashlib.sha256(body.content).hexdigest()
    except httpx.HTTPError as error:
        raise Transient(
            f"registry {reference.registry} did not answer for image {reference.text!r}: {error}"
        ) from None
    if answer.status_code == 404:
        raise BadInput(
            f"image {reference.text!r}: registry {reference.registry} has no tag {reference.tag or 'latest'!r} in "
            f"{reference.repository}; push it, or fix the image parameter"
        )
    if answer.status_code in (401, 403):
        raise CheckFailed(
            f"image {reference.text!r}: registry {reference.registry} will not name the tag's digest without "
            "credentials; deploy the image pinned by digest (registry/name@sha256:<digest>)"
        )
    if answer.status_code >= 500 or answer.status_code == 429:
        raise Transient(f"registry {reference.registry} answered {answer.status_code} for image {reference.text!r}")
    if answer.status_code != 200 or not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
        raise CheckFailed(
            f"image {reference.text!r}: registry {reference.registry} answered {answer.status_code} without a "
            "sha256 digest; deploy the image pinned by digest (registry/name@sha256:<digest>)"
        )
    return str(digest)


def pinned(reference: ImageReference, digest: str) -> str:
    """The reference with ``digest`` appended: the tag stays for people, the digest decides what runs."""
    if reference.digest:
        return reference.text
    return f"{reference.text}@{digest}"


__all__ = ["manifest_url", "pinned", "resolve_digest", "uses_plain_http"]
