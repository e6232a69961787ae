"""Tag to digest against a real local HTTP server speaking the registry's manifest API (``steps.registry``)."""

from __future__ import annotations

import pytest

from steps import images, registry
from steps.errors import BadInput, CheckFailed, Transient
from tests.steps.http_servers import LOOPBACK, AppServer, Reply

DIGEST = "sha256:" + "ab" * 32


def reference(server: AppServer, tail: str) -> images.ImageReference:
    return images.parse(f"{LOOPBACK}:{server.port}/team/app{tail}")


def test_a_tag_resolves_to_the_digest_the_registry_names_and_the_pin_keeps_the_tag() -> None:
    with AppServer() as server:
        server.route("/v2/team/app/manifests/v1", Reply(200, headers={"Docker-Content-Digest": DIGEST}))
        ref = reference(server, ":v1")
        digest = registry.resolve_digest(ref)
        (request,) = server.received("/v2/team/app/manifests/v1")
    assert digest == DIGEST
    assert registry.pinned(ref, digest) == f"{ref.text}@{DIGEST}"
    assert request.method == "HEAD"
    assert "application/vnd.oci.image.index.v1+json" in request.headers["Accept"]


def test_a_digest_reference_is_never_looked_up() -> None:
    ref = images.parse(f"{LOOPBACK}:1/team/app@{DIGEST}")
    assert registry.resolve_digest(ref) == DIGEST
    assert registry.pinned(ref, DIGEST) == ref.text


def test_the_anonymous_token_handshake_is_followed() -> None:
    with AppServer() as server:
        challenge = (
            f'Bearer realm="http://{LOOPBACK}:{server.port}/token",service="reg",scope="repository:team/app:pull"'
        )
        server.route(
            "/v2/team/app/manifests/latest",
            Reply(401, headers={"WWW-Authenticate": challenge}),
            Reply(200, headers={"Docker-Content-Digest": DIGEST}),
        )
        server.route("/token", Reply.json({"token": "t0ken"}))
        assert registry.resolve_digest(reference(server, "")) == DIGEST
        token_request = server.received("/token")[0]
        second = server.received("/v2/team/app/manifests/latest")[1]
    assert "scope=repository%3Ateam%2Fapp%3Apull" in token_request.target
    assert second.headers["Authorization"] == "Bearer t0ken"


def test_without_the_header_the_digest_is_the_hash_of_the_manifest() -> None:
    body = b'{"schemaVersion":2}'
    import hashlib

    with AppServer() as server:
        server.route("/v2/team/app/manifests/v2", Reply(200, body=body))
        assert registry.resolve_digest(reference(server, ":v2")) == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, BadInput, "has no tag 'v9'"),
        (401, CheckFailed, "pinned by digest"),
        (503, Transient, "answered 503"),
    ],
)
def test_registry_refusals_name_the_image_and_what_to_do(status: int, error: type[Exception], words: str) -> None:
    with AppServer() as server:
        server.route("/v2/team/app/manifests/v9", status)
        with pytest.raises(error) as caught:
            registry.resolve_digest(reference(server, ":v9"))
    assert words in str(caught.value)
    assert "team/app" in str(caught.value)


def test_an_unreachable_registry_is_transient() -> None:
    with AppServer() as server:
        port = server.port
    with pytest.raises(Transient, match="did not answer"):
        registry.resolve_digest(images.parse(f"{LOOPBACK}:{port}/team/app:v1"), timeout=2)


@pytest.mark.parametrize(
    ("host", "plain"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("10.244.0.7:5000", True),
        ("172.20.1.1", True),
        ("192.168.1.2:443", True),
        ("registry.local", True),
        ("ghcr.io", False),
        ("172.32.0.1:5000", False),
        ("8.8.8.8", False),
        ("registry.example.com:5000", False),
    ],
)
def test_plain_http_only_where_go_containerregistry_uses_it(host: str, plain: bool) -> None:
    assert registry.uses_plain_http(host) is plain


def test_docker_hub_names_map_to_its_api_host_and_library() -> None:
    assert (
        registry.manifest_url(images.parse("nginx:1.27"))
        == "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"
    )
    assert (
        registry.manifest_url(images.parse("acme/app")) == "https://registry-1.docker.io/v2/acme/app/manifests/latest"
    )
