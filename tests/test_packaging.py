"""What an installed (not editable) gateway needs besides its modules is in the wheel.

The README's first command is `pip install .`, which builds a wheel from
`[tool.setuptools.package-data]`; a data file the patterns miss works in every editable
test run and then fails on a fresh machine (the embedded model catalogue once did).
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

import gateway

PACKAGE = Path(gateway.__file__).parent
ROOT = PACKAGE.parent
# Read by people, not by the running gateway.
DOCUMENTATION = {"emulator/SCRIPTING.md"}


def _patterns() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    patterns: list[str] = config["tool"]["setuptools"]["package-data"]["gateway"]
    return patterns


def _matches(relative: str, pattern: str) -> bool:
    path = PurePosixPath(relative)
    if pattern.startswith("**/"):
        return path.match(pattern[3:])  # any depth, the top level included
    return path.match(pattern) and len(path.parts) == len(PurePosixPath(pattern).parts)


def test_every_runtime_data_file_is_package_data() -> None:
    data_files = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert "config/default_models.yaml" in data_files
    missing = [
        name
        for name in data_files
        if name not in DOCUMENTATION and not any(_matches(name, p) for p in _patterns())
    ]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_the_check_can_fail() -> None:
    assert not any(_matches("config/default_models.yaml", p) for p in ["*.yaml", "ui/static/*"])
    assert _matches("config/default_models.yaml", "**/*.yaml")
    assert _matches("usage/prices.json", "**/*.json")
