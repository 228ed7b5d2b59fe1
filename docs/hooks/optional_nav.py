"""A mkdocs hook: nav entries for pages still being written elsewhere appear once they exist.

Why: `mkdocs build --strict` fails on a nav entry whose file is missing, and fails too on a
page that the nav leaves out (mkdocs.yml sets `validation.nav.omitted_files: warn`). Pages
that other branches are writing would trip one or the other: before they land, or after.
mkdocs.yml lists them under `extra.optional_pages`; this hook drops their nav entries (and
a section left empty) while the file is absent. Every other nav entry stays checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _prune(items: list[Any], optional: set[str], docs: Path) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            ((title, target),) = item.items()
            if isinstance(target, list):
                children = _prune(target, optional, docs)
                if children:
                    kept.append({title: children})
                continue
            item_target = target
        else:
            item_target = item
        if item_target in optional and not (docs / item_target).is_file():
            continue
        kept.append(item)
    return kept


def on_config(config: Any, **_: Any) -> Any:
    optional = set(config["extra"].get("optional_pages", []))
    if config["nav"]:
        config["nav"] = _prune(config["nav"], optional, Path(config["docs_dir"]))
    return config
