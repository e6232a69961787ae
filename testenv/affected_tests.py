"""``make changed``: the test files that exercise what a change touched, found from what each test file imports.

A test file covers a module when the module is in its import closure: the repository's own modules it imports,
directly or through helpers, followed to the end. A change to ``steps/slots.py`` therefore selects the unit tests of
slots, the integration tests that run the steps in-process, and every helper-driven test that reaches it, and leaves
out the rest. A changed test file selects itself; a change to a file no test imports (the Makefile, a doc) selects
nothing, and says so.

The end-to-end tests drive the steps inside Pods rather than by import, so a change reaches them only through what
they import themselves (``testenv``); the full suite, ``make test``, covers the rest before a change lands.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = "tests"
#: Modules that load a folder's modules by name (``importlib``), which no import statement shows.
LOADS_BY_NAME: dict[str, str] = {
    "steps/cli.py": "steps/commands",
    "kubectl_bluegreen/cli.py": "kubectl_bluegreen/commands",
}


def changed_files(base: str) -> set[str]:
    """Repository-relative paths changed since ``base``, uncommitted edits and untracked files included."""
    tracked = _git("diff", "--name-only", base, "--")
    untracked = _git("ls-files", "--others", "--exclude-standard")
    return {line for line in (*tracked, *untracked) if line}


def _git(*args: str) -> list[str]:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


@cache
def module_file(module: str) -> str | None:
    """The repository file that defines ``module``, or None for a module from outside the repository."""
    base = REPO / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(REPO).as_posix()
    return None


def _package_of(path: str) -> list[str]:
    parts = Path(path).with_suffix("").parts
    return list(parts[:-1])


@cache
def imported_files(path: str) -> frozenset[str]:
    """The repository files that ``path`` imports directly (a package's ``__init__`` included)."""
    tree = ast.parse((REPO / path).read_text(), filename=path)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path)[: len(_package_of(path)) - node.level + 1]
                prefix = ".".join([*package, node.module] if node.module else package)
            else:
                prefix = node.module or ""
            names.append(prefix)
            # `from package import module` names a module as often as it names an attribute.
            names.extend(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytest_plugins" for target in node.targets
        ):
            # A conftest's plugins are imports written as strings.
            names.extend(
                element.value
                for element in ast.walk(node.value)
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            )
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        # Importing a.b.c runs a/__init__ and a/b/__init__ too.
        for end in range(1, len(parts) + 1):
            file = module_file(".".join(parts[:end]))
            if file is not None:
                found.add(file)
    if path in LOADS_BY_NAME:
        found.update(p.relative_to(REPO).as_posix() for p in (REPO / LOADS_BY_NAME[path]).glob("*.py"))
    found.discard(path)
    return frozenset(found)


@cache
def import_closure(path: str) -> frozenset[str]:
    """Every repository file that importing ``path`` may run, ``path`` included."""
    seen = {path}
    pending = [path]
    while pending:
        for file in imported_files(pending.pop()):
            if file not in seen:
                seen.add(file)
                pending.append(file)
    return frozenset(seen)


def test_files() -> list[str]:
    """The suite's test modules, as pytest collects them."""
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / TEST_ROOT).rglob("test_*.py"))


def conftests_of(test: str) -> list[str]:
    """The ``conftest.py`` files pytest loads for ``test``: one per folder from the test root down."""
    folders = Path(test).parents
    return [(folder / "conftest.py").as_posix() for folder in folders if (REPO / folder / "conftest.py").is_file()]


def affected(changed: Iterable[str]) -> list[str]:
    """The test files whose import closure, with their conftests', holds a changed file."""
    changed = set(changed)
    selected = []
    for test in test_files():
        closure = set(import_closure(test))
        for conftest in conftests_of(test):
            closure |= import_closure(conftest)
        if closure & changed:
            selected.append(test)
    return selected


def main(argv: list[str] | None = None) -> int:
    """Print or run the affected tests; exit status as pytest's, or 0 when nothing is affected."""
    parser = argparse.ArgumentParser(prog="make changed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="what the change is measured against (default: HEAD)")
    parser.add_argument("--list", action="store_true", help="print the selected test files and stop")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after the selected files")
    args = parser.parse_args(argv)
    changed = changed_files(args.base)
    selected = affected(changed)
    if args.list:
        print("\n".join(selected))
        return 0
    if not selected:
        print(f"make changed: no test imports any of the {len(changed)} changed files since {args.base}")
        return 0
    print(f"make changed: {len(selected)} test files cover the {len(changed)} files changed since {args.base}")
    return subprocess.call([sys.executable, "-m", "pytest", *selected, *args.pytest_args], cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
