"""`gateway.translate` stays pure: no I/O, no clock, no randomness, no logging.

Translators get ids, timestamps and model ids as arguments, so their output depends on
their input alone and golden files need no ignore lists. This test reads every module in
the package (including ones added later) and fails on an import that would break that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway.translate

FORBIDDEN = frozenset(
    {
        "aiobotocore",
        "asyncio",
        "botocore",
        "datetime",
        "httpx",
        "logging",
        "os",
        "prometheus_client",
        "random",
        "socket",
        "starlette",
        "time",
        "uuid",
    }
)

PACKAGE = Path(gateway.translate.__file__).parent
# Every module, in every pair's folder and in shared/ (the layout nests them).
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module `source` imports, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_has_modules() -> None:
    assert PACKAGE / "openai_chat" / "request.py" in MODULES
    assert PACKAGE / "shared" / "request_metadata.py" in MODULES


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_translate_module_imports_nothing_impure(module: Path) -> None:
    imported = imported_modules(module.read_text(encoding="utf-8"))
    assert not imported & FORBIDDEN, f"{module.name} imports {sorted(imported & FORBIDDEN)}"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import os", {"os"}),
        ("import os.path as p", {"os"}),
        ("from botocore.exceptions import ClientError", {"botocore"}),
        ("def f():\n    import time\n", {"time"}),
        ("from . import tools\nfrom .request import x", set()),
        ("import json, re", {"json", "re"}),
    ],
)
def test_imported_modules(source: str, found: set[str]) -> None:
    assert imported_modules(source) == found
