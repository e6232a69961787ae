"""The plugin and the steps install without rendering's dependencies; those are the ``render`` extra.

Hera, the Grafana SDK and jsonschema are needed only by ``pipelines/`` (rendering and linting). A plain
``pip install argo-bluegreen`` gives ``kubectl bluegreen`` and ``bluegreen-step``; ``argo-bluegreen[render]`` adds
``bluegreen-render`` and ``bluegreen-lint``. The blocked-import tests run Python with those modules made
unimportable, as in an install without the extra.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
#: The distributions only rendering and linting use, and the modules they are imported as.
RENDER_ONLY = {"hera": "hera", "grafana-foundation-sdk": "grafana_foundation_sdk", "jsonschema": "jsonschema"}
FIRST_PARTY = {"bluegreen_spec", "bluegreen_contract", "bluegreen_version", "pipelines", "steps", "kubectl_bluegreen"}
INSTALL_HINT = "pip install 'argo-bluegreen[render]'"


def _name(requirement: str) -> str:
    """``hera[yaml]==7.1.0`` -> ``hera``, normalised as pip compares names."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0]).lower()


def base_dependencies() -> set[str]:
    return {_name(r) for r in PROJECT["dependencies"]}


def installed_with(names: set[str]) -> set[str]:
    """``names`` and everything pip installs with them (their requirements outside extras), as installed here.

    A requirement this Python's markers leave out (``async-timeout; python_version < "3.11"``) is not installed,
    so it is skipped.
    """
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        found.add(name)
        for requirement in requirements:
            if "extra ==" not in requirement.partition(";")[2]:
                pending.append(_name(requirement))
    return found


def third_party_imports(*roots: str, top_level_only: bool = False) -> dict[str, set[str]]:
    """Module name -> the files importing it, for every non-standard, non-project import under ``roots``."""
    found: dict[str, set[str]] = {}
    for root in roots:
        path = REPO / root
        for source in [path] if path.is_file() else sorted(path.rglob("*.py")):
            tree = ast.parse(source.read_text())
            nodes = tree.body if top_level_only else list(ast.walk(tree))
            for node in nodes:
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "__future__":
                        found.setdefault(top, set()).add(source.relative_to(REPO).as_posix())
    return found


def distributions_of(module: str) -> set[str]:
    return {_name(d) for d in importlib.metadata.packages_distributions().get(module, [])}


PLUGIN_AND_STEPS = ("steps", "kubectl_bluegreen", "bluegreen_spec.py", "bluegreen_contract.py", "bluegreen_version.py")


def test_rendering_dependencies_are_the_render_extra_not_the_base_install() -> None:
    assert not base_dependencies() & set(RENDER_ONLY)
    render = {_name(r) for r in PROJECT["optional-dependencies"]["render"]}
    assert render == set(RENDER_ONLY)
    # What the console scripts and `kubectl bluegreen lint` look for to say the extra is missing.
    from pipelines.console import RENDER_MODULES

    assert RENDER_MODULES == RENDER_ONLY
    # The development venv gets everything.
    assert "pip install --quiet -e '.[render,dev]'" in (REPO / "Makefile").read_text()


def test_the_base_install_holds_every_import_of_the_plugin_and_the_steps() -> None:
    missing = {
        module: sorted(files)
        for module, files in third_party_imports(*PLUGIN_AND_STEPS).items()
        if module not in FIRST_PARTY and not distributions_of(module) & installed_with(base_dependencies())
    }
    assert missing == {}, "imported by the plugin or the steps but not in [project] dependencies"


def test_the_render_extra_holds_every_other_import_of_pipelines() -> None:
    installable = installed_with(base_dependencies() | set(RENDER_ONLY))
    missing = {
        module: sorted(files)
        for module, files in third_party_imports("pipelines").items()
        if module not in FIRST_PARTY and not distributions_of(module) & installable
    }
    assert missing == {}


def test_the_plugin_and_the_steps_import_nothing_of_rendering_at_import_time() -> None:
    at_import = third_party_imports(*PLUGIN_AND_STEPS, top_level_only=True)
    assert not {m: f for m, f in at_import.items() if m in {"pipelines", *RENDER_ONLY.values()}}


def without(blocked: set[str], program: str) -> subprocess.CompletedProcess[str]:
    """Run ``program`` in a Python where the ``blocked`` top-level modules cannot be imported."""
    prelude = (
        "import importlib.abc, sys\n"
        f"BLOCKED = {sorted(blocked)!r}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + program], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_every_plugin_and_step_command_loads_without_rendering() -> None:
    ran = without(
        {"pipelines", *RENDER_ONLY.values()},
        "import importlib, contextlib, io\n"
        "import kubectl_bluegreen.cli as plugin, steps.cli as step\n"
        "plugin.build_parser()\n"
        "[importlib.import_module(m) for m in step.COMMANDS.values()]\n"
        "step.build_parser()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        plugin.main(['--help'])\n"
        "    except SystemExit as ended:\n"
        "        assert ended.code == 0, ended.code\n",
    )
    assert ran.returncode == 0, ran.stderr


def test_plugin_version_needs_no_rendering() -> None:
    ran = without(
        {"pipelines", *RENDER_ONLY.values()},
        "import sys, kubectl_bluegreen.cli as plugin\nsys.exit(plugin.main(['version', '--client']))\n",
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("Client Version: ")


def test_plugin_lint_without_the_render_extra_says_how_to_install_it() -> None:
    ran = without(
        set(RENDER_ONLY.values()),
        "import sys, kubectl_bluegreen.cli as plugin\nsys.exit(plugin.main(['lint', 'examples/user-service.yaml']))\n",
    )
    assert ran.returncode == 3, ran.stderr
    err = ran.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kubectl bluegreen lint: ") and INSTALL_HINT in err[0], err


@pytest.mark.parametrize("script", ["bluegreen-render", "bluegreen-lint"])
def test_render_and_lint_without_the_render_extra_say_how_to_install_it(script: str, tmp_path: Path) -> None:
    module, _, function = PROJECT["scripts"][script].partition(":")
    argv = [script, "--out", str(tmp_path)] if script == "bluegreen-render" else [script, str(tmp_path)]
    ran = without(
        set(RENDER_ONLY.values()),
        f"import sys\nsys.argv = {argv!r}\nfrom {module} import {function}\nsys.exit({function}())\n",
    )
    assert ran.returncode == 2, ran.stderr
    err = ran.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{script}: ") and INSTALL_HINT in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.package_index
def test_a_plain_install_runs_the_plugin_without_rendering(tmp_path: Path) -> None:
    """``pip install argo-bluegreen`` into a clean venv: the plugin answers, Hera and the Grafana SDK stay out."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    environment = {"PATH": str(venv / "bin"), "HOME": str(tmp_path)}
    version = subprocess.run(
        [str(venv / "bin" / "kubectl-bluegreen"), "--version"], capture_output=True, text=True, env=environment
    )
    assert version.returncode == 0 and version.stdout.startswith("kubectl bluegreen "), version.stderr
    absent = (
        f"import importlib.util as u; assert all(u.find_spec(m) is None for m in {sorted(RENDER_ONLY.values())!r})"
    )
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", absent], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    render = subprocess.run(
        [str(venv / "bin" / "bluegreen-render"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert render.returncode == 2 and INSTALL_HINT in render.stderr, render.stderr
