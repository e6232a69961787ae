"""Reading a kubeconfig as kubectl does, with one line for each way it can be unusable.

The ``kubernetes`` package's loader is made for kubeconfigs that work. Given one that does not, it lets yaml's parser
error or a ``TypeError`` escape (a long traceback for a file with a typo), needs ``current-context`` even when the
caller names a context, and logs a failed exec credential plugin on the root logger and goes on without credentials.
So the files are read and checked here first, the context is chosen here by kubectl's rules, and the loader gets
only a context it can load; what it still reports is turned into one line as well. Every failure is a
:class:`KubeconfigError` whose text says what is wrong, in which file or context, and what to do.

``bluegreen-step`` (outside a Pod) and ``kubectl bluegreen`` both read kubeconfigs through here; they differ only in
how a person points them at another file or context, which :class:`Choosing` carries into the messages.
``kubernetes`` is imported only to load the chosen context, so a step in a Pod never pays for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from steps.errors import BadInput

if TYPE_CHECKING:
    from kubernetes import client

DEFAULT_KUBECONFIG = "~/.kube/config"
#: The lists of named entries a kubeconfig has; kubectl merges each across files by name.
SECTIONS = {"clusters": "cluster", "contexts": "context", "users": "user"}


class KubeconfigError(BadInput):
    """No kubeconfig, or one that cannot be used; ``str(error)`` is the one line for the person who ran the tool."""


@dataclass(frozen=True)
class Choosing:
    """How a person points a tool at another kubeconfig file or context, for the "what to do" of each message."""

    #: How to name another file, such as ``--kubeconfig FILE or KUBECONFIG``.
    file: str
    #: How to name a context on the command line, such as ``--context NAME``; empty when the tool has no way.
    context: str = ""
    #: Where else the tool looked for credentials, for "no kubeconfig found" (a step also tries a Pod's).
    elsewhere: str = ""

    def context_remedy(self, which: str = "one") -> str:
        """How to choose a context: the tool's flag if it has one, and kubectl's current context in any case."""
        use = "`kubectl config use-context NAME`"
        return f"choose {which} with {self.context} or {use}" if self.context else f"choose {which} with {use}"


@dataclass(frozen=True)
class Sources:
    """The kubeconfig files a tool reads, in order, and who named them, for the messages."""

    files: tuple[str, ...]
    #: ``--kubeconfig``, ``KUBECONFIG`` or empty for the default location.
    named_by: str

    def describe(self) -> str:
        """``/a/config (named by KUBECONFIG)``: where the tool looked."""
        where = ", ".join(self.files)
        if self.named_by:
            return f"{where} (named by {self.named_by})"
        return f"{where} (the default; KUBECONFIG is unset)"


@dataclass
class Kubeconfig:
    """The files that exist, merged as kubectl merges them: the first file to define a name or a key wins."""

    files: tuple[str, ...]
    current_context: str = ""
    #: Per section, each name's entry and the file it came from (a relative path in it is relative to that file).
    entries: dict[str, dict[str, tuple[dict[str, Any], str]]] = field(
        default_factory=lambda: {section: {} for section in SECTIONS}
    )

    def where(self) -> str:
        """The files, for messages."""
        return ", ".join(self.files)

    def entry(self, section: str, name: str) -> dict[str, Any]:
        """The inner mapping of a named entry (a context's ``context``, say), or empty when there is none."""
        found = self.entries[section].get(name)
        inner = found[0].get(SECTIONS[section]) if found else None
        return inner if isinstance(inner, dict) else {}


@dataclass(frozen=True)
class Loaded:
    """A client configuration for one context, and what the tools show or need of that context."""

    configuration: client.Configuration
    context: str
    #: The context's namespace, empty when it sets none.
    namespace: str
    user: str
    files: str


def kubeconfig_sources(flag: str = "") -> Sources:
    """The files kubectl would read: ``--kubeconfig`` (one file), else ``KUBECONFIG`` (a list), else the default.

    ``KUBECONFIG`` is read now, not at import: tests and wrappers set it after the ``kubernetes`` package is loaded.
    """
    if flag:
        return Sources((os.path.expanduser(flag),), "--kubeconfig")
    listed = [os.path.expanduser(path) for path in os.environ.get("KUBECONFIG", "").split(os.pathsep) if path]
    if listed:
        return Sources(tuple(listed), "KUBECONFIG")
    return Sources((os.path.expanduser(DEFAULT_KUBECONFIG),), "")


def read_kubeconfig(sources: Sources, choosing: Choosing) -> Kubeconfig:
    """Parse and merge the files that exist; none existing is "no kubeconfig found", saying where it looked.

    A ``KUBECONFIG`` list may name files that do not exist, as kubectl allows; a ``--kubeconfig`` file must exist.
    """
    existing = tuple(path for path in sources.files if os.path.exists(path))
    if not existing:
        which = "which does not exist" if len(sources.files) == 1 else "none of which exists"
        raise KubeconfigError(
            f"no kubeconfig found: looked at {sources.describe()}, {which}{choosing.elsewhere}; "
            f"name your cluster's kubeconfig with {choosing.file}"
        )
    merged = Kubeconfig(existing)
    for path in existing:
        _merge(merged, path, _parse_file(path, choosing))
    return merged


def _parse_file(path: str, choosing: Choosing) -> dict[str, Any]:
    """One file's YAML, checked for the shape the loader indexes without checking: a mapping of named lists."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise KubeconfigError(
            f"kubeconfig {path} is not valid YAML: {error.problem or error.context}{at}; fix it, or name another "
            f"file with {choosing.file}"
        ) from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
        raise KubeconfigError(
            f"kubeconfig {path} cannot be read: {problem}; fix it, or name another file with {choosing.file}"
        ) from None
    if document is None:
        return {}  # an empty file adds nothing, as in kubectl
    not_a_kubeconfig = f"kubeconfig {path} is not a kubeconfig"
    if not isinstance(document, dict):
        raise KubeconfigError(
            f"{not_a_kubeconfig}: it holds a {_kind(document)} where a kubeconfig holds a mapping with clusters, "
            f"contexts and users; name the right file with {choosing.file}"
        )
    for section, inner in SECTIONS.items():
        entries = document.get(section) or []
        if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get(inner) or {}, dict)
            for entry in entries
        ):
            raise KubeconfigError(
                f"{not_a_kubeconfig}: its {section} must be a list of entries, each with a name and a {inner} "
                f"mapping; fix it, or name another file with {choosing.file}"
            )
    return document


def _kind(value: object) -> str:
    """A YAML value's kind in words: list, string, number, boolean."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _merge(merged: Kubeconfig, path: str, document: dict[str, Any]) -> None:
    """Add one file's entries under the names not taken yet, and its current context if none is set yet."""
    for section in SECTIONS:
        for entry in document.get(section) or []:
            merged.entries[section].setdefault(str(entry["name"]), (entry, path))
    if not merged.current_context and document.get("current-context"):
        merged.current_context = str(document["current-context"])


def choose_context(kubeconfig: Kubeconfig, name: str, choosing: Choosing) -> str:
    """The context named on the command line, else the current one; the kubeconfig need not set one when named."""
    contexts = kubeconfig.entries["contexts"]
    names = ", ".join(sorted(contexts)) or "none"
    if name:
        if name not in contexts:
            raise KubeconfigError(
                f"context {name!r} is not in {kubeconfig.where()} (it has: {names}); "
                f"check {choosing.context or 'the context name'}"
            )
        chosen = name
    elif not contexts:
        raise KubeconfigError(
            f"kubeconfig {kubeconfig.where()} has no contexts; name your cluster's kubeconfig with {choosing.file}"
        )
    elif not kubeconfig.current_context:
        raise KubeconfigError(
            f"kubeconfig {kubeconfig.where()} sets no current-context (it has contexts: {names}); "
            f"{choosing.context_remedy()}"
        )
    elif kubeconfig.current_context not in contexts:
        raise KubeconfigError(
            f"the current-context {kubeconfig.current_context!r} of {kubeconfig.where()} is not one of its contexts "
            f"(it has: {names}); {choosing.context_remedy()}"
        )
    else:
        chosen = kubeconfig.current_context
    cluster = str(kubeconfig.entry("contexts", chosen).get("cluster") or "")
    if cluster not in kubeconfig.entries["clusters"]:
        raise KubeconfigError(
            f"context {chosen!r} in {kubeconfig.where()} names cluster {cluster!r}, which it does not define; fix "
            f"the context, or {choosing.context_remedy('another context')}"
        )
    return chosen


def check_credential_command(kubeconfig: Kubeconfig, context: str, choosing: Choosing) -> None:
    """Refuse a context whose exec credential plugin is not installed, naming the command.

    The loader would log the missing command and go on without credentials, so the first request would fail as
    unauthorized, or the tool would wait on a server it cannot use. kubectl looks a bare command up on ``PATH`` and
    a relative path from the kubeconfig's directory; so does this check.
    """
    user = str(kubeconfig.entry("contexts", context).get("user") or "")
    found = kubeconfig.entries["users"].get(user)
    plugin = kubeconfig.entry("users", user).get("exec") if found else None
    if not isinstance(plugin, dict) or not plugin.get("command"):
        return
    command = str(plugin["command"])
    if os.sep in command:
        path = Path(found[1]).parent / command if found else Path(command)
        missing = "" if path.is_file() and os.access(path, os.X_OK) else f"{path} is not an executable file"
    else:
        missing = "" if shutil.which(command) else "it is not on PATH"
    if not missing:
        return
    hint = " ".join(str(plugin.get("installHint") or "").split())
    raise KubeconfigError(
        f"context {context!r} in {kubeconfig.where()} gets its credentials from the command {command!r} (user "
        f"{user!r}), which is not installed: {missing}; install it{f' ({hint})' if hint else ''}, or "
        f"{choosing.context_remedy('another context')}"
    )


@contextlib.contextmanager
def _loader_errors() -> Iterator[list[str]]:
    """Collect what the ``kubernetes`` loader logs at ERROR on the root logger, instead of letting it through.

    The loader logs a failed exec plugin with ``logging.error`` and goes on. A filter on the root logger sees those
    records before any handler does, so they neither reach stderr nor a caller's log; a placeholder handler keeps
    ``logging.error`` from configuring a stderr handler for the rest of the process when none is set.
    """
    root = logging.getLogger()
    caught: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            caught.append(" ".join(record.getMessage().split()))
            return False
        return True

    placeholder = logging.NullHandler()
    root.addFilter(keep)
    root.addHandler(placeholder)
    try:
        yield caught
    finally:
        root.removeFilter(keep)
        root.removeHandler(placeholder)


def load_configuration(kubeconfig: Kubeconfig, context: str, choosing: Choosing) -> client.Configuration:
    """A client configuration for ``context``, credentials included; what the loader reports is one line too."""
    from kubernetes import client, config

    configuration = client.Configuration()
    user = str(kubeconfig.entry("contexts", context).get("user") or "")
    try:
        with _loader_errors() as caught:
            # persist_config=False: a tool that only reads the cluster never rewrites the user's kubeconfig.
            config.load_kube_config(
                config_file=os.pathsep.join(kubeconfig.files),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    # The loader indexes the user's YAML without checking it, so a shape the checks above let through can still fail
    # as a KeyError or a TypeError; every one of them is a kubeconfig this context cannot be used with.
    except (config.ConfigException, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        problem = " ".join(str(error).split())
        raise KubeconfigError(
            f"context {context!r} in {kubeconfig.where()} cannot be used: {problem}; fix it, or "
            f"{choosing.context_remedy('another context')}"
        ) from None
    if caught:
        plugin = kubeconfig.entry("users", user).get("exec")
        command = str(plugin.get("command") or "") if isinstance(plugin, dict) else ""
        what = f"the credential command {command!r} of user {user!r} failed" if command else "its credentials failed"
        raise KubeconfigError(
            f"context {context!r} in {kubeconfig.where()}: {what}: {caught[0]}; run it by hand to see why, or "
            f"{choosing.context_remedy('another context')}"
        )
    return configuration


def load(sources: Sources, context: str, choosing: Choosing) -> Loaded:
    """Read the kubeconfig, choose the context, check its credential plugin, and load it; one line when it fails."""
    kubeconfig = read_kubeconfig(sources, choosing)
    chosen = choose_context(kubeconfig, context, choosing)
    check_credential_command(kubeconfig, chosen, choosing)
    settings = kubeconfig.entry("contexts", chosen)
    return Loaded(
        configuration=load_configuration(kubeconfig, chosen, choosing),
        context=chosen,
        namespace=str(settings.get("namespace") or ""),
        user=str(settings.get("user") or ""),
        files=kubeconfig.where(),
    )


__all__ = [
    "Choosing",
    "Kubeconfig",
    "KubeconfigError",
    "Loaded",
    "Sources",
    "check_credential_command",
    "choose_context",
    "kubeconfig_sources",
    "load",
    "load_configuration",
    "read_kubeconfig",
]
