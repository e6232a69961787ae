"""Cache entries for what is slow to build: a key from the inputs' content, a root per kind, an all-at-once publish.

An entry is a directory named by the key. It is built in a temporary directory beside it, gets its READY marker last,
and is published with one rename, so a reader that checks the marker never sees half an entry, and of two builds that
race, the second rename fails harmlessly on an equivalent entry. Stdlib only: the build scripts import it before any
third-party package is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

READY_MARKER = "READY"


def content_key(inputs: Iterable[Path]) -> str:
    """Short hash of each input's content, named by its folder and file, so a renamed input changes the key too."""
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(f"{path.parent.name}/{path.name}".encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cache_root(env_var: str, kind: str) -> Path:
    """``$env_var`` when set, else ``${XDG_CACHE_HOME:-~/.cache}/argo-bluegreen/<kind>``."""
    explicit = os.environ.get(env_var)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "argo-bluegreen" / kind


def is_ready(entry: Path) -> bool:
    """Whether ``entry`` was published whole."""
    return (entry / READY_MARKER).is_file()


def publish(entry: Path, key: str, fill: Callable[[Path], None]) -> Path:
    """Build ``entry`` with ``fill`` in a temporary directory beside it, then publish it at once; return ``entry``.

    When ``fill`` raises, nothing is published and the temporary directory is removed.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        fill(tmp)
        (tmp / READY_MARKER).write_text(key + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        try:
            tmp.rename(entry)
        except OSError:
            # A concurrent build published first; its entry is equivalent.
            if not is_ready(entry):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry
