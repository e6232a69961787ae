"""The plugin's subcommands: one module each, named here in the order ``--help`` lists them.

Each module offers ``HELP`` (one line), ``add_arguments(parser)`` and ``run(cluster, args) -> int``, and connects to
the cluster only through ``cluster`` when it runs, so adding a command is one module and one line below.
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "status": "kubectl_bluegreen.commands.status",
    "history": "kubectl_bluegreen.commands.history",
    "deploy": "kubectl_bluegreen.commands.deploy",
    "rollback": "kubectl_bluegreen.commands.rollback",
    "promote": "kubectl_bluegreen.commands.promote",
    "abort": "kubectl_bluegreen.commands.abort",
    "route": "kubectl_bluegreen.commands.route",
    "grant": "kubectl_bluegreen.commands.grant",
    "lint": "kubectl_bluegreen.commands.lint",
    "version": "kubectl_bluegreen.commands.version",
}

__all__ = ["COMMANDS"]
