"""The cosign command lines the rendered template makes from preflight's plan, keyed and keyless.

Keyed calls are proven end to end with the real cosign in ``tests/e2e/test_supply_chain.py``; keyless ones need
Fulcio and Rekor, so here the exact argument vectors are checked, and the real pinned cosign parses them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import bluegreen_spec as spec
from bluegreen_contract import COSIGN_PUBLIC_KEY_ENV, CosignCheck
from steps import verification_plan

REPO = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/example-org/user-service:1.4.2@sha256:" + "c" * 64


def cosign_template() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "manifests" / "workflows" / "blue-green-deploy.yaml").read_text())
    found: list[dict[str, Any]] = [t for t in document["spec"]["templates"] if t["name"] == "cosign"]
    return found[0]


#: The one expression shape the template uses: a field of call ``index`` in the plan.
FIELD = re.compile(
    r"\{\{=jsonpath\(inputs\.parameters\.plan, '\$\[' \+ inputs\.parameters\.index \+ '\]\.([a-z]+)'\)\}\}"
)


def argv(call: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """What the container runs for one planned call: the template's field expressions, evaluated for ``call``."""
    template = cosign_template()

    def fill(text: str) -> str:
        filled = FIELD.sub(lambda m: call[m.group(1)], text)
        assert "{{" not in filled, f"an expression this test does not know: {text}"
        return filled

    env = {variable["name"]: fill(variable["value"]) for variable in template["container"]["env"]}
    return [fill(arg) for arg in template["container"]["args"]], env


def keyless_call(check: CosignCheck, require_tlog: bool) -> dict[str, str]:
    identity = spec.KeylessIdentity.model_validate(
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "https://github.com/example-org/user-service/.github/workflows/deploy.yaml@refs/heads/main",
        }
    )
    signer = verification_plan.Signer(
        identity.describe(), identity=identity.subject_pattern(), issuer=identity.issuer_pattern()
    )
    (call,) = verification_plan.plan([signer], IMAGE, [check], require_tlog=require_tlog)
    return call


def test_a_keyless_signature_check_names_issuer_and_identity_anchored_and_no_key() -> None:
    args, env = argv(keyless_call(CosignCheck.signature, require_tlog=True))
    assert args == [
        "verify",
        "--check-claims=true",
        "--key=",
        "--certificate-identity-regexp="
        r"^https://github\.com/example\-org/user\-service/\.github/workflows/deploy\.yaml@refs/heads/main$",
        r"--certificate-oidc-issuer-regexp=^https://token\.actions\.githubusercontent\.com$",
        "--insecure-ignore-tlog=false",
        "--output-file=/tmp/verified.json",
        IMAGE,
    ]
    assert env[COSIGN_PUBLIC_KEY_ENV] == ""


def test_a_keyed_attestation_check_reads_the_key_from_the_environment() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    signer = verification_plan.Signer("key cosign-keys/cosign.pub", public_key=pem)
    (call,) = verification_plan.plan([signer], IMAGE, [CosignCheck.attestation], require_tlog=False)
    args, env = argv(call)
    assert args[:3] == ["verify-attestation", "--type=vuln", f"--key=env://{COSIGN_PUBLIC_KEY_ENV}"]
    assert "--insecure-ignore-tlog=true" in args
    assert env[COSIGN_PUBLIC_KEY_ENV] == pem


def test_the_real_cosign_accepts_every_rendered_keyless_command_line(pinned_tool: Callable[[str], Path]) -> None:
    cosign = pinned_tool("cosign")
    for check in CosignCheck:
        args, _ = argv(keyless_call(check, require_tlog=True))
        # An address that refuses at once: cosign gets past parsing its flags and fails on the registry or the
        # trust root, never on its command line.
        args[-1] = "127.0.0.1:9/example-org/user-service@sha256:" + "c" * 64
        ran = subprocess.run(
            [str(cosign), *args, "--timeout=20s"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": "/nonexistent-home", "TUF_ROOT": "/nonexistent-tuf", "PATH": "/usr/bin:/bin"},
        )
        assert ran.returncode != 0
        for complaint in ("unknown flag", "unknown shorthand", "required", "invalid argument", "accepts"):
            assert complaint not in ran.stderr, ran.stderr
