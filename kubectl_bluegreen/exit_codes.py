"""The plugin's exit codes, one meaning each, so scripts and CI jobs can branch on them."""

from __future__ import annotations

from enum import IntEnum


class PluginExit(IntEnum):
    """How a ``kubectl bluegreen`` command ends."""

    #: Done: the state was shown, the workflow was created (and, with ``--wait``, succeeded), traffic moved.
    OK = 0
    #: The operation ran and failed, or was refused: a workflow ended unsuccessfully, a slot is not available,
    #: lint found problems, the API server refused a request.
    FAILED = 1
    #: Usage or input the plugin cannot act on: unknown flags, a bad image reference, an invalid spec or file.
    USAGE = 2
    #: Not found or unreachable: no kubeconfig or context, the cluster does not answer, the service or the
    #: WorkflowTemplate does not exist; or ``lint`` runs where the render extra is not installed.
    NOT_FOUND = 3
    #: Ctrl-C, as shells report SIGINT; ``status --watch`` ends with OK instead.
    INTERRUPTED = 130


#: The table ``--help`` and the README print.
EXIT_CODE_HELP = "\n".join(
    (
        "exit codes:",
        "  0  done",
        "  1  the operation failed or was refused (a workflow did not succeed, a slot is unavailable, lint problems)",
        "  2  usage or input error (bad flags, bad image reference, invalid spec or file); nothing was written",
        "  3  not found or unreachable (no kubeconfig or context, cluster down, no such service or template;",
        "     lint without the render extra installed)",
        "  130  interrupted by Ctrl-C (status --watch ends with 0: Ctrl-C is how a watch stops)",
    )
)

__all__ = ["EXIT_CODE_HELP", "PluginExit"]
