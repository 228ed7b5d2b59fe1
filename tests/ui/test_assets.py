"""The usage page's files: the vendored Chart.js is the pinned release its README names,
every file ships as package data, and nothing is loaded from another origin."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gateway" / "ui" / "static"


def test_vendored_chart_js_is_the_pinned_release() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text()
    pinned = re.search(r"sha256: `([0-9a-f]{64})`", readme)
    version = re.search(r"version \*\*([0-9.]+)\*\*", readme)
    assert pinned is not None and version is not None
    bundle = (STATIC / "vendor" / "chart.umd.js").read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == pinned.group(1)
    assert bundle.startswith(f"/*!\n * Chart.js v{version.group(1)}\n".encode())
    assert "MIT License" in (STATIC / "vendor" / "chart.js.LICENSE.md").read_text()


def test_every_static_file_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gateway"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "gateway").as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = (STATIC / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/ui/static/") or s == "data:," for s in sources)
    script = (STATIC / "app.js").read_text()
    assert "innerHTML" not in script and "document.cookie" not in script
    assert "localStorage" not in script  # the key lives in sessionStorage only
