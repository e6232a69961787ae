"""Cache entries are published whole or not at all, and keyed by their inputs' content."""

from __future__ import annotations

from pathlib import Path

import pytest

from testenv.cache_entry import READY_MARKER, cache_root, content_key, is_ready, publish


def test_an_entry_is_published_with_its_marker_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    entry = tmp_path / "root" / "abc"

    publish(entry, "abc", lambda tmp: (tmp / "bin").mkdir())

    assert is_ready(entry) and (entry / "bin").is_dir()
    assert (entry / READY_MARKER).read_text() == "abc\n"
    assert [p.name for p in entry.parent.iterdir()] == ["abc"]


def test_a_failed_fill_publishes_nothing_and_keeps_the_old_entry_out_of_harm(tmp_path: Path) -> None:
    entry = tmp_path / "abc"

    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("compile failed")

    with pytest.raises(RuntimeError, match="compile failed"):
        publish(entry, "abc", broken)

    assert not entry.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_key_follows_content_and_names(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "go.mod", tmp_path / "b" / "go.mod"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text("module x\n")
    second.write_text("module x\n")

    assert content_key([first]) == content_key([first])
    assert content_key([first]) != content_key([second])  # same content, another folder
    key = content_key([first])
    first.write_text("module y\n")
    assert content_key([first]) != key


def test_the_root_is_the_variable_or_beside_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root("SOME_CACHE", "things") == tmp_path / "argo-bluegreen" / "things"
    monkeypatch.setenv("SOME_CACHE", str(tmp_path / "mine"))
    assert cache_root("SOME_CACHE", "things") == tmp_path / "mine"
