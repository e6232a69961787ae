"""``make mutants``: plant each fault of :mod:`testenv.mutant_catalogue` in a copy of the tree and show who catches it.

A faster suite must not be a weaker one. For every planted fault, one at a time, this copies the working tree (or a
committed revision) aside, applies the fault's patch there, and runs first the tests the fault names, then the fast
tier (``make unit``'s selection) if they did not fail. A fault is caught when a test fails; the first failing test is
printed beside it. A fault whose patch no longer applies (its text is gone or appears twice) is reported as such and
counts as not caught, so the catalogue cannot rot silently. The working tree itself is never modified.

A fault in what ``bluegreen-render`` reads is rendered into the copy's ``manifests/`` before its tests run, as a
developer would commit it: the golden comparison then agrees with the code, and the behaviour tests must catch it.

Before any fault is planted, every test the catalogue names runs once on the unfaulted copy and must pass: a named
test that fails anyway would otherwise count as a catch. Faults whose tests need the cluster run them on a local
cluster started by pytest inside the copy, so the node agent runs the faulty steps in its Pods too. ``CI`` is
unset for these runs, so a cluster that cannot start skips its tests, and the fault counts as not caught.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testenv.mutant_catalogue import MUTANTS, Mutant

REPO = Path(__file__).resolve().parent.parent
#: Taken from the working tree into an older revision's copy: what lets a copy's Pods run on this checkout's venv.
HARNESS_FILES = ("testenv/node/images.py",)
FAST_TIER = "not controlplane and not cluster and not package_index"
#: A caught fault's verdict names the first test pytest reports as failed or in error.
_FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.MULTILINE)


@dataclass(frozen=True)
class Verdict:
    """What one planted fault came to."""

    mutant: Mutant
    caught_by: str | None
    stage: str
    seconds: float

    @property
    def caught(self) -> bool:
        """Whether some test failed with the fault in place."""
        return self.caught_by is not None


@contextmanager
def tree_copy(revision: str | None) -> Iterator[Path]:
    """A throw-away copy of the working tree as it is (``revision`` None) or of a committed revision."""
    root = Path(tempfile.mkdtemp(prefix="bluegreen-mutants-"))
    try:
        if revision is None:
            listed = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=REPO,
                capture_output=True,
                check=True,
            ).stdout
            for name in filter(None, listed.decode().split("\0")):
                source = REPO / name
                if source.is_file():  # a file deleted in the working tree is still listed as cached
                    target = root / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target)
        else:
            archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
            # Older image tables bind only their own checkout into a Pod, where the linked venv below is missing.
            for harness in HARNESS_FILES:
                shutil.copy2(REPO / harness, root / harness)
        # The copy runs on this checkout's virtualenv; PYTHONPATH puts the copy's own modules ahead of its install.
        (root / ".venv").symlink_to(REPO / ".venv")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def plant(root: Path, mutant: Mutant) -> str:
    """Apply ``mutant`` inside ``root``; returns the file's original text, for :func:`unplant`."""
    path = root / mutant.path
    original = path.read_text()
    found = original.count(mutant.old)
    if found != 1:
        raise ValueError(f"{mutant.path}: the fault's text occurs {found} times, not once; update the catalogue")
    path.write_text(original.replace(mutant.old, mutant.new))
    return original


def unplant(root: Path, mutant: Mutant, original: str) -> None:
    """Put the file back as it was, and the rendered files with it."""
    (root / mutant.path).write_text(original)
    if mutant.changes_manifests:
        render(root)


def render(root: Path) -> None:
    """Render the copy's ``manifests/`` and its documented RBAC table from its code, as ``make manifests`` does."""
    subprocess.run(
        [sys.executable, "-m", "pipelines.render", "--out", "manifests", "--readme", "docs/reference/rbac.md"],
        cwd=root,
        env=_copy_env(root),
        check=True,
        capture_output=True,
    )


def _copy_env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    # A running cluster would run the unfaulted tree's steps in its Pods; CI would turn a skip into a catch.
    for name in ("BLUEGREEN_TEST_CLUSTER", "BLUEGREEN_TEST_SHARED_CLUSTER", "BLUEGREEN_TEST_KUBECONFIG", "CI"):
        env.pop(name, None)
    return env


def run_pytest(root: Path, args: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run pytest in the copy (its own modules first on the path); returns the exit status and the output."""
    env = _copy_env(root)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "-rfE", *args]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout if isinstance(expired.stdout, str) else ""
        return -1, output + f"\npytest ran past {timeout:.0f}s"
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    """The first test pytest reported as failed, or the reason pytest itself stopped."""
    found = _FAILED_LINE.search(output)
    if found:
        return found.group(1)
    return output.strip().splitlines()[-1] if output.strip() else "pytest failed without output"


def present(root: Path, tests: Sequence[str]) -> list[str]:
    """The named tests whose files exist in ``root``: an older revision may predate some of them."""
    return [test for test in tests if (root / test.split("::", 1)[0]).is_file()]


def caught(code: int, output: str) -> bool:
    """A test failed: a ``FAILED`` test named, with exit 1 (or 2, xdist's way of stopping at the first failure).

    A timeout, a collection error or another error of pytest's own is no catch.
    """
    return code in (1, 2) and re.search(r"^FAILED \S", output, re.MULTILINE) is not None


def judge(root: Path, mutant: Mutant, workers: int, timeout: float) -> Verdict:
    """Plant the fault, run its named tests and then the fast tier, and say which test failed first."""
    began = time.monotonic()
    try:
        original = plant(root, mutant)
    except ValueError as exc:
        return Verdict(mutant, None, f"not planted: {exc}", 0.0)
    try:
        if mutant.changes_manifests:
            render(root)
        parallel = ["-n", str(workers)] if workers > 1 else []
        named = present(root, mutant.catching_tests)
        code, output = run_pytest(root, [*parallel, *named], timeout) if named else (5, "")
        if caught(code, output):
            return Verdict(mutant, first_failure(output), "named tests", time.monotonic() - began)
        if code not in (0, 5):  # 5: pytest selected nothing, which is the catalogue's error, not a catch
            return Verdict(mutant, None, f"not judged: pytest exited {code}", time.monotonic() - began)
        code, output = run_pytest(root, [*parallel, "-m", FAST_TIER, "tests"], timeout)
        if caught(code, output):
            return Verdict(mutant, first_failure(output), "fast tier", time.monotonic() - began)
        if code != 0:
            return Verdict(mutant, None, f"not judged: pytest exited {code}", time.monotonic() - began)
        return Verdict(mutant, None, "survived", time.monotonic() - began)
    finally:
        unplant(root, mutant, original)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m testenv.mutants``; exit 0 only when every fault is caught."""
    parser = argparse.ArgumentParser(prog="make mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", help="plant the faults in this commit instead of the working tree")
    parser.add_argument("--workers", type=int, default=2, help="xdist workers for the fast tier (0 or 1: serial)")
    parser.add_argument("--only", action="append", default=[], help="run only faults whose name contains this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one pytest run may take")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(part in m.name for part in args.only)]
    began = time.monotonic()
    verdicts = []
    with tree_copy(args.revision) as root:
        named = sorted({test for mutant in chosen for test in present(root, mutant.catching_tests)})
        parallel = ["-n", str(args.workers)] if args.workers > 1 else []
        code, output = run_pytest(root, [*parallel, *named], args.timeout)
        if code != 0:
            print(output[-3000:])
            print(
                f"mutants: the catalogue's tests do not all pass without a fault ({first_failure(output)}); fix first"
            )
            return 2
        print(f"mutants: the {len(named)} named tests pass without a fault ({time.monotonic() - began:.0f}s)")
        for number, mutant in enumerate(chosen, 1):
            verdict = judge(root, mutant, args.workers, args.timeout)
            verdicts.append(verdict)
            outcome = f"caught by {verdict.caught_by} ({verdict.stage})" if verdict.caught else verdict.stage.upper()
            print(f"[{number:2}/{len(chosen)}] {mutant.name}: {outcome} in {verdict.seconds:.0f}s", flush=True)
    caught = sum(verdict.caught for verdict in verdicts)
    where = f"revision {args.revision}" if args.revision else "the working tree"
    print(f"mutants: {caught} of {len(verdicts)} planted faults caught in {where}, in {time.monotonic() - began:.0f}s")
    return 0 if caught == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
