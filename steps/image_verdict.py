"""The supply-chain verdict: which signer's cosign check passed, and what the newest vulnerability scan allows.

cosign has already verified every signature and attestation it reported; this module only reads what it verified.
Argo hands ``verify-image`` the outputs of the cosign calls that passed (a failed call reports nothing), each naming
its signer. A signature check passes when any trusted signer verified. A vulnerability attestation is the in-toto
statement cosign's ``vuln`` predicate type carries, as Trivy plus ``cosign attest --type vuln`` make it; the newest
verified scan counts, and it must be young enough and find nothing above the allowed severity, apart from findings
the policy ignores until their expiry date.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import CosignCheck, CosignField, CosignOutput

#: The predicate type ``cosign attest --type vuln`` writes.
VULN_PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"


@dataclass(frozen=True)
class Refusal:
    """Why the image may not reach a slot: the rule that refused it and what to do, in one line."""

    rule: str
    message: str


@dataclass(frozen=True)
class Scan:
    """One verified vulnerability scan."""

    scanner: str
    finished_at: datetime | None
    findings: tuple[tuple[str, spec.Severity], ...]


@dataclass
class Verdict:
    """The outcome for one image; ``refusal`` is None when it may be deployed."""

    signer: str = ""
    vulnerabilities: spec.VulnerabilityVerdict | None = None
    refusal: Refusal | None = None


def _passed(plan: list[dict[str, str]], outputs: str, check: CosignCheck) -> list[tuple[dict[str, str], str]]:
    """The planned calls of ``check`` that passed, each with what cosign verified, in plan order."""
    verified: dict[int, str] = {}
    for item in _json_list(outputs):
        index = str(item.get(CosignOutput.call_index, ""))
        if index.isdigit() and int(index) < len(plan):
            verified[int(index)] = str(item.get(CosignOutput.verified, "") or "")
    return [
        (plan[index], verified[index])
        for index in sorted(verified)
        if plan[index].get(CosignField.check) == check.value
    ]


def passed_authorities(plan: list[dict[str, str]], outputs: str, check: CosignCheck) -> list[str]:
    """The signers whose ``check`` passed, from Argo's aggregated loop outputs (a JSON list of maps)."""
    return [call[CosignField.authority] for call, _ in _passed(plan, outputs, check)]


def verified_documents(plan: list[dict[str, str]], outputs: str, check: CosignCheck) -> list[dict[str, Any]]:
    """Every JSON document cosign wrote for the passing ``check`` calls (a list per call, or one per line)."""
    documents: list[dict[str, Any]] = []
    for _, text in _passed(plan, outputs, check):
        for chunk in _json_chunks(text):
            if isinstance(chunk, list):
                documents.extend(entry for entry in chunk if isinstance(entry, dict))
            elif isinstance(chunk, dict):
                documents.append(chunk)
    return documents


def _json_list(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _json_chunks(text: str) -> list[Any]:
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    chunks = []
    for line in text.splitlines():
        if line.strip():
            try:
                chunks.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return chunks


def keyless_signer(documents: list[dict[str, Any]]) -> str:
    """The certificate identity a keyless signature carried (cosign reports it as optional Subject and Issuer)."""
    for document in documents:
        optional = document.get("optional") or {}
        subject = optional.get("Subject") or ""
        if subject:
            return f"identity {subject} from {optional.get('Issuer') or 'unknown issuer'}"
    return ""


def _statement(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """The in-toto statement inside a DSSE envelope cosign verified, or None when it is not one."""
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        return None
    try:
        statement = json.loads(base64.b64decode(payload))
    except (binascii.Error, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return statement if isinstance(statement, dict) else None


def _timestamp(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _severity(text: object) -> spec.Severity:
    try:
        return spec.Severity(str(text).upper())
    except ValueError:
        return spec.Severity.unknown


def scans(envelopes: list[dict[str, Any]]) -> list[Scan]:
    """The vulnerability scans among verified attestations, newest first (a scan without a time sorts last)."""
    found = []
    for envelope in envelopes:
        statement = _statement(envelope)
        if statement is None or statement.get("predicateType") != VULN_PREDICATE_TYPE:
            continue
        predicate = statement.get("predicate") or {}
        scanner = predicate.get("scanner") or {}
        report = scanner.get("result") or {}
        findings = tuple(
            (str(vulnerability.get("VulnerabilityID") or ""), _severity(vulnerability.get("Severity")))
            for result in (report.get("Results") or [])
            for vulnerability in (result.get("Vulnerabilities") or [])
            if vulnerability.get("VulnerabilityID")
        )
        name = " ".join(part for part in (scanner.get("uri"), scanner.get("version")) if part)
        finished = _timestamp((predicate.get("metadata") or {}).get("scanFinishedOn"))
        found.append(Scan(scanner=str(name), finished_at=finished, findings=findings))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda scan: scan.finished_at or epoch, reverse=True)


def judge_scan(
    scan: Scan, policy: spec.VulnerabilityPolicy, now: datetime
) -> tuple[spec.VulnerabilityVerdict, Refusal | None]:
    """Apply the policy's age, severity and ignore list to one scan."""
    today = now.astimezone(UTC).date()
    ignored_until = {entry.id: date.fromisoformat(entry.expires) for entry in policy.ignore}
    ignored: list[str] = []
    expired: list[str] = []
    counted: list[tuple[str, spec.Severity]] = []
    for vulnerability, severity in scan.findings:
        until = ignored_until.get(vulnerability)
        if until is not None and today <= until:
            ignored.append(vulnerability)
            continue
        if until is not None:
            expired.append(f"{vulnerability} (ignored until {until.isoformat()})")
        counted.append((vulnerability, severity))
    highest = max((severity for _, severity in counted), key=lambda s: s.rank, default=None)
    above = sorted({vulnerability for vulnerability, severity in counted if severity.rank > policy.max_severity.rank})
    verdict = spec.VulnerabilityVerdict(
        scanner=scan.scanner,
        scanned_at=scan.finished_at.isoformat().replace("+00:00", "Z") if scan.finished_at else "",
        highest_severity=highest.value if highest else "",
        findings=len(scan.findings),
        ignored=sorted(set(ignored)),
        refused=above,
    )
    if scan.finished_at is None:
        return verdict, Refusal(
            "spec.imagePolicy.vulnerabilities",
            "the vulnerability attestation has no scanFinishedOn; attest a scan made with `trivy image --format "
            "cosign-vuln`",
        )
    age = (now - scan.finished_at).total_seconds()
    if age > policy.max_age_seconds():
        return verdict, Refusal(
            "spec.imagePolicy.vulnerabilities.maxAge",
            f"the newest vulnerability scan finished {verdict.scanned_at}, {int(age // 3600)}h ago, older than "
            f"maxAge {policy.max_age}; scan the image again in CI and attest the new result",
        )
    if above:
        listed = ", ".join(above[:10]) + (f" and {len(above) - 10} more" if len(above) > 10 else "")
        expired_note = f"; expired ignore entries: {', '.join(expired)}" if expired else ""
        return verdict, Refusal(
            "spec.imagePolicy.vulnerabilities.maxSeverity",
            f"the scan found {listed} above maxSeverity {policy.max_severity.value}{expired_note}; fix them and "
            "rebuild, or add each to spec.imagePolicy.vulnerabilities.ignore with a reason and an expiry date",
        )
    return verdict, None


def decide(policy: spec.ImagePolicy, plan: list[dict[str, str]], outputs: str, now: datetime) -> Verdict:
    """The verdict from the calls planned and the outputs of those that passed."""
    verdict = Verdict()
    planned = [
        call[CosignField.authority] for call in plan if call.get(CosignField.check) == CosignCheck.signature.value
    ]
    passed = set(passed_authorities(plan, outputs, CosignCheck.signature))
    signer = next((authority for authority in planned if authority in passed), None)
    if signer is None:
        trusted = "; ".join(planned) or "none"
        verdict.refusal = Refusal(
            "spec.imagePolicy.signature",
            f"no signature by a trusted signer verified (trusted: {trusted}); sign this digest in CI with "
            "`cosign sign`, and check the key or identity and that the tag was not moved after signing",
        )
        return verdict
    documents = verified_documents(plan, outputs, CosignCheck.signature)
    keyless = "" if signer.startswith("key ") else keyless_signer(documents)
    verdict.signer = keyless or signer
    if policy.vulnerabilities is None:
        return verdict
    verified_scans = scans(verified_documents(plan, outputs, CosignCheck.attestation))
    if not verified_scans:
        verdict.refusal = Refusal(
            "spec.imagePolicy.vulnerabilities",
            "no vulnerability attestation signed by a trusted signer verified; attest the scan in CI with "
            "`cosign attest --type vuln --predicate <trivy cosign-vuln output>`",
        )
        return verdict
    verdict.vulnerabilities, verdict.refusal = judge_scan(verified_scans[0], policy.vulnerabilities, now)
    return verdict


__all__ = [
    "VULN_PREDICATE_TYPE",
    "Refusal",
    "Scan",
    "Verdict",
    "decide",
    "judge_scan",
    "keyless_signer",
    "passed_authorities",
    "scans",
    "verified_documents",
]
