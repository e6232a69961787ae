"""The rendered alerts pass promtool's own checks and unit tests, and every alert is shown firing and not firing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "manifests" / "observability" / "prometheusrule.yaml"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool"


def _rule_file(directory: Path) -> Path:
    """The committed PrometheusRule's groups as the plain rule file promtool reads."""
    groups = yaml.safe_load(RULE.read_text())["spec"]["groups"]
    target = directory / "rules.yaml"
    target.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return target


def _promtool(promtool: Path, *args: str, cwd: Path) -> str:
    proc = subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def test_promtool_checks_and_unit_tests_the_rendered_rules(tmp_path: Path, pinned_tool: Callable[[str], Path]) -> None:
    promtool = pinned_tool("promtool")
    rules = _rule_file(tmp_path)
    tests = sorted(PROMTOOL_TESTS.glob("*_test.yaml"))
    assert tests
    for test in tests:
        shutil.copyfile(test, tmp_path / test.name)
    checked = _promtool(promtool, "check", "rules", rules.name, cwd=tmp_path)
    committed = yaml.safe_load(RULE.read_text())["spec"]["groups"]
    assert f"SUCCESS: {sum(len(group['rules']) for group in committed)} rules found" in checked
    tested = _promtool(promtool, "test", "rules", *(t.name for t in tests), cwd=tmp_path)
    assert tested.count("SUCCESS") == len(tests)


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULE.read_text())["spec"]["groups"] for r in g["rules"]}
    fires: set[str] = set()
    quiet: set[str] = set()
    for test_file in PROMTOOL_TESTS.glob("*_test.yaml"):
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts == fires == quiet
