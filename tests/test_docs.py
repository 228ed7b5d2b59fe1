"""The README and docs/ stay one working site: every link lands, and mkdocs builds strictly.

Two checks, because they catch different things. The link check below needs nothing but
the standard library and always runs: every relative link in README.md and docs/**/*.md
must name a file that exists, and every `#anchor` a heading of its target, under both
GitHub's heading ids (how the pages read on GitHub) and mkdocs' (how the site reads).
`mkdocs build --strict` (mkdocs-material is in the `test` extra; about 2 s here) adds what
only mkdocs knows: the nav, the theme, the README sections that getting-started.md
includes, and the hook that keeps pages other branches are writing out of the nav until
they exist.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_SNIPPET = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$')
_SECTION_MARK = re.compile(r"--8<--\s+\[(start|end):([\w-]+)\]")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


# --- reading Markdown ---------------------------------------------------------------------


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def _snippet_section(spec: str, base: Path) -> str:
    """The text a `--8<-- "FILE:SECTION"` line includes (pymdownx.snippets' sections)."""
    name, _, section = spec.partition(":")
    source = base / name
    if not source.is_file():
        raise ValueError(f"snippet {spec!r}: {name} does not exist")
    lines = source.read_text(encoding="utf-8").splitlines()
    if not section:
        return "\n".join(line for line in lines if not _SECTION_MARK.search(line))
    marks = [
        (i, m.group(1))
        for i, line in enumerate(lines)
        for m in [_SECTION_MARK.search(line)]
        if m is not None and m.group(2) == section
    ]
    kinds = [kind for _, kind in marks]
    if kinds != ["start", "end"]:
        raise ValueError(f"snippet {spec!r}: want one start and one end marker, found {kinds}")
    (start, _), (end, _) = marks
    return "\n".join(lines[start + 1 : end])


def _expanded(path: Path) -> str:
    """A page's text with its snippet lines replaced by what they include."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _SNIPPET.match(line)
        out.append(_snippet_section(match.group(1), ROOT) if match else line)
    return "\n".join(out)


def _plain_heading(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    return text.replace("`", "")


def github_slug(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, each space a hyphen."""
    text = _plain_heading(heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:
    """Python-Markdown's `toc` default: the same, but runs of spaces and hyphens become one."""
    text = re.sub(r"[^\w\s-]", "", _plain_heading(heading)).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(text: str) -> set[str]:
    """The heading ids a page offers under both GitHub's and mkdocs' rules."""
    github: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        seen = github.get(slug, 0)
        github[slug] = seen + 1
        if seen == 0 and slug == mkdocs_slug(match.group(2)):
            found.add(slug)
    return found


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline, image and reference link outside code."""
    for number, line in _prose_lines(text):
        reference = _REFERENCE.match(line)
        if reference:
            yield number, reference.group(1)
            continue
        for match in _LINK.finditer(_CODE_SPAN.sub("", line)):
            yield number, match.group(1)


# --- checking links -----------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    page: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.target}: {self.why}"


def check_page(page: Path, *, root: Path, site: Path | None) -> list[Broken]:
    """Every relative link of `page` that does not land. `site` (docs/) confines a page
    inside it: the built site has no copy of files outside docs/, so name those as code."""
    text = _expanded(page) if root == ROOT else page.read_text(encoding="utf-8")
    shown = page.relative_to(root).as_posix()
    broken: list[Broken] = []
    for line, target in links(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if path_part.startswith("/"):
            broken.append(Broken(shown, line, target, "absolute path; use a relative link"))
            continue
        if not dest.is_relative_to(root):
            broken.append(Broken(shown, line, target, "points outside the repository"))
            continue
        if site is not None and page.is_relative_to(site) and not dest.is_relative_to(site):
            broken.append(Broken(shown, line, target, "outside docs/: name the file as code"))
            continue
        if not dest.exists():
            broken.append(Broken(shown, line, target, "no such file"))
            continue
        if anchor:
            if dest.suffix != ".md":
                broken.append(Broken(shown, line, target, "anchor into a non-Markdown file"))
            elif anchor not in anchors(_expanded(dest) if root == ROOT else dest.read_text()):
                broken.append(Broken(shown, line, target, f"no heading with id #{anchor}"))
    return broken


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = [b for page in _pages() for b in check_page(page, root=ROOT, site=DOCS)]
    assert not broken, "broken links:\n" + "\n".join(map(str, broken))


def test_the_pages_link_to_each_other() -> None:
    # A link checker that saw no links would pass anything.
    found = {page.name: sum(1 for _ in links(_expanded(page))) for page in _pages()}
    assert found["README.md"] >= 10
    assert sum(found.values()) >= 60


# --- the checker catches what it should ---------------------------------------------------

_GOOD = """# Guide

## Setting up: the `config`

See [below](#setting-up-the-config), [the other page](other.md#part-two) and
[the site](https://example.com/x.md).

```sh
[not a link](missing.md)
```

Code like `[x](missing.md)` is not a link either.
"""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[a](missing.md)", "no such file"),
        ("[a](other.md#nowhere)", "no heading with id #nowhere"),
        ("[a](#also-nowhere)", "no heading with id #also-nowhere"),
        ("[a](../outside.md)", "outside docs/: name the file as code"),
        ("[a](/docs/other.md)", "absolute path; use a relative link"),
        ("[a](../../escape.md)", "points outside the repository"),
        ("![a](picture.png)", "no such file"),
        ("[a]: missing.md", "no such file"),
        ("[a](data.json#key)", "anchor into a non-Markdown file"),
    ],
)
def test_checker_reports_a_broken_link(tmp_path: Path, text: str, why: str) -> None:
    site = tmp_path / "docs"
    site.mkdir()
    (tmp_path / "outside.md").write_text("# Outside\n")
    (site / "data.json").write_text("{}")
    (site / "other.md").write_text("# Other\n\n## Part two\n")
    (site / "page.md").write_text(_GOOD + "\n" + text + "\n")
    broken = check_page(site / "page.md", root=tmp_path, site=site)
    assert [b.why for b in broken] == [why]


def test_checker_passes_good_links_and_ignores_code(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Part two\n")
    (tmp_path / "page.md").write_text(_GOOD)
    assert check_page(tmp_path / "page.md", root=tmp_path, site=None) == []


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Try it (no AWS account needed)", "try-it-no-aws-account-needed"),
        ("GET /v1/usage", "get-v1usage"),
        ("Tools and `tool_choice`", "tools-and-tool_choice"),
        ("History: our own HTTP transport", "history-our-own-http-transport"),
    ],
)
def test_heading_ids_agree_on_github_and_in_the_site(heading: str, slug: str) -> None:
    assert github_slug(heading) == mkdocs_slug(heading) == slug


def test_a_heading_whose_ids_differ_is_not_a_link_target() -> None:
    # GitHub keeps both hyphens of "a - b" ("a---b"), mkdocs collapses them ("a-b"): a link
    # to either id breaks in one of the two places, so neither counts.
    assert anchors("## a - b\n") == set()
    assert anchors("## Same\n\n## Same\n") == {"same"}


# --- the README, the nav, and the site ----------------------------------------------------


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) < 30_000, f"README.md is {len(readme)} bytes; move detail into docs/"
    text = readme.decode()
    for heading in ("## Try it", "## Quick start", "## Commands", "## The API at a glance"):
        assert heading in text


def test_getting_started_includes_the_readme_setup_sections() -> None:
    page = (DOCS / "getting-started.md").read_text()
    assert '--8<-- "README.md:setup"' in page
    setup = _snippet_section("README.md:setup", ROOT)
    assert "## Try it" in setup and "## Quick start" in setup and "## Commands" in setup


def _mkdocs_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return loaded


def _nav_pages(items: list[Any]) -> Iterator[str]:
    for item in items:
        target = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(target, list):
            yield from _nav_pages(target)
        else:
            yield target


def test_nav_lists_every_page_and_only_pages() -> None:
    config = _mkdocs_config()
    nav = list(_nav_pages(config["nav"]))
    optional = set(config["extra"]["optional_pages"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"
    assert pages - set(nav) == set(), "pages missing from mkdocs.yml's nav"
    assert set(nav) - pages - optional == set(), "nav entries without a file"
    assert optional <= set(nav), "an optional page that the nav does not list"


_HAS_MKDOCS = all(importlib.util.find_spec(m) is not None for m in ("mkdocs", "material"))
needs_mkdocs = pytest.mark.skipif(
    not _HAS_MKDOCS, reason="mkdocs-material is not installed (pip install -e '.[docs]')"
)


def _build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_mkdocs
def test_site_builds_strictly(tmp_path: Path) -> None:
    done = _build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    started = (tmp_path / "site" / "getting-started" / "index.html").read_text()
    assert "bedrock-gateway demo" in started  # the README's sections were included


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(DOCS, project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copy(ROOT / "README.md", project / "README.md")
    return project


@needs_mkdocs
def test_an_optional_page_joins_the_nav_once_it_exists(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    page = project / "docs" / "guides" / "keys.md"
    page.unlink(missing_ok=True)
    before = _build(project, tmp_path / "before")
    assert before.returncode == 0, before.stderr
    assert "guides/keys/" not in (tmp_path / "before" / "index.html").read_text()
    page.parent.mkdir(exist_ok=True)
    page.write_text("# API keys\n\nA page another branch wrote.\n")
    after = _build(project, tmp_path / "after")
    assert after.returncode == 0, after.stderr
    assert "guides/keys/" in (tmp_path / "after" / "index.html").read_text()


@needs_mkdocs
@pytest.mark.parametrize(
    ("page", "text", "complaint"),
    [
        ("stray.md", "# Stray\n", "stray.md"),  # a page the nav leaves out
        ("index.md", "# Home\n\n[gone](gone.md)\n", "gone.md"),
        ("index.md", "# Home\n\n[gone](performance.md#no-such-part)\n", "no-such-part"),
    ],
)
def test_strict_build_fails_on_a_broken_site(
    tmp_path: Path, page: str, text: str, complaint: str
) -> None:
    project = _copy_project(tmp_path)
    (project / "docs" / page).write_text(text)
    done = _build(project, tmp_path / "site")
    assert done.returncode != 0
    assert complaint in done.stderr
