"""Every relative link in the documentation leads somewhere: the file exists, and an #anchor names one of its headings.

The documents are README.md, CONTRIBUTING.md and every Markdown file under docs/. An anchor is matched as GitHub makes
it from a heading: the heading's text lowercased, each space a '-', every other character but letters, digits, '-'
and '_' dropped, and a repeated heading numbered '-1', '-2' and so on. Links in code (fenced blocks, `inline`) are
text, not links, and links with a scheme (https:, mailto:) are left to their sites.

A section named in quotes rather than linked (`see "Deploying from CI" in the README`) must name the start of a
heading of that file too (of the same file without "in ..."), so a renamed section cannot leave the reference behind.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INDENTED_CODE = re.compile(r"^(    |\t)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# A link's text stays within its paragraph; possessive, so a lone "[" costs one scan, not a backtracking search.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]\n]|\n(?![ \t]*\n)|\[[^\[\]]*\])*+\]"  # [text], nested [brackets] allowed
    r"\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "optional title")
)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_QUOTED_SECTION = re.compile(r"\b[Ss]ee \"([^\"]+)\"(?: in (the README|[\w./-]+\.md))?")


def documents(root: Path = REPO) -> list[Path]:
    """The documents whose links are checked."""
    found = [root / name for name in ("README.md", "CONTRIBUTING.md") if (root / name).is_file()]
    return found + sorted((root / "docs").rglob("*.md"))


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for the lines outside code blocks."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    previous_blank = True
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1) == fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        # An indented line after a blank line opens an indented code block; within a list item it is prose, but no
        # link of ours sits in such an item, and a command shown as code must not count as a link.
        if _INDENTED_CODE.match(line) and previous_blank and not line.lstrip().startswith(("-", "*", "|")):
            continue
        previous_blank = not line.strip()
        lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"<[^>]+>", "", text.replace("`", "")).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    """The text of every heading of a Markdown file, code marks dropped."""
    return [
        heading.group(2).replace("`", "")
        for _, line in _prose_lines(path.read_text())
        if (heading := _HEADING.match(line))
    ]


def anchors(path: Path) -> set[str]:
    """Every #anchor a Markdown file offers: its headings' slugs, numbered when repeated, and HTML anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text()):
        if heading := _HEADING.match(line):
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in the file's prose; a link's text may run over several lines."""
    numbered = dict(_prose_lines(path.read_text()))
    lines = [numbered.get(n, "") for n in range(1, max(numbered, default=0) + 1)]
    # Code blocks are blank lines now; code spans become as many newlines as they held, so numbers stay right.
    text = _CODE_SPAN.sub(lambda span: "\n" * span.group(0).count("\n"), "\n".join(lines))
    found = [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _INLINE_LINK.finditer(text)]
    for number, line in enumerate(text.splitlines(), start=1):
        if definition := _REFERENCE_DEFINITION.match(line):
            found.append((number, definition.group(1)))
    return found


def broken_links(paths: list[Path], root: Path = REPO) -> list[str]:
    """One line per relative link that leads nowhere: the file and line, the target, and what is missing."""
    problems: list[str] = []
    for path in paths:
        where = path.relative_to(root)
        for number, target in links(path):
            if not target or _SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            if file_part.startswith("/"):
                destination = root / file_part.lstrip("/")
            else:
                destination = (path.parent / file_part) if file_part else path
            if not destination.exists():
                problems.append(f"{where}:{number}: {target}: {file_part} does not exist")
                continue
            if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                named = destination.relative_to(root)
                problems.append(f"{where}:{number}: {target}: {named} has no heading #{anchor}")
        problems += _broken_quoted_sections(path, root)
    return problems


def _broken_quoted_sections(path: Path, root: Path) -> list[str]:
    """A `see "Section"` whose file has no heading that starts with those words."""
    problems: list[str] = []
    where = path.relative_to(root)
    for number, line in _prose_lines(path.read_text()):
        for title, named in _QUOTED_SECTION.findall(_CODE_SPAN.sub("", line)):
            target = root / "README.md" if named == "the README" else (path.parent / named if named else path)
            if not target.is_file():
                problems.append(f'{where}:{number}: "{title}": {named} does not exist')
            elif not any(h.lower().startswith(title.lower().replace("`", "")) for h in headings(target)):
                problems.append(f'{where}:{number}: "{title}": {target.relative_to(root)} has no such heading')
    return problems


def test_every_relative_link_and_anchor_in_the_docs_resolves() -> None:
    paths = documents()
    assert REPO / "README.md" in paths
    assert broken_links(paths) == []


def test_the_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "install.md").write_text(
        "# Install\n\n## Upgrade: to a new `release`\n\n## Upgrade: to a new `release`\n"
    )
    (tmp_path / "README.md").write_text(
        "# Title\n\n"
        "See [install](docs/install.md), [upgrade](docs/install.md#upgrade-to-a-new-release), [again]"
        "(docs/install.md#upgrade-to-a-new-release-1) and [the title](#title).\n"
        "Broken: [gone](docs/gone.md) and [no such section](docs/install.md#uninstall), [here](#nowhere), [over\n"
        "two lines](docs/split.md).\n"
        "Not links: `[code](docs/gone.md)`, [a site](https://example.com/x#y).\n"
        'See "Upgrade: to a new" in docs/install.md, and see "Title". See "Uninstall" in docs/install.md.\n\n'
        "```sh\n[fenced](docs/gone.md)\n```\n\n"
        "[ref]: docs/also-gone.md\n"
    )
    assert broken_links(documents(tmp_path), root=tmp_path) == [
        "README.md:4: docs/gone.md: docs/gone.md does not exist",
        "README.md:4: docs/install.md#uninstall: docs/install.md has no heading #uninstall",
        "README.md:4: #nowhere: README.md has no heading #nowhere",
        "README.md:5: docs/split.md: docs/split.md does not exist",
        "README.md:13: docs/also-gone.md: docs/also-gone.md does not exist",
        'README.md:7: "Uninstall": docs/install.md has no such heading',
    ]


def test_slugs_are_made_as_github_makes_them() -> None:
    assert slug("What a submitted Workflow may run: Argo's `templateReferencing: Strict`") == (
        "what-a-submitted-workflow-may-run-argos-templatereferencing-strict"
    )
    assert slug("The kubectl plugin: `kubectl bluegreen`") == "the-kubectl-plugin-kubectl-bluegreen"
    assert slug("I1 to I6, the [invariants](x.md)!") == "i1-to-i6-the-invariants"
    assert slug("snake_case and-dash") == "snake_case-and-dash"
