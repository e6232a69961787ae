"""A broken kubeconfig, or a cluster that does not answer, is one line on stderr with the documented exit code.

Both tools a person runs by hand read a kubeconfig: ``kubectl bluegreen`` (exit 3, "not found or unreachable", see
:mod:`kubectl_bluegreen.exit_codes`) and ``bluegreen-step`` (exit 2, bad input, for a kubeconfig it cannot use; 75 for
an API server that does not answer, see :class:`bluegreen_contract.ExitCode`). Each line says what is wrong, in which
file or context, and what to do. No test needs a cluster: the "cluster" is a closed port on localhost.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubectl_bluegreen.connection as connection
from bluegreen_contract import USER_COMMANDS, ExitCode
from kubectl_bluegreen.cli import main as plugin_main
from kubectl_bluegreen.connection import Target, connect
from kubectl_bluegreen.exit_codes import PluginExit
from steps.cli import main as step_main
from steps.kube import ApiRetryPolicy, Kube

#: Nothing listens on port 1 of localhost: every connection is refused at once.
CLOSED = "https://127.0.0.1:1"


def config(**changes: Any) -> dict[str, Any]:
    """A kubeconfig with one context ``dev`` (namespace ``apps``) on the closed port; ``changes`` replace keys."""
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": CLOSED, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "alice", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "local", "user": "alice", "namespace": "apps"}}],
        "current-context": "dev",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def eks_user(command: str, install_hint: str = "") -> list[dict[str, Any]]:
    """A user whose token comes from an exec credential plugin, as ``aws eks update-kubeconfig`` writes it."""
    plugin: dict[str, Any] = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": command,
        "args": ["eks", "get-token", "--cluster-name", "shop"],
    }
    if install_hint:
        plugin["installHint"] = install_hint
    return [{"name": "alice", "user": {"exec": plugin}}]


BAD_YAML = "apiVersion: v1\nclusters: [\n  - name: x\n  bad: : :\n"


@pytest.fixture(autouse=True)
def _no_cluster_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Pod ServiceAccount, no KUBECONFIG, and a HOME of our own: each test says which kubeconfig there is."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def default_kubeconfig(text: str) -> Path:
    """Write ``~/.kube/config`` (HOME is the test's own): where both tools look when KUBECONFIG is not set."""
    path = Path.home() / ".kube" / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


#: Each tool's command for a person, and the exit code it documents for a kubeconfig it cannot use.
TOOLS: dict[str, tuple[Callable[[], int], int, str]] = {
    "plugin": (lambda: plugin_main(["status", "cart"]), PluginExit.NOT_FOUND, "kubectl bluegreen status: "),
    "step": (
        lambda: step_main(["status", "cart", "--namespace", "apps"]),
        ExitCode.BAD_INPUT,
        "bluegreen-step status: ",
    ),
}


@pytest.fixture(autouse=True)
def _short_interactive_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plugin retries an unreachable server for 8 s (a person waits that long); these tests only need the message.
    monkeypatch.setattr(connection, "INTERACTIVE_RETRY", ApiRetryPolicy(deadline_seconds=0.2))


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at ERROR or above: the kubernetes package logs a failed exec plugin on the root logger and goes on."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


# -- 1. bad YAML ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_a_kubeconfig_of_bad_yaml_names_the_file_and_the_line(
    tool: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    command, code, prefix = TOOLS[tool]
    path = default_kubeconfig(BAD_YAML)
    assert command() == code
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(prefix), err
    assert str(path) in err[0] and "not valid YAML" in err[0] and "line 3" in err[0], err
    assert no_errors_logged(caplog) == []


# -- 2. a list instead of a mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_a_kubeconfig_that_is_a_list_is_refused_in_one_line(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    command, code, prefix = TOOLS[tool]
    path = default_kubeconfig(yaml.safe_dump([config()]))
    assert command() == code
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(prefix) and str(path) in err[0], err
    assert "is not a kubeconfig" in err[0] and "list" in err[0], err


@pytest.mark.parametrize("shape", ["text", "number"])
def test_a_kubeconfig_of_another_shape_is_refused_too(shape: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = default_kubeconfig({"text": "just some words\n", "number": "42\n"}[shape])
    assert plugin_main(["status", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1 and str(path) in err[0] and "is not a kubeconfig" in err[0], err


def test_a_context_entry_that_is_not_a_mapping_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    path = default_kubeconfig(yaml.safe_dump(config(contexts=["dev"])))
    assert plugin_main(["status", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1 and str(path) in err[0] and "contexts" in err[0], err


# -- 3. no current-context, but --context ---------------------------------------------------------------------------


def test_a_named_context_needs_no_current_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config(**{"current-context": None})))
    dev = connect(Target(kubeconfig=str(path), context="dev"))
    assert (dev.context, dev.namespace, dev.user, dev.configuration.host) == ("dev", "apps", "alice", CLOSED)


@pytest.mark.parametrize("tool", TOOLS)
def test_no_current_context_and_no_context_flag_says_how_to_choose(
    tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command, code, prefix = TOOLS[tool]
    path = default_kubeconfig(yaml.safe_dump(config(**{"current-context": None})))
    assert command() == code
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(prefix) and str(path) in err[0] and "current-context" in err[0], err
    assert "kubectl config use-context" in err[0] and "dev" in err[0], err
    if tool == "plugin":
        assert "--context" in err[0], err


# -- 4. an exec credential plugin that is not installed ------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_a_missing_credential_plugin_is_one_line_naming_the_command(
    tool: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    command, code, prefix = TOOLS[tool]
    path = default_kubeconfig(yaml.safe_dump(config(users=eks_user("aws-not-installed"))))
    assert command() == code
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(prefix) and str(path) in err[0], err
    assert "'aws-not-installed'" in err[0] and "not installed" in err[0] and "'dev'" in err[0], err
    assert no_errors_logged(caplog) == []


def test_the_install_hint_of_a_missing_plugin_is_passed_on(capsys: pytest.CaptureFixture[str]) -> None:
    hint = "aws-not-installed is part of the AWS CLI:\n  https://aws.amazon.com/cli/\n"
    default_kubeconfig(yaml.safe_dump(config(users=eks_user("aws-not-installed", hint))))
    assert plugin_main(["status", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1 and "aws-not-installed is part of the AWS CLI: https://aws.amazon.com/cli/" in err[0], err


def test_a_credential_plugin_that_fails_is_one_line_too(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    default_kubeconfig(yaml.safe_dump(config(users=eks_user("false"))))  # installed, and always exits 1
    assert plugin_main(["status", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1 and "'false'" in err[0] and "failed" in err[0], err
    assert no_errors_logged(caplog) == []


# -- 5. no kubeconfig at all ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_no_kubeconfig_says_where_it_looked_and_what_to_do(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    command, code, prefix = TOOLS[tool]
    missing = tmp_path / "no-such-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    assert command() == code
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(prefix + "no kubeconfig found"), err
    assert str(missing) in err[0] and "KUBECONFIG" in err[0] and "Invalid kube-config" not in err[0], err
    if tool == "plugin":
        assert "--kubeconfig" in err[0], err


def test_a_missing_kubeconfig_flag_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    assert plugin_main(["--kubeconfig", str(missing), "status", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1 and str(missing) in err[0] and "--kubeconfig" in err[0], err


# -- 6. the plugin and an API server that does not answer -----------------------------------------------------------


def test_the_plugin_names_the_unreachable_server_and_the_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config()))
    assert plugin_main(["--kubeconfig", str(path), "history", "cart"]) == PluginExit.NOT_FOUND
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert f"the API server at {CLOSED} could not be reached" in err[0], err
    assert "context 'dev'" in err[0] and str(path) in err[0] and "--context" in err[0], err
    assert "run the step again" not in err[0], err  # step jargon means nothing to a plugin user


# -- 7. bluegreen-step's people's commands and an API server that does not answer -----------------------------------


def _capture_client(monkeypatch: pytest.MonkeyPatch, command: str, seen: list[Kube]) -> None:
    def run(kube: Kube, _args: argparse.Namespace) -> int:
        seen.append(kube)
        return 0

    monkeypatch.setattr(f"steps.commands.{command.replace('-', '_')}.run", run)


def test_people_commands_give_up_as_soon_as_the_plugin_and_steps_keep_their_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default_kubeconfig(yaml.safe_dump(config()))
    seen: list[Kube] = []
    for command in USER_COMMANDS:
        _capture_client(monkeypatch, command, seen)
        assert step_main([command, "cart", "--namespace", "apps"]) == 0
    _capture_client(monkeypatch, "verify", seen)
    assert step_main(["verify", "--namespace", "apps", "--service", "cart", "--record", "r"]) == 0
    *people, step = seen
    # A person at a terminal hears about a cluster that does not answer as soon as from the plugin; a pipeline step
    # keeps riding out an API server restart for the whole deadline of the step contract, then exits 75.
    assert [kube.retry for kube in people] == [ApiRetryPolicy(deadline_seconds=8.0)] * len(USER_COMMANDS)
    assert step.retry == ApiRetryPolicy()


@pytest.mark.parametrize("command", USER_COMMANDS)
def test_people_commands_name_the_unreachable_server(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    default_kubeconfig(yaml.safe_dump(config()))
    module = __import__(f"steps.commands.{command}", fromlist=["run"])
    real_run = module.run

    def run_briefly(kube: Kube, args: argparse.Namespace) -> int:
        # The same client, with a retry deadline short enough for a test; the message is what is checked here.
        return int(real_run(Kube(kube.api, retry=ApiRetryPolicy(deadline_seconds=0.2)), args))

    monkeypatch.setattr(module, "run", run_briefly)
    assert step_main([command, "cart", "--namespace", "apps"]) == ExitCode.TRANSIENT
    err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(f"bluegreen-step {command}: the API server at {CLOSED} could not be reached"), err
    assert "run the step again" not in err[0] and "kubectl config" in err[0], err
