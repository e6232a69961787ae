"""The plugin's own failures, and how the steps' errors map onto the plugin's exit codes."""

from __future__ import annotations

from kubectl_bluegreen.exit_codes import PluginExit
from steps.errors import BadInput, NotFound, StepError, Transient


class PluginError(Exception):
    """A command cannot go on; ``str(error)`` is the one line printed on stderr."""

    exit_code = PluginExit.FAILED


class UsageError(PluginError):
    """Arguments or input the plugin cannot act on; raised before any write."""

    exit_code = PluginExit.USAGE


class NotFoundError(PluginError):
    """The kubeconfig, context, cluster, service or template is not there."""

    exit_code = PluginExit.NOT_FOUND


def exit_code_of(error: StepError) -> PluginExit:
    """The plugin's exit code for an error raised by the shared step code."""
    if isinstance(error, NotFound | Transient):
        return PluginExit.NOT_FOUND
    if isinstance(error, BadInput):
        return PluginExit.USAGE
    return PluginExit.FAILED


__all__ = ["NotFoundError", "PluginError", "UsageError", "exit_code_of"]
