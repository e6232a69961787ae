"""BlueGreenDeployment files: the same model the steps load, so a file that lints clean is one the steps accept."""

from __future__ import annotations

import bluegreen_spec as spec
from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding


def check(document: Document) -> list[Finding]:
    """One finding per invalid field of a BlueGreenDeployment document."""
    if document.kind != spec.KIND:
        return []
    try:
        spec.load_resource(document.body)
    except spec.SpecError as error:
        findings = []
        for problem in error.problems:
            field, _, message = problem.partition(": ")
            findings.append(Finding(document.file, document.label, field, message))
        return findings
    return []


__all__ = ["check"]
