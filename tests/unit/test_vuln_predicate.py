"""The ``vuln`` predicate the supply-chain tests attest: the shape ``trivy --format cosign-vuln`` gives cosign."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from testenv import tools
from testenv.supply_chain import COSIGN_IMAGE, COSIGN_VERSION, vuln_predicate


def test_findings_become_a_trivy_report_inside_cosigns_predicate() -> None:
    # A scan finishing at 03:00 in UTC+2 is recorded in UTC, as Trivy records it.
    finished = datetime(2026, 11, 27, 3, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    predicate = vuln_predicate([("CVE-2026-0001", "CRITICAL"), ("CVE-2026-0002", "LOW")], finished, "shop/cart")
    assert set(predicate) == {"invocation", "scanner", "metadata"}
    assert predicate["metadata"] == {"scanStartedOn": "2026-11-27T00:59:56Z", "scanFinishedOn": "2026-11-27T01:00:00Z"}
    scanner = predicate["scanner"]
    assert scanner["uri"] == f"pkg:github/aquasecurity/trivy@{scanner['version']}"
    report = scanner["result"]
    assert (report["SchemaVersion"], report["ArtifactName"]) == (2, "shop/cart")
    [result] = report["Results"]
    assert [(v["VulnerabilityID"], v["Severity"]) for v in result["Vulnerabilities"]] == [
        ("CVE-2026-0001", "CRITICAL"),
        ("CVE-2026-0002", "LOW"),
    ]
    assert all({"PkgName", "InstalledVersion", "FixedVersion"} <= set(v) for v in result["Vulnerabilities"])


def test_a_clean_scan_lists_no_vulnerabilities_as_trivy_omits_them() -> None:
    [result] = vuln_predicate([], datetime(2026, 1, 1, tzinfo=UTC))["scanner"]["result"]["Results"]
    assert "Vulnerabilities" not in result


def test_unknown_severities_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="severity 'SEVERE' of CVE-1"):
        vuln_predicate([("CVE-1", "SEVERE")], datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="no time zone"):
        vuln_predicate([], datetime(2026, 1, 1))


def test_the_cosign_image_tag_is_the_pinned_module_version() -> None:
    go_mod = (tools.TOOLS_DIR / "cosign" / "go.mod").read_text()
    assert re.search(rf"^\s*{re.escape(tools.COSIGN_MODULE)} {re.escape(COSIGN_VERSION)}\b", go_mod, re.MULTILINE)
    assert COSIGN_IMAGE.endswith(f":{COSIGN_VERSION}")
