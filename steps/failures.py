"""Decoding ``{{workflow.failures}}`` into a one-line reason for the record.

Argo passes the failed nodes as JSON that it has quoted once more (``strconv.Quote``) so the quotes survive
parameter substitution, or the bare word ``null`` when nothing failed.
"""

from __future__ import annotations

import json
from typing import Any


def decode(text: str) -> list[dict[str, Any]]:
    """The failed nodes, whatever layer of quoting arrived; an unreadable value becomes one node with the text."""
    value: Any = text.strip()
    for _ in range(3):
        if not isinstance(value, str):
            break
        if value in {"", "null"}:
            return []
        try:
            value = json.loads(value)
        except ValueError:
            return [{"displayName": "workflow", "message": value}]
    if isinstance(value, dict):
        value = [value]
    return [node for node in value if isinstance(node, dict)] if isinstance(value, list) else []


def reason(text: str, fallback: str = "") -> str:
    """``probe: Error (exit code 1); smoke: ...`` from the failed nodes, or ``fallback``."""
    nodes = decode(text)
    parts = [
        f"{n.get('displayName') or n.get('templateName') or 'step'}: {n.get('message') or n.get('phase')}"
        for n in nodes
    ]
    return "; ".join(parts) or fallback


__all__ = ["decode", "reason"]
