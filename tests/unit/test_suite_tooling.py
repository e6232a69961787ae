"""The suite's own tooling: the per-layer table, the shared cluster's hand-over, and which tests a change reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from testenv import affected_tests
from testenv.local_cluster import ClusterStartError
from testenv.mutant_catalogue import MUTANTS, Mutant
from testenv.mutants import first_failure
from testenv.shared_cluster import FAILED_FILE, attach_shared
from testenv.suite_report import START_ORDER, LayerTime, deal, format_table, layer_of


@pytest.mark.parametrize(
    ("nodeid", "layer"),
    [
        ("tests/integration/test_crash_points.py::test_crash[x]", "crash points"),
        ("tests/integration/test_rbac.py::test_x", "integration"),
        ("tests/unit/test_lint.py::test_x", "unit"),
        ("tests/e2e/test_supply_chain.py::test_x", "e2e"),
        ("benchmarks/test_bench_end_to_end.py::test_x", "benchmarks"),
        ("somewhere/else.py::test_x", "other"),
    ],
)
def test_a_test_belongs_to_the_layer_of_its_folder(nodeid: str, layer: str) -> None:
    assert layer_of(nodeid) == layer
    assert layer in START_ORDER


def test_the_table_adds_up_each_layer_and_spans_first_start_to_last_stop() -> None:
    class Phase:
        def __init__(self, when: str, start: float, stop: float) -> None:
            self.when, self.outcome, self.start, self.stop, self.duration = when, "passed", start, stop, stop - start

    unit = LayerTime()
    for phase in (Phase("setup", 100, 101), Phase("call", 101, 161), Phase("call", 130, 190)):
        unit.add(phase)  # type: ignore[arg-type]
    assert unit.tests == 2
    assert unit.seconds == pytest.approx(121)
    assert unit.span == pytest.approx(90)
    lines = format_table({"unit": unit, "e2e": LayerTime()})
    assert lines[1].split() == ["unit", "2", "2m01.0s", "1m30.0s"], "layers print in the order of LAYERS"
    assert lines[2].split() == ["e2e", "0", "0m00.0s", "0m00.0s"]


def test_a_worker_learns_at_once_that_the_shared_cluster_failed(tmp_path: Path) -> None:
    (tmp_path / FAILED_FILE).write_text("etcd exited with 1")
    with pytest.raises(ClusterStartError, match="etcd exited with 1"):
        attach_shared(tmp_path, timeout=600)


def test_a_worker_waits_for_the_shared_cluster_only_until_its_deadline(tmp_path: Path) -> None:
    with pytest.raises(ClusterStartError, match="not ready within"):
        attach_shared(tmp_path, timeout=0.3)


def test_a_change_to_a_step_module_reaches_its_tests_and_not_the_unrelated_ones() -> None:
    selected = affected_tests.affected(["steps/smoke.py"])
    assert "tests/steps/test_smoke.py" in selected
    assert "tests/unit/test_lint.py" not in selected
    assert affected_tests.affected(["README.md"]) == [], "no test imports prose"


def test_a_change_to_the_harness_reaches_every_test_that_loads_it() -> None:
    assert affected_tests.affected(["testenv/pytest_plugin.py"]) == affected_tests.test_files()


def test_a_mutant_run_names_the_first_failing_test_with_its_parameters() -> None:
    output = "FAILED tests/a.py::t[list core/configmaps] - AssertionError\nFAILED tests/b.py::u"
    assert first_failure(output) == "tests/a.py::t[list core/configmaps]"


def test_each_workers_block_starts_with_its_share_of_the_slow_layers() -> None:
    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    items = [Item(f"tests/unit/test_u.py::t{n}") for n in range(8)]
    items += [Item(f"tests/e2e/test_e.py::t{n}") for n in range(4)]
    items += [Item(f"tests/integration/test_crash_points.py::t{n}") for n in range(4)]
    dealt = [item.nodeid for item in deal(items, 4)]  # type: ignore[arg-type]
    blocks = [dealt[start : start + 4] for start in range(0, 16, 4)]
    for block in blocks:
        assert [layer_of(nodeid) for nodeid in block] == ["crash points", "e2e", "unit", "unit"], block
    assert sorted(dealt) == sorted(item.nodeid for item in items)


def test_a_command_loaded_by_name_reaches_the_tests_that_run_its_cli() -> None:
    selected = affected_tests.affected(["steps/commands/smoke.py"])
    assert "tests/integration/test_steps_happy_path.py" in selected
    assert "tests/unit/test_lint.py" not in selected


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_planted_fault_still_finds_the_one_place_it_changes(mutant: Mutant) -> None:
    # A refactor that moves the faulted line leaves the fault unplantable, and `make mutants` would learn it only
    # after building a copy of the tree; here it costs a file read.
    source = (Path(__file__).resolve().parents[2] / mutant.path).read_text()
    assert source.count(mutant.old) == 1, f"{mutant.path} holds {source.count(mutant.old)} copies of the fault's text"
