"""The README's shell blocks that the local cluster can run, found by the marker comment above each one.

A block marked ``<!-- local-cluster: NAME -->`` is a fenced ``sh`` block whose every line is a command a user pastes
into a shell pointed at the local cluster (``make cluster`` prints how). The end-to-end tests run those lines exactly
as written, so the README cannot drift from what works.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- local-cluster: (?P<name>[a-z-]+) -->\s*\n```sh\n(?P<body>.*?)\n```", re.DOTALL)


def readme_block(name: str, readme: Path = README) -> list[str]:
    """The commands of the block called ``name``, one per line, comments and blank lines left out."""
    for match in _BLOCK.finditer(readme.read_text()):
        if match.group("name") == name:
            lines = [line.strip() for line in match.group("body").splitlines()]
            return [line for line in lines if line and not line.startswith("#")]
    raise LookupError(f"README.md has no block marked <!-- local-cluster: {name} -->")
