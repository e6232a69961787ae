"""The harness's pieces that need no cluster: HAProxy's configuration, checked by HAProxy, and reading the record."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import cast

import pytest

from testenv.load_client import RequestLine
from testenv.load_harness import LoadHarness, render_haproxy_config, serving_since
from testenv.local_cluster import LocalCluster


def test_haproxy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("`haproxy` is missing: run `make host-deps` (installs Debian's haproxy)")
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_haproxy_config("10.96.0.10", 80, 18080))

    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "server clusterip 10.96.0.10:80" in config.read_text()


def test_lines_are_read_as_they_are_appended_and_a_partial_line_waits(tmp_path: Path) -> None:
    harness = LoadHarness(cast(LocalCluster, None), "10.96.0.10", workdir=tmp_path)
    first = RequestLine(1.0, "direct", "new", 200, 1.5, "v1", "", False).render()
    second = RequestLine(2.0, "haproxy", "keepalive", 0, 3.0, "", "timeout", True).render()
    assert harness.lines() == []

    harness.out_path.write_text(first + "\n" + second[:10])
    assert [line.start for line in harness.lines()] == [1.0]

    with harness.out_path.open("a") as out:
        out.write(second[10:] + "\n")
    assert [line.error for line in harness.lines()] == ["", "timeout"]


def _answer(start: float, target: str, flow: str, status: int = 200, error: str = "") -> RequestLine:
    return RequestLine(start, target, flow, status, 1.0, "v1" if status == 200 else "", error, False)


def test_the_record_starts_once_every_path_has_answered() -> None:
    flows = {("direct", "new"), ("direct", "keepalive"), ("haproxy", "new")}
    lines = [
        _answer(1.0, "direct", "new", 0, "ConnectionRefusedError"),
        _answer(1.1, "direct", "keepalive"),
        _answer(1.2, "haproxy", "new", 503),
        _answer(1.3, "direct", "new"),
        _answer(1.4, "direct", "new", 0, "timeout"),
    ]
    assert serving_since(lines, flows) is None

    lines.append(_answer(1.5, "haproxy", "new"))
    assert serving_since(lines, flows) == 1.5
    # A flow nobody waits for does not hold the start back.
    assert serving_since(lines, {("direct", "keepalive")}) == 1.1


def test_the_record_leaves_out_what_came_before_the_start(tmp_path: Path) -> None:
    harness = LoadHarness(cast(LocalCluster, None), "10.96.0.10", workdir=tmp_path)
    early = _answer(1.0, "direct", "new", 0, "ConnectionRefusedError")
    later = _answer(2.0, "direct", "new")
    harness.out_path.write_text(early.render() + "\n" + later.render() + "\n")
    assert harness.lines() == [early, later]

    harness.started_at = 2.0
    assert harness.lines() == [later]
