"""The supply-chain verdict (``steps.image_verdict``) and the cosign plan it reads (``steps.verification_plan``)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bluegreen_spec as spec
from bluegreen_contract import CosignCheck, CosignField, CosignOutput
from steps import image_verdict, verification_plan

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
IMAGE = "10.0.0.1:5000/team/app:v1@sha256:" + "ab" * 32
KEY_A = "key cosign-keys/cosign.pub"
KEY_B = "key rotated-keys/cosign.pub"


def policy(**vulnerabilities: Any) -> spec.ImagePolicy:
    return spec.ImagePolicy.model_validate(
        {
            "signature": {
                "keys": [{"configMap": "cosign-keys"}, {"configMap": "rotated-keys"}],
                "requireTransparencyLog": False,
            },
            **({"vulnerabilities": vulnerabilities} if vulnerabilities else {}),
        }
    )


def plan(checks: list[CosignCheck]) -> list[dict[str, str]]:
    signers = [
        verification_plan.Signer(KEY_A, public_key="-----BEGIN PUBLIC KEY-----\nA\n-----END PUBLIC KEY-----\n"),
        verification_plan.Signer(KEY_B, public_key="-----BEGIN PUBLIC KEY-----\nB\n-----END PUBLIC KEY-----\n"),
    ]
    return verification_plan.plan(signers, IMAGE, checks, require_tlog=False)


def envelope(findings: list[tuple[str, str]], finished: datetime | None) -> dict[str, Any]:
    """A DSSE envelope as `cosign verify-attestation --type vuln` prints it, holding a Trivy report."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": image_verdict.VULN_PREDICATE_TYPE,
        "subject": [{"name": "10.0.0.1:5000/team/app", "digest": {"sha256": "ab" * 32}}],
        "predicate": {
            "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {
                "uri": "pkg:github/aquasecurity/trivy@0.58.0",
                "version": "0.58.0",
                "db": {"uri": "", "version": ""},
                "result": {
                    "SchemaVersion": 2,
                    "Results": [
                        {
                            "Target": "app",
                            "Vulnerabilities": [
                                {"VulnerabilityID": cve, "Severity": severity} for cve, severity in findings
                            ],
                        }
                    ],
                },
            },
            "metadata": {
                "scanStartedOn": "",
                "scanFinishedOn": finished.isoformat().replace("+00:00", "Z") if finished else "",
            },
        },
    }
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return {"payloadType": "application/vnd.in-toto+json", "payload": payload, "signatures": [{"sig": "x"}]}


def outputs(*passed: tuple[int, str]) -> str:
    """Argo's aggregated outputs of the succeeded cosign iterations: each call's index and what cosign verified."""
    return json.dumps(
        [{CosignOutput.call_index: str(index), CosignOutput.verified: verified} for index, verified in passed]
    )


# Indexes into plan([signature, attestation]): signatures by KEY_A and KEY_B, then attestations by KEY_A and KEY_B.
SIGNED_BY_B, ATTESTED_BY_A, ATTESTED_BY_B = 1, 2, 3
# cosign verify writes a newline, then a JSON list.
SIGNED = (SIGNED_BY_B, "\n" + json.dumps([{"critical": {"image": {"docker-manifest-digest": "sha256:ab"}}}]))


def attested(
    findings: list[tuple[str, str]],
    finished: datetime | None = NOW - timedelta(hours=1),
    index: int = ATTESTED_BY_A,
) -> tuple[int, str]:
    # verify-attestation prints one envelope per line.
    return (index, json.dumps(envelope(findings, finished)) + "\n")


def test_the_plan_has_one_call_per_check_and_signer_with_every_cosign_input() -> None:
    calls = plan([CosignCheck.signature, CosignCheck.attestation])
    assert [(c[CosignField.check], c[CosignField.authority]) for c in calls] == [
        ("signature", KEY_A),
        ("signature", KEY_B),
        ("attestation", KEY_A),
        ("attestation", KEY_B),
    ]
    assert all(set(call) == {name.value for name in CosignField} for call in calls)
    assert {c[CosignField.command] for c in calls} == {"verify", "verify-attestation"}
    assert all(
        c[CosignField.key_ref] == "env://COSIGN_PUBLIC_KEY" and c[CosignField.ignore_tlog] == "true" for c in calls
    )


def test_keyless_signers_are_planned_with_anchored_patterns_and_no_key() -> None:
    identity = spec.KeylessIdentity.model_validate(
        {"issuer": "https://token.actions.githubusercontent.com", "subjectRegExp": "^https://github.com/acme/.*$"}
    )
    signer = verification_plan.Signer(
        identity.describe(), identity=identity.subject_pattern(), issuer=identity.issuer_pattern()
    )
    (call,) = verification_plan.plan([signer], IMAGE, [CosignCheck.signature], require_tlog=True)
    assert call[CosignField.key_ref] == ""
    assert call[CosignField.issuer] == r"^https://token\.actions\.githubusercontent\.com$"
    assert call[CosignField.identity] == "^https://github.com/acme/.*$"
    assert call[CosignField.ignore_tlog] == "false"


def test_any_one_trusted_signer_is_enough_and_is_named() -> None:
    verdict = image_verdict.decide(policy(), plan([CosignCheck.signature]), outputs(SIGNED), NOW)
    assert verdict.refusal is None
    assert verdict.signer == KEY_B


def test_no_passing_signature_refuses_naming_the_rule_and_every_trusted_signer() -> None:
    verdict = image_verdict.decide(policy(), plan([CosignCheck.signature]), "[]", NOW)
    assert verdict.refusal is not None
    assert verdict.refusal.rule == "spec.imagePolicy.signature"
    assert KEY_A in verdict.refusal.message and KEY_B in verdict.refusal.message


def test_a_passing_attestation_does_not_stand_in_for_a_signature() -> None:
    both = [CosignCheck.signature, CosignCheck.attestation]
    verdict = image_verdict.decide(policy(), plan(both), outputs(attested([])), NOW)
    assert verdict.refusal is not None and verdict.refusal.rule == "spec.imagePolicy.signature"


def test_a_critical_finding_refuses_unless_ignored_and_an_expired_ignore_refuses_again() -> None:
    checks = [CosignCheck.signature, CosignCheck.attestation]
    found = outputs(SIGNED, attested([("CVE-2026-0001", "CRITICAL"), ("CVE-2026-0002", "LOW")]))
    refused = image_verdict.decide(policy(maxSeverity="HIGH"), plan(checks), found, NOW)
    assert refused.refusal is not None and refused.refusal.rule == "spec.imagePolicy.vulnerabilities.maxSeverity"
    assert "CVE-2026-0001" in refused.refusal.message
    assert refused.vulnerabilities is not None and refused.vulnerabilities.highest_severity == "CRITICAL"

    ignore = {"id": "CVE-2026-0001", "reason": "not reachable", "expires": "2026-11-27"}
    accepted = image_verdict.decide(policy(maxSeverity="HIGH", ignore=[ignore]), plan(checks), found, NOW)
    assert accepted.refusal is None
    assert accepted.vulnerabilities is not None
    assert accepted.vulnerabilities.ignored == ["CVE-2026-0001"]
    assert accepted.vulnerabilities.highest_severity == "LOW"

    expired = {**ignore, "expires": "2026-11-26"}
    again = image_verdict.decide(policy(maxSeverity="HIGH", ignore=[expired]), plan(checks), found, NOW)
    assert again.refusal is not None
    assert "ignored until 2026-11-26" in again.refusal.message


def test_a_scan_older_than_max_age_refuses_and_the_newest_scan_counts() -> None:
    checks = [CosignCheck.signature, CosignCheck.attestation]
    old = attested([], NOW - timedelta(hours=30))
    stale = image_verdict.decide(policy(maxAge="24h"), plan(checks), outputs(SIGNED, old), NOW)
    assert stale.refusal is not None and stale.refusal.rule == "spec.imagePolicy.vulnerabilities.maxAge"
    fresh_bad = attested([("CVE-2026-0003", "CRITICAL")], NOW - timedelta(hours=1), ATTESTED_BY_B)
    newest = image_verdict.decide(policy(maxAge="48h"), plan(checks), outputs(SIGNED, old, fresh_bad), NOW)
    assert newest.refusal is not None and newest.refusal.rule.endswith("maxSeverity")


def test_missing_attestation_or_scan_time_refuses() -> None:
    checks = [CosignCheck.signature, CosignCheck.attestation]
    missing = image_verdict.decide(policy(maxSeverity="HIGH"), plan(checks), outputs(SIGNED), NOW)
    assert missing.refusal is not None and missing.refusal.rule == "spec.imagePolicy.vulnerabilities"
    untimed = image_verdict.decide(policy(maxSeverity="HIGH"), plan(checks), outputs(SIGNED, attested([], None)), NOW)
    assert untimed.refusal is not None and "scanFinishedOn" in untimed.refusal.message


def test_unreadable_or_unplanned_outputs_count_as_nothing_verified() -> None:
    calls = plan([CosignCheck.signature])
    assert image_verdict.passed_authorities(calls, "not json", CosignCheck.signature) == []
    assert image_verdict.passed_authorities(calls, '[{"index":"7"},{"index":"-1"}]', CosignCheck.signature) == []
    assert image_verdict.verified_documents(calls, '[{"index":"0","verified":"{oops"}]', CosignCheck.signature) == []


SEVERITIES = [severity.value for severity in spec.Severity]


@given(
    findings=st.lists(
        st.tuples(st.sampled_from(["CVE-1-1", "CVE-1-2", "CVE-1-3", "GHSA-a-b"]), st.sampled_from(SEVERITIES)),
        max_size=8,
    ),
    allowed=st.sampled_from(SEVERITIES),
    ignored=st.sets(st.sampled_from(["CVE-1-1", "CVE-1-2", "CVE-1-3", "GHSA-a-b"])),
    expired=st.booleans(),
)
def test_refused_exactly_when_a_counted_finding_is_above_the_allowed_severity(
    findings: list[tuple[str, str]], allowed: str, ignored: set[str], expired: bool
) -> None:
    expires = "2026-11-26" if expired else "2026-12-31"
    rules = spec.VulnerabilityPolicy.model_validate(
        {"maxSeverity": allowed, "ignore": [{"id": i, "reason": "r", "expires": expires} for i in ignored]}
    )
    scan = image_verdict.Scan("trivy", NOW - timedelta(minutes=5), tuple((i, spec.Severity(s)) for i, s in findings))
    verdict, refusal = image_verdict.judge_scan(scan, rules, NOW)
    counted = [(i, s) for i, s in findings if expired or i not in ignored]
    above = {i for i, s in counted if spec.Severity(s).rank > spec.Severity(allowed).rank}
    assert (refusal is not None) == bool(above)
    assert set(verdict.refused) == above
    assert verdict.findings == len(findings)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"signature": {}}, "list at least one public key or keyless identity"),
        ({"signature": {"keyless": [{"issuer": "x"}]}}, "exactly one of subject and subjectRegExp"),
        ({"signature": {"keyless": [{"issuer": "x", "issuerRegExp": "y", "subject": "s"}]}}, "exactly one of issuer"),
        ({"vulnerabilities": {}}, "vulnerabilities needs signature"),
        (
            {
                "signature": {"keys": [{"configMap": "k"}]},
                "vulnerabilities": {"ignore": [{"id": "CVE-1", "reason": "r", "expires": "2026-02-30"}]},
            },
            "is not a calendar date",
        ),
        ({"signature": {"keys": [{"configMap": "k"}]}, "vulnerabilities": {"maxSeverity": "SEVERE"}}, "maxSeverity"),
    ],
)
def test_bad_image_policies_are_refused_with_what_to_do(document: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        spec.ImagePolicy.model_validate(document)


def test_verify_image_writes_only_the_record_of_its_own_workflow() -> None:
    from steps.commands.verify_image import check_own_record
    from steps.errors import BadInput

    check_own_record("blue-green-deploy-x7k2p", "blue-green-deploy-x7k2p")
    check_own_record("blue-green-deploy-x7k2p", "")  # outside Argo there is no Pod label to go by
    with pytest.raises(BadInput, match="may record its verdict only in that run's record"):
        # A workflow started at verify-image, handed another run's record and a made-up pass.
        check_own_record("blue-green-deploy-x7k2p", "blue-green-deploy-forged")
