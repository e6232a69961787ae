"""The console scripts ``bluegreen-render`` and ``bluegreen-lint``, which need the ``render`` extra.

pip installs every console script of the package, but a plain ``pip install argo-bluegreen`` (the kubectl plugin and
the steps) leaves out the render extra: Hera, the Grafana SDK and jsonschema, which only rendering and linting
import. These entry points look for them before importing the programs, so a missing extra is one line saying how to
install it instead of a ModuleNotFoundError traceback. This module itself imports none of them.
"""

from __future__ import annotations

import importlib.util
import sys

#: How a person adds what rendering and linting need to an install of the plugin.
INSTALL_RENDER_EXTRA = "pip install 'argo-bluegreen[render]'"
#: The render extra's distributions, as pyproject.toml names them, and the module each is imported as.
RENDER_MODULES: dict[str, str] = {
    "hera": "hera",
    "grafana-foundation-sdk": "grafana_foundation_sdk",
    "jsonschema": "jsonschema",
}
#: The exit code of bluegreen-render and bluegreen-lint when they cannot act (as for bad settings or files).
CANNOT_ACT = 2


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses the module says the same: it is not there
        return False


def missing_render_extra() -> str | None:
    """What to tell a person when the render extra is not installed here; None when it is."""
    missing = [distribution for distribution, module in RENDER_MODULES.items() if not _importable(module)]
    if not missing:
        return None
    return (
        f"needs argo-bluegreen's render extra, and {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not installed; install it with {INSTALL_RENDER_EXTRA}"
    )


def _require_render_extra(program: str) -> None:
    """Exit with one line when the extra is missing, before anything imports it."""
    problem = missing_render_extra()
    if problem is not None:
        print(f"{program}: {problem}", file=sys.stderr)
        sys.exit(CANNOT_ACT)


def render() -> None:
    """``bluegreen-render``."""
    _require_render_extra("bluegreen-render")
    from pipelines.render import main  # only now: it imports Hera

    sys.exit(main())


def lint() -> None:
    """``bluegreen-lint``."""
    _require_render_extra("bluegreen-lint")
    from pipelines.lint.cli import main  # only now: its checks import Hera's models and jsonschema

    sys.exit(main())


__all__ = ["INSTALL_RENDER_EXTRA", "RENDER_MODULES", "lint", "missing_render_extra", "render"]
