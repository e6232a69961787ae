"""``bluegreen-render``: write every manifest for your cluster to a directory, or check that one is current.

A render goes to ``./rendered`` unless ``--out`` names another directory, so a user's render never overwrites the
committed golden ``manifests/`` (rendered with the default settings by ``make manifests``) and ``--check`` compares
only the directory it is given. Output is deterministic (stable key order, no timestamps), so ``--check`` can compare
bytes and CI can fail on a stale directory with the names of the files that differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bluegreen_version import __version__
from pipelines.manifests import HEADER, Manifest, render_all
from pipelines.rbac import with_readme_table
from pipelines.settings import DEFAULT_COSIGN_IMAGE, DEFAULT_IMAGE, DEFAULT_NAMESPACE, RenderSettings

#: Where a render goes by default: beside the committed ``manifests/``, never over them.
DEFAULT_OUT = Path("rendered")


def _rendered_before(out: Path) -> list[Path]:
    """The YAML files under ``out`` that a render wrote (they start with its header); a user's own files are not."""
    if not out.exists():
        return []
    found = []
    for path in sorted(out.rglob("*.yaml")):
        with path.open() as file:
            if file.readline() == HEADER:
                found.append(path)
    return found


def stale_files(manifests: list[Manifest], out: Path) -> list[str]:
    """Paths under ``out`` that differ from the rendering: changed, missing or no longer rendered."""
    expected = {m.path: m.text() for m in manifests}
    problems = []
    for path, text in sorted(expected.items()):
        target = out / path
        if not target.exists():
            problems.append(f"{path}: missing")
        elif target.read_text() != text:
            problems.append(f"{path}: differs from what the code renders")
    for found in _rendered_before(out):
        relative = found.relative_to(out).as_posix()
        if relative not in expected:
            problems.append(f"{relative}: no longer rendered")
    return problems


def write(manifests: list[Manifest], out: Path) -> list[str]:
    """Write every manifest and remove rendered files that are no longer produced; returns the changed paths.

    Only files carrying the render's header are removed, so ``--out`` pointed at a directory that also holds the
    user's own YAML never deletes it.
    """
    changed = []
    expected = {m.path for m in manifests}
    for found in _rendered_before(out):
        if found.relative_to(out).as_posix() not in expected:
            found.unlink()
            changed.append(found.relative_to(out).as_posix())
    for manifest in manifests:
        target = out / manifest.path
        text = manifest.text()
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(manifest.path)
    return changed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="bluegreen-render", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT}; the committed golden manifests are made by `make manifests`)",
    )
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"target namespace (default: {DEFAULT_NAMESPACE})"
    )
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"steps image (default: {DEFAULT_IMAGE})")
    parser.add_argument(
        "--cosign-image", default=DEFAULT_COSIGN_IMAGE, help=f"cosign image (default: {DEFAULT_COSIGN_IMAGE})"
    )
    parser.add_argument("--argo-ui-url", default="", help="Argo UI base URL for links in notifications")
    parser.add_argument("--pushgateway-url", default="", help="Prometheus Pushgateway the steps push run metrics to")
    parser.add_argument("--cleanup-schedule", default="*/5 * * * *", help="cron schedule of the cleanup workflow")
    parser.add_argument(
        "--alert-deploy-minutes", type=int, default=30, help="alert when a deploy runs longer than this (default: 30)"
    )
    parser.add_argument(
        "--alert-cleanup-hours", type=int, default=1, help="alert when no cleanup succeeded for this long (default: 1)"
    )
    parser.add_argument("--readme", type=Path, help="also keep the RBAC table in this README current")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming stale files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Render or check; exit 0 when up to date, 1 when stale (with --check), 2 on bad settings."""
    args = parse_args(argv)
    try:
        settings = RenderSettings(
            namespace=args.namespace,
            image=args.image,
            cosign_image=args.cosign_image,
            argo_ui_url=args.argo_ui_url,
            pushgateway_url=args.pushgateway_url,
            cleanup_schedule=args.cleanup_schedule,
            deploy_alert_minutes=args.alert_deploy_minutes,
            cleanup_alert_hours=args.alert_cleanup_hours,
        )
    except ValueError as error:
        print(f"bluegreen-render: {error}", file=sys.stderr)
        return 2
    manifests = render_all(settings)
    try:
        return _render_or_check(args, manifests)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"bluegreen-render: cannot use{where}: {error.strerror or error}; choose another --out", file=sys.stderr)
        return 2


def _render_or_check(args: argparse.Namespace, manifests: list[Manifest]) -> int:
    readme = args.readme.read_text() if args.readme else None
    if args.check:
        problems = [str(args.out / problem) for problem in stale_files(manifests, args.out)]
        if readme is not None and with_readme_table(readme) != readme:
            problems.append(f"{args.readme}: RBAC table differs from the rules")
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print(
                f"bluegreen-render: {args.out} is stale; render it again with the same settings "
                "(for the committed manifests/: `make manifests`, then commit the result)",
                file=sys.stderr,
            )
            return 1
        print(f"{len(manifests)} manifests in {args.out} are up to date")
        return 0
    changed = write(manifests, args.out)
    if readme is not None and with_readme_table(readme) != readme:
        args.readme.write_text(with_readme_table(readme))
        changed.append(str(args.readme))
    print(f"rendered {len(manifests)} manifests into {args.out} ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
