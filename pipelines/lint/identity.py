"""Which object each document is: a kind this project or Argo knows, spelled right, and named once.

A typo in ``kind`` (``BlueGreenDeploy``) would otherwise make every other check skip the document, and two documents
of one file with one kind and name would leave ``kubectl apply`` keeping only the last.
"""

from __future__ import annotations

import difflib

import bluegreen_spec as spec
from pipelines.lint.documents import ARGO_KINDS, Document
from pipelines.lint.findings import Finding

#: Kinds per API group whose documents this lint checks in depth.
KNOWN_KINDS: dict[str, frozenset[str]] = {
    spec.API_GROUP: frozenset({spec.KIND, spec.RECORD_KIND}),
    "argoproj.io": frozenset(ARGO_KINDS),
}
_ALL_KNOWN = sorted(set().union(*KNOWN_KINDS.values()))


def _group(document: Document) -> str:
    api_version = str(document.body.get("apiVersion") or "")
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _where(document: Document) -> str:
    return f"{document.file}:{document.line}"


def kind_findings(document: Document) -> list[Finding]:
    """A missing kind, a kind its API group does not have, or one a letter or two away from a known kind."""
    kind = document.kind
    if not kind:
        return [Finding(_where(document), document.label, "kind", "missing: every object needs apiVersion and kind")]
    known = KNOWN_KINDS.get(_group(document))
    if known is not None and kind not in known:
        near = difflib.get_close_matches(kind, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else f"; it has {', '.join(sorted(known))}"
        group = _group(document)
        return [Finding(_where(document), document.label, "kind", f"{kind!r} is not a kind of {group}{hint}")]
    if known is None:
        near = difflib.get_close_matches(kind, _ALL_KNOWN, n=1, cutoff=0.8)
        if near:
            return [Finding(_where(document), document.label, "kind", f"{kind!r} is unknown; did you mean {near[0]}?")]
    return []


def duplicate_findings(documents: list[Document]) -> list[Finding]:
    """The second and later documents of one file with the same API group, kind, namespace and name as an earlier one.

    Per file: separate files may be alternatives (an example's variants), while one file is applied as a whole.
    """
    first: dict[tuple[str, str, str, str, str], Document] = {}
    findings = []
    for document in documents:
        metadata = document.body.get("metadata") or {}
        name = metadata.get("name")
        if not name or not document.kind:
            continue
        key = (document.file, _group(document), document.kind, str(metadata.get("namespace") or ""), str(name))
        if key in first:
            findings.append(
                Finding(
                    _where(document),
                    document.label,
                    "metadata.name",
                    f"{name!r} is defined twice; the first is at {_where(first[key])}, and applying both keeps only "
                    "the last: rename or remove one",
                )
            )
        else:
            first[key] = document
    return findings


__all__ = ["KNOWN_KINDS", "duplicate_findings", "kind_findings"]
