"""The Messages pair is pure: no I/O, clock, ids, logging or framework in its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway.translate.anthropic_messages as package

FORBIDDEN = {
    "aioboto3", "aiobotocore", "botocore", "starlette", "prometheus_client", "logging",
    "time", "uuid", "asyncio", "random", "os", "socket", "httpx", "aiohttp",
}  # fmt: skip
MODULES = sorted(Path(package.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_nothing_impure(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
