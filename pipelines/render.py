"""``bluegreen-render``: write every manifest for your cluster to a directory, or check that one is current.

A render goes to ``./rendered`` unless ``--out`` names another directory, so a user's render never overwrites the
committed golden ``manifests/`` (rendered with the default settings by ``make manifests``) and ``--check`` compares
only the directory it is given. Output is deterministic (stable key order, no timestamps), so ``--check`` can compare
bytes and CI can fail on a stale directory with the names of the files that differ.

Settings come from ``--settings FILE`` (YAML, the long flags as keys), else from the output directory's own
``bluegreen-render.yaml``, which every render writes with the settings it used; a flag overrides either. So rendering
into a directory again, or ``--check`` on it, needs no remembered flags (see :mod:`pipelines.settings_file`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bluegreen_version import __version__
from pipelines import settings_file
from pipelines.manifests import HEADER, render_all
from pipelines.rbac import with_readme_table
from pipelines.settings_file import KEYS, SETTINGS_FILE, Chosen

#: The settings-file keys, which are the setting flags without their ``--``.
SETTINGS_KEYS = tuple(KEYS)

#: Where a render goes by default: beside the committed ``manifests/``, never over them.
DEFAULT_OUT = Path("rendered")


def _rendered_before(out: Path, header: str) -> list[Path]:
    """The YAML files under ``out`` that a render wrote (they start with ``header``); a user's own files are not."""
    if not out.exists():
        return []
    found = []
    for path in sorted(out.rglob("*.yaml")):
        with path.open() as file:
            if file.readline() == header:
                found.append(path)
    return found


def stale_files(files: dict[str, str], out: Path, header: str = HEADER) -> list[str]:
    """Paths under ``out`` that differ from ``files`` (path -> exact text): changed, missing or no longer rendered."""
    problems = []
    for path, text in sorted(files.items()):
        target = out / path
        if not target.exists():
            problems.append(f"{path}: missing")
        elif target.read_text() != text:
            problems.append(f"{path}: differs from what the code renders")
    for found in _rendered_before(out, header):
        relative = found.relative_to(out).as_posix()
        if relative not in files:
            problems.append(f"{relative}: no longer rendered")
    return problems


def write(files: dict[str, str], out: Path, header: str = HEADER) -> list[str]:
    """Write every file (path -> exact text) and remove rendered files no longer produced; returns the changed paths.

    Only files carrying the render's header are removed, so ``--out`` pointed at a directory that also holds the
    user's own YAML never deletes it.
    """
    changed = []
    for found in _rendered_before(out, header):
        if found.relative_to(out).as_posix() not in files:
            found.unlink()
            changed.append(found.relative_to(out).as_posix())
    for path, text in files.items():
        target = out / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed


def _default(key: str) -> str:
    """How ``--help`` shows a setting's default."""
    return f"default: {settings_file.default(key)!r}" if settings_file.default(key) != "" else "default: none"


def parser() -> argparse.ArgumentParser:
    """The command line. A setting flag's default is None, meaning "not given": the settings file's key then holds."""
    parser = argparse.ArgumentParser(prog="bluegreen-render", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT}; the committed golden manifests are made by `make manifests`)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help=f"read the settings from this YAML file, the flags below without -- as keys (default: OUT/{SETTINGS_FILE}"
        ", which every render writes, when it exists); a flag overrides a key",
    )
    # The settings are a group of their own: the same names are the keys of a settings file.
    settings = parser.add_argument_group(
        "settings", "each is also a key of a settings file, without its --; the flag overrides the file's key"
    )
    settings.add_argument("--namespace", help=f"target namespace ({_default('namespace')})")
    settings.add_argument("--image", help=f"steps image ({_default('image')})")
    settings.add_argument("--cosign-image", help=f"cosign image ({_default('cosign-image')})")
    settings.add_argument(
        "--argo-ui-url", help=f"Argo UI base URL for links in notifications ({_default('argo-ui-url')})"
    )
    settings.add_argument(
        "--pushgateway-url",
        help=f"Prometheus Pushgateway the steps push run metrics to ({_default('pushgateway-url')})",
    )
    settings.add_argument(
        "--cleanup-schedule", help=f"cron schedule of the cleanup workflow ({_default('cleanup-schedule')})"
    )
    settings.add_argument(
        "--alert-deploy-minutes",
        type=int,
        help=f"alert when a deploy runs longer than this ({_default('alert-deploy-minutes')})",
    )
    settings.add_argument(
        "--alert-cleanup-hours",
        type=int,
        help=f"alert when no cleanup succeeded for this long ({_default('alert-cleanup-hours')})",
    )
    settings.add_argument(
        "--notifications-secret",
        help=f"Secret whose slack-webhook-url and webhook-url keys the steps notify through ("
        f"{_default('notifications-secret')})",
    )
    settings.add_argument(
        "--image-pull-secrets",
        help=f"Secrets, comma-separated, the workflows' Pods pull images with ({_default('image-pull-secrets')})",
    )
    settings.add_argument(
        "--prometheus-rule-labels",
        help="labels key=value, comma-separated, added to the PrometheusRule, such as release=kube-prometheus-stack "
        f"({_default('prometheus-rule-labels')})",
    )
    for kind, example in (("cpu", "250m"), ("memory", "128Mi")):
        for what in ("request", "limit"):
            key = f"step-{kind}-{what}"
            settings.add_argument(
                f"--{key}", help=f"each step container's {kind} {what}, such as {example} ({_default(key)})"
            )
    parser.add_argument("--readme", type=Path, help="also keep the RBAC table in this README current")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming stale files")
    return parser


def chosen_settings(args: argparse.Namespace) -> Chosen:
    """The settings this render uses: ``--settings FILE``, else OUT's settings file if any, then the flags over them.

    The directory's own file comes second to ``--settings`` because naming a file is the more deliberate choice.
    Raises SettingsFileError for a file that cannot be used.
    """
    source: Path = args.settings or args.out / SETTINGS_FILE
    chosen = settings_file.read(source) if args.settings or source.exists() else {}
    flags = settings_file.from_flags({key: getattr(args, key.replace("-", "_")) for key in KEYS})
    return {**chosen, **flags}


def main(argv: list[str] | None = None) -> int:
    """Render or check; exit 0 when up to date, 1 when stale (with --check), 2 on bad settings."""
    args = parser().parse_args(argv)
    try:
        chosen = chosen_settings(args)
        # A file's values were checked key by key as it was read, so an invalid value here came from a flag.
        settings = settings_file.settings_of(chosen)
    except ValueError as error:  # SettingsFileError included: one line naming the file and the key
        print(f"bluegreen-render: {error}", file=sys.stderr)
        return 2
    manifests = render_all(settings)
    files = {m.path: m.text() for m in manifests}
    files[SETTINGS_FILE] = settings_file.text(chosen)
    try:
        return _render_or_check(args, files, len(manifests))
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"bluegreen-render: cannot use{where}: {error.strerror or error}; choose another --out", file=sys.stderr)
        return 2


def _render_or_check(args: argparse.Namespace, files: dict[str, str], count: int) -> int:
    readme = args.readme.read_text() if args.readme else None
    if args.check:
        problems = [str(args.out / problem) for problem in stale_files(files, args.out)]
        if readme is not None and with_readme_table(readme) != readme:
            problems.append(f"{args.readme}: RBAC table differs from the rules")
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print(
                f"bluegreen-render: {args.out} is stale; render it again (bluegreen-render --out {args.out} reads "
                f"its {SETTINGS_FILE}; for the committed manifests/: `make manifests`, then commit the result)",
                file=sys.stderr,
            )
            return 1
        print(f"{count} manifests in {args.out} are up to date")
        return 0
    changed = write(files, args.out)
    if readme is not None and with_readme_table(readme) != readme:
        args.readme.write_text(with_readme_table(readme))
        changed.append(str(args.readme))
    print(f"rendered {count} manifests into {args.out} ({len(changed)} changed; settings in {SETTINGS_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
