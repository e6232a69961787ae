"""docs/performance.md is the page its kept benchmark results give, and the page is computed from raw samples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import performance_page
from benchmarks.results import SECTIONS, BenchResults, load, write

ROOT = Path(__file__).resolve().parents[2]


def _setting(submitter: str, ours_wall: list[float], theirs_wall: list[float]) -> dict[str, Any]:
    def deploys(walls: list[float]) -> list[dict[str, float]]:
        return [{"wall": wall, "readiness": 11.0, "smoke": 0.1, "submit": 0.5} for wall in walls]

    return {
        "label": f"setting {submitter}",
        "submitter": submitter,
        "ours": {"deploys": deploys(ours_wall), "rollbacks": [1.0, 1.2, 0.9]},
        "theirs": {"deploys": deploys(theirs_wall), "rollbacks": [0.1, 0.1, 0.1]},
    }


def _results() -> BenchResults:
    steps = {"release": {part: [0.0, 1.0, 2.0] for part in ("queueing", "pod start", "own work", "noticing")}}
    results = BenchResults()
    results.record(
        "end_to_end",
        {
            "runs": 3,
            "default": {
                "requeue": "10s",
                "deploy_s": [43.0, 41.0, 45.0],
                "failed_smoke_to_rollback_s": [8.0],
                "rollback_s": [1.3, 1.4, 1.3],
                "steps": steps,
            },
            "tuned": {
                "requeue": "1s",
                "deploy_s": [16.0, 17.0, 18.0],
                "failed_smoke_to_rollback_s": [3.0, 4.0],
                "rollback_s": [1.4],
                "steps": steps,
            },
        },
    )
    results.record(
        "vs_rollouts",
        {
            "runs": 3,
            "replicas": 3,
            "tuned_requeue": "1s",
            "settings": [
                _setting("ARGO_KUBECONFIG", [15.0, 16.0, 17.0], [10.0, 11.0, 12.0]),
                _setting("PLUGIN", [13.0, 14.0, 15.0], [11.0, 11.0, 11.0]),
                _setting("ARGO_SERVER", [13.0, 13.0, 13.0], [11.0, 11.0, 11.0]),
            ],
        },
    )
    path = {"sent": 1000, "failed": 0, "retried": 2, "skipped": 0, "p50_ms": 2.8, "p99_ms": 30.0, "max_ms": 90.0}
    results.record(
        "under_load",
        {
            "deploys": 2,
            "services": 1,
            "failing_every": 5,
            "requeue": "1s",
            "rate_per_second": 200,
            "runs": [
                {"what": "a v2", "expected": "Succeeded", "phase": "Succeeded"},
                {"what": "a manual rollback", "expected": "Succeeded", "phase": "Succeeded"},
                {"what": "a v3", "expected": "Succeeded", "phase": "Succeeded"},
            ],
            "sweeps": ["Succeeded"],
            "deploy_s": [30.0, 32.0, 31.0, 45.0],
            "total_s": 80.0,
            "paths": [{"target": "direct", **path}, {"target": "haproxy", **path}],
        },
    )
    results.record(
        "steps",
        {
            "runs": 5,
            "per_deploy_s": {
                "cleanup": [0.05],
                "preflight": [0.1, 0.2],
                "overhead (all but probe/smoke)": [0.4, 0.5],
            },
            "requests_per_deploy": [76, 76],
            "process_start_s": [0.5],
            "rollback_s": [0.16],
            "sweep": {
                "services": 1000,
                "removed": 100,
                "first_s": 7.3,
                "first_requests": 808,
                "second_s": 1.5,
                "second_requests": 7,
            },
        },
    )
    return results


def _written(tmp_path: Path, results: BenchResults, exit_status: int = 0) -> Path:
    path = tmp_path / "results.json"
    write(path, results, exit_status)
    return path


def test_the_committed_page_is_the_one_its_kept_results_give() -> None:
    """Hand edits to docs/performance.md fail here: the page comes from benchmarks/performance_page.py and a run."""
    results = load(ROOT / performance_page.RESULTS)
    assert (ROOT / performance_page.PAGE).read_text() == performance_page.render(results), (
        "docs/performance.md differs from what docs/performance.json gives; run make bench instead of editing it"
    )


def test_figures_are_medians_of_the_raw_samples_with_their_range(tmp_path: Path) -> None:
    page = " ".join(performance_page.render(load(_written(tmp_path, _results()))).split())
    assert (
        "| Argo's default (`DEFAULT_REQUEUE_TIME=10s`) | 43.0 s (41.0 to 45.0) | 8.0 s | 1.3 s (1.3 to 1.4) |" in page
    )
    # ours 16.00 over theirs 11.00
    assert (
        "| deploy, image change to traffic switched | 16.00 s (15.00 to 17.00) | 11.00 s (10.00 to 12.00) | 1.45x |"
        in page
    )
    assert "0 of 2,000 requests failed" in page
    # Nearest rank, as the benchmark prints it: the 4th of 4 samples.
    assert "Deploy time: median 31.5 s, p95 45.0 s" in page
    # Rollouts' smoke time is whole seconds, so its overhead keeps it in: wall minus readiness.
    assert (
        "| control overhead (the rest) | 4.90 s (3.90 to 5.90) | 0.00 s (-1.00 to 1.00) with its smoke checks |"
        in page
    )
    assert page.count("| `istio` |") == 1


def test_tables_keyed_by_step_follow_the_pipeline(tmp_path: Path) -> None:
    """The results file sorts its keys; the page puts steps back in the order they run."""
    page = performance_page.render(load(_written(tmp_path, _results())))
    assert page.index("| preflight |") < page.index("| cleanup |")
    assert performance_page.in_pipeline_order(["notify", "smoke (app time)", "release", "elsewhere"]) == [
        "release",
        "smoke (app time)",
        "notify",
        "elsewhere",
    ]
    assert "2 deploys (0 of them smoke failures) and 1 manual rollback all ended as expected" in page


def test_a_run_that_ended_otherwise_than_expected_says_so(tmp_path: Path) -> None:
    results = _results()
    results.sections["under_load"]["runs"][2]["phase"] = "Failed"
    page = " ".join(performance_page.render(load(_written(tmp_path, results))).split())
    assert "not all ended as expected: a v3 Failed" in page


@pytest.mark.parametrize("missing", SECTIONS)
def test_an_incomplete_run_writes_no_page(tmp_path: Path, missing: str, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results()
    del results.sections[missing]
    page = tmp_path / "performance.md"
    code = performance_page.main(
        [str(_written(tmp_path, results)), "--page", str(page), "--kept", str(tmp_path / "k")]
    )
    assert code == 2 and not page.exists()
    assert missing in capsys.readouterr().err


def test_a_failed_session_writes_no_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "performance.md"
    written = _written(tmp_path, _results(), exit_status=1)
    code = performance_page.main([str(written), "--page", str(page), "--kept", str(tmp_path / "k")])
    assert code == 2 and not page.exists()
    assert "ended with status 1" in capsys.readouterr().err


def test_a_benchmark_left_out_of_a_shared_section_writes_no_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _results()
    del results.sections["steps"]["sweep"]
    page = tmp_path / "performance.md"
    code = performance_page.main(
        [str(_written(tmp_path, results)), "--page", str(page), "--kept", str(tmp_path / "k")]
    )
    assert code == 2 and not page.exists()
    assert "section steps lacks sweep" in capsys.readouterr().err


def test_a_figure_without_samples_writes_no_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results()
    results.sections["steps"]["rollback_s"] = []
    page = tmp_path / "performance.md"
    code = performance_page.main(
        [str(_written(tmp_path, results)), "--page", str(page), "--kept", str(tmp_path / "k")]
    )
    assert code == 2 and not page.exists()
    assert "no samples" in capsys.readouterr().err


def test_the_page_keeps_its_results_and_check_finds_an_edit(tmp_path: Path) -> None:
    page, kept = tmp_path / "performance.md", tmp_path / "performance.json"
    assert performance_page.main([str(_written(tmp_path, _results())), "--page", str(page), "--kept", str(kept)]) == 0
    assert json.loads(kept.read_text())["sections"] == copy.deepcopy(_results().sections)
    assert performance_page.main([str(kept), "--page", str(page), "--check"]) == 0
    page.write_text(page.read_text().replace("43.0 s", "33.0 s"))
    assert performance_page.main([str(kept), "--page", str(page), "--check"]) == 1


def test_a_section_is_recorded_once() -> None:
    results = _results()
    with pytest.raises(ValueError, match="recorded twice"):
        results.record("steps", {})
    with pytest.raises(ValueError, match="unknown benchmark section"):
        results.record("elsewhere", {})
