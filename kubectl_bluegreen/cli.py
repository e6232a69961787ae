"""``kubectl-bluegreen``: the entry point kubectl runs for ``kubectl bluegreen ...``.

kubectl finds any executable named ``kubectl-<name>`` on PATH and runs it with the remaining arguments, so
``pip install`` is the whole installation (https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/).
The connection flags work before or after the subcommand, as kubectl's own do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from bluegreen_version import __version__
from kubectl_bluegreen.commands import COMMANDS
from kubectl_bluegreen.connection import Cluster, Target, unreachable
from kubectl_bluegreen.errors import PluginError, exit_code_of
from kubectl_bluegreen.exit_codes import EXIT_CODE_HELP, PluginExit
from steps.errors import StepError, Unreachable

PROG = "kubectl bluegreen"
DESCRIPTION = """\
Blue-green deployments of Kubernetes services with argo-bluegreen: see a service's state, deploy, roll back,
switch traffic in an emergency and lint specs. deploy and rollback create Workflows from the installed
WorkflowTemplates through the Kubernetes API, as `argo submit --from` does; no Argo server is needed."""


def _connection_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # On subcommands the defaults are SUPPRESS, so a flag given before the subcommand is not reset after it.
    default = "" if defaults else argparse.SUPPRESS
    group = parser.add_argument_group("connection (as in kubectl)")
    group.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    group.add_argument("--context", default=default, help="kubeconfig context (default: the current context)")
    group.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's, else default)")


def modules() -> dict[str, ModuleType]:
    """Every command's module, in the registry's order."""
    return {name: importlib.import_module(path) for name, path in COMMANDS.items()}


def build_parser(commands: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    """The whole command line."""
    commands = commands if commands is not None else modules()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_flags(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in commands.items():
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            epilog=EXIT_CODE_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        _connection_flags(command, defaults=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns a :class:`PluginExit` code, with a one-line reason on stderr when it fails."""
    commands = modules()
    args = build_parser(commands).parse_args(argv)
    cluster = Cluster(Target(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace))
    try:
        return int(commands[args.command].run(cluster, args))
    except PluginError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return int(error.exit_code)
    except Unreachable as error:
        # Raised only by a request, so the connection was made: its context and file say what to check.
        print(f"{PROG} {args.command}: {unreachable(error, cluster.connection)}", file=sys.stderr)
        return int(PluginExit.NOT_FOUND)
    except StepError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return int(exit_code_of(error))
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return int(PluginExit.INTERRUPTED)


def entry_point() -> None:
    """The console script."""
    sys.exit(main())


__all__ = ["PROG", "PluginExit", "build_parser", "main"]
