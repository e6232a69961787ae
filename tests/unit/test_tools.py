import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testenv import paths, tools


def test_a_tool_that_is_not_built_names_the_make_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path))
    with pytest.raises(tools.ToolsNotBuilt, match=r"promtool not built: run `make tools`"):
        tools.program("promtool")
    with pytest.raises(ValueError, match="unknown tool 'kubectl'"):
        tools.program("kubectl")


def test_the_tools_key_follows_their_pins_and_not_the_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not any(name.startswith("tools") for name in paths.KEY_INPUTS)
    copy = tmp_path / "tools"
    shutil.copytree(tools.TOOLS_DIR, copy)
    monkeypatch.setattr(tools, "TOOLS_DIR", copy)
    before = tools.cache_key()
    go_sum = copy / "actionlint" / "go.sum"
    go_sum.write_text(go_sum.read_text() + "example.com/x v1.0.0 h1:AAAA=\n")
    assert tools.cache_key() != before
    assert tools.entry_dir().parent != paths.cache_root()


@pytest.mark.parametrize("name", sorted(tools.TOOLS))
def test_each_built_tool_reports_its_pinned_version(name: str, pinned_tool: Callable[[str], Path]) -> None:
    built = pinned_tool(name)
    versions = tools.pinned_versions()
    args, expected = tools.version_checks(versions)[name]
    out = subprocess.run([str(built), *args], capture_output=True, text=True, timeout=60, check=True)
    assert expected in out.stdout + out.stderr
