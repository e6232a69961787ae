"""Print where Kubernetes' OpenAPI v3 schema is, for the release testenv/go.mod pins: ``make manifests`` lints with it.

It is the release the local cluster's API server is built from, so the lint refuses what that server would. The
schema is read in place from Go's module cache, like Argo's (``build.py --argo-schema``), never committed. It lives
apart from ``build.py`` because that file is part of every cached component's key: a change there would rebuild the
whole local cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so `testenv.build` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testenv import paths
from testenv.build import KUBERNETES_MODULE, BuildError, Commands, _download, check_go


def kubernetes_schema() -> Path:
    """``api/openapi-spec/v3`` (one file per group and version) of the pinned k8s.io/kubernetes module."""
    check_go()
    [info] = _download(Commands(), paths.TESTENV_DIR, [KUBERNETES_MODULE])
    schema = Path(str(info["Dir"])) / "api" / "openapi-spec" / "v3"
    if not (schema / "api__v1_openapi.json").is_file():
        raise BuildError(f"{KUBERNETES_MODULE}@{info['Version']} has no api/openapi-spec/v3/api__v1_openapi.json")
    return schema


def main() -> int:
    """Entry point of `python3 testenv/kubernetes_schema.py`: the schema's directory on stdout."""
    try:
        print(kubernetes_schema())
    except BuildError as exc:
        print(f"testenv: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
