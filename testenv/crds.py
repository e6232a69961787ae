"""Install the third-party CRDs (Argo Workflows, Istio, Gateway API) and wait until they serve.

The product's manifests only mean something against the exact schemas and CEL rules of the
CRDs they target, so those are installed into the test API server from the pinned modules.
Server-side apply is required: Argo's full CRDs exceed the 256 KiB annotation limit that a
client-side ``kubectl apply`` would need. A CRD is usable only once it is Established, so that
condition is awaited with a watch.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from testenv.apply import Discovery, apply_manifest_objects
from testenv.rest import WatchStream, request

CRD_FIELD_MANAGER = "argo-bluegreen-testenv"


def _load_documents(path: Path) -> list[Any]:
    """The YAML documents of ``path``, via a JSON copy kept beside it.

    Parsing the ~3 MB of CRD YAML takes seconds even with libyaml, against tens of milliseconds
    for JSON, and it would be paid by every test session. The copy is written atomically and
    only ever derived from the file next to it, so a stale or partial copy cannot be read.
    """
    cached = path.with_name(f".{path.name}.json")
    try:
        if cached.stat().st_mtime_ns >= path.stat().st_mtime_ns:
            docs: list[Any] = json.loads(cached.read_text())
            return docs
    except (OSError, ValueError):
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = list(yaml.load_all(path.read_text(), Loader=loader))
    try:
        fd, tmp = tempfile.mkstemp(prefix=cached.name, dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(docs, out)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache just means parsing the YAML every time
    return docs


def load_crds(dirs: Iterable[Path]) -> list[dict[str, Any]]:
    """All CustomResourceDefinition documents in the YAML files of ``dirs`` (other kinds skipped)."""
    crds: list[dict[str, Any]] = []
    for directory in dirs:
        for path in sorted(directory.glob("*.yaml")):
            for doc in _load_documents(path):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
    return crds


def _established(crd: Mapping[str, Any]) -> bool:
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def wait_established(api: client.ApiClient, names: Iterable[str], timeout: float = 60.0) -> None:
    """Block until every named CRD reports Established=True, or raise TimeoutError."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    while pending:
        listing = request(api, "GET", path)
        pending -= {c["metadata"]["name"] for c in listing.get("items", []) if _established(c)}
        if not pending:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)}")
        stream = WatchStream(
            api,
            path,
            {"resourceVersion": listing["metadata"]["resourceVersion"], "timeoutSeconds": max(1, int(remaining))},
            read_timeout=remaining + 5,
        )
        try:
            for event in stream.events():
                obj = event.get("object") or {}
                if event.get("type") in ("ADDED", "MODIFIED") and _established(obj):
                    pending.discard(obj["metadata"]["name"])
                if not pending or event.get("type") == "ERROR":
                    break
        finally:
            stream.close()


def install_crds(api: client.ApiClient, crds: list[dict[str, Any]], timeout: float = 60.0, workers: int = 4) -> None:
    """Server-side apply ``crds`` (a few at a time) and wait for all to be Established."""
    discovery = Discovery(api)

    def apply_one(crd: dict[str, Any]) -> None:
        apply_manifest_objects(api, [crd], field_manager=CRD_FIELD_MANAGER, discovery=discovery)

    # The server spends most of each request on schema conversion, so a little parallelism helps
    # even on two cores; list() re-raises the first failure.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(apply_one, crds))
    wait_established(api, [c["metadata"]["name"] for c in crds], timeout=timeout)
