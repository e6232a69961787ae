"""The harness's pieces that need no cluster: HAProxy's configuration, checked by HAProxy, and reading the record."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import cast

import pytest

from testenv.load_client import RequestLine
from testenv.load_harness import LoadHarness, render_haproxy_config
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
