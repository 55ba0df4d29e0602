"""The documentation holds together: README.md and docs/*.md (no stack needed).

- every relative link (and image) reaches a file of the repository, and an `#anchor` names
  a heading of the page it points to (GitHub's heading ids);
- no link leaves the repository through the file system (`../elsewhere`, `file:`);
- nothing in the repository names the design document that never was part of it;
- every field of `config.Settings` has a row in docs/configuration.md's settings table,
  by its environment variable, and that table names no variable Settings does not read;
- the README stays short, opens with the two commands and links every page of docs/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), optionally with a "title"
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def without_code(text: str) -> str:
    """The text with fenced blocks and inline code removed (links there are examples)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's id for a heading: plain text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    found = set(HTML_ID.findall(text))
    for _, title in HEADING.findall(FENCE.sub("", text)):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    text = without_code(page.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if SCHEME.match(target):
            if target.lower().startswith("file:"):
                problems.append(f"{target}: a file outside the repository")
            continue  # http(s), mailto: not a file of ours
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        try:
            dest.relative_to(ROOT)
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return problems


def test_the_pages_exist():
    names = {p.name for p in PAGES}
    for page in (
        "README.md",
        "CONTRACT.md",
        "architecture.md",
        "configuration.md",
        "operations.md",
        "migration.md",
        "testing.md",
        "performance.md",
        "security.md",
        "local-stack.md",
    ):
        assert page in names, page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    assert broken_links(page) == []


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert orphans == []


def test_a_broken_link_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The checker itself: a missing file, a missing heading and a way out of the repository."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n\n## The `X_Y` part (two)\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/b.md) [ok](docs/b.md#the-x_y-part-two) [ok](#top) [web](https://example.com)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
        "[gone](docs/gone.md) [no heading](docs/b.md#nope) [out](../outside.md)\n"
        "[ref]: docs/missing.md\n# Top\n"
    )
    assert broken_links(page) == [
        "docs/gone.md: no such file",
        "docs/b.md#nope: no heading #nope in docs/b.md",
        "../outside.md: outside the repository",
        "docs/missing.md: no such file",
    ]


def test_nothing_names_the_design_document_that_is_not_in_the_repository():
    name = "DESIGN" + ".md"  # spelled apart so that this file does not name it
    assert not (ROOT / name).exists()
    skip_dirs = {"node_modules", "__pycache__"}
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in skip_dirs]
        for file in files:
            path = Path(folder, file)
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary
            if name in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def settings_table() -> list[str]:
    """The variables named in the first column of docs/configuration.md's "Settings" table."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", section, re.M)


def environment_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        names.add(str(alias).upper() if alias else name.upper())
    return names


def test_every_setting_is_documented_in_configuration_md():
    documented = settings_table()
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    missing = sorted(environment_names() - set(documented))
    assert missing == [], f"docs/configuration.md lacks {missing}"


def test_configuration_md_documents_only_real_settings():
    unknown = sorted(set(settings_table()) - environment_names())
    assert unknown == [], (
        f"docs/configuration.md documents settings config.Settings lacks: {unknown}"
    )


def test_the_readme_is_short_and_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    first_block = FENCE.search("\n".join(lines))
    assert first_block is not None
    before = "\n".join(lines)[: first_block.start()].strip()
    assert re.fullmatch(r"# [^\n]+", before), "only the title comes before the two commands"
    commands = [line.split("#")[0].strip() for line in first_block.group(0).splitlines()[1:-1]]
    assert commands == ["./scripts/dev up", "./scripts/dev test"]
