"""The import rules of `docs/architecture.md`, checked on every module of the package.

Each rule says which modules may not import which; the test parses every `gateway/**.py`
(new modules included, as they appear) with `ast` and fails naming the module, the rule
and the import that breaks it. Imports under `if TYPE_CHECKING:` count too: a type-only
import still couples the code, and the rules are about what a part may know.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names (relative imports resolved)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return _imports(path.read_text(encoding="utf-8"), package)


def _imports(source: str, package: list[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package[: len(package) - node.level + 1]
                base = ".".join([*prefix, base] if base else prefix)
            found.add(base)
            # `from gateway.x import y` may import the module gateway.x.y
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Rule:
    name: str
    applies_to: tuple[str, ...]  # module prefixes the rule is about
    forbidden: tuple[str, ...]  # module prefixes they may not import
    except_for: tuple[str, ...] = ()  # modules of `applies_to` the rule exempts

    def covers(self, module: str) -> bool:
        return _under(module, self.applies_to) and module not in self.except_for

    def broken_by(self, imported: set[str]) -> list[str]:
        return sorted(name for name in imported if _under(name, self.forbidden))


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


IMPURE = (
    "aiobotocore", "asyncio", "botocore", "datetime", "httpx", "logging", "os",
    "prometheus_client", "random", "socket", "starlette", "time", "uuid", "asyncpg", "redis",
)  # fmt: skip

RULES = (
    Rule(
        "translation is pure: no I/O, clock, randomness or logging",
        ("gateway.translate",),
        IMPURE,
    ),
    Rule(
        "translation never imports the Bedrock client, the ledger, limits, metrics or HTTP",
        ("gateway.translate",),
        (
            "gateway.bedrock",
            "gateway.usage",
            "gateway.limits",
            "gateway.metrics",
            "gateway.server",
            "gateway.pipeline",
            "gateway.surfaces",
            "gateway.keys",
            "gateway.images",
            "gateway.config",
            "gateway.app",
        ),
    ),
    Rule(
        "wire schemas are data: they import no logic",
        ("gateway.schemas",),
        (*IMPURE, "gateway.translate", "gateway.bedrock", "gateway.pipeline", "gateway.server"),
    ),
    Rule(
        "the ledger knows no routes, surfaces or HTTP",
        ("gateway.usage",),
        ("gateway.surfaces", "gateway.pipeline", "gateway.server", "starlette", "gateway.app"),
    ),
    Rule(
        "limits know nothing of requests, surfaces or HTTP",
        ("gateway.limits",),
        ("gateway.surfaces", "gateway.pipeline", "gateway.server", "starlette", "gateway.app"),
    ),
    Rule(
        "the emulator stands apart from the gateway",
        ("gateway.emulator",),
        # Only the id generator, a leaf with no imports of the gateway's own, is shared.
        tuple(
            sorted(
                {f"gateway.{name.split('.')[1]}" for name in MODULES if name.count(".") >= 1}
                - {"gateway.emulator", "gateway.ids"}
            )
        ),
    ),
    Rule(
        "only gateway.bedrock talks to AWS (aiobotocore)",
        tuple(sorted({f"gateway.{n.split('.')[1]}" for n in MODULES if n.count(".") >= 1})),
        ("aiobotocore",),
        except_for=tuple(
            n for n in MODULES if n.startswith(("gateway.bedrock", "gateway.emulator"))
        ),
    ),
    Rule(
        "a surface reaches Bedrock, limits, the ledger and metrics only through the pipeline",
        ("gateway.surfaces",),
        (
            "aiobotocore",
            "gateway.bedrock.retries",
            "gateway.limits",
            "gateway.usage.recorder",
            "gateway.usage.store",
            "gateway.metrics",
            "gateway.images",
            "gateway.keys",
        ),
    ),
    Rule(
        "the pipeline does not know its surfaces (they plug in at create_app)",
        ("gateway.pipeline",),
        ("gateway.surfaces",),
    ),
    Rule(
        "the server edge (middleware, SSE) knows no surface",
        ("gateway.server",),
        ("gateway.surfaces", "gateway.translate"),
    ),
)


def test_the_package_is_walked() -> None:
    assert "gateway.translate.openai_chat.request" in MODULES
    assert "gateway.pipeline.handler" in MODULES
    assert all(any(rule.covers(m) for m in MODULES) for rule in RULES)


CASES = [(rule, module) for rule in RULES for module in MODULES if rule.covers(module)]


@pytest.mark.parametrize(
    ("rule", "module"), CASES, ids=[f"{module}: {rule.name}" for rule, module in CASES]
)
def test_import_rule(rule: Rule, module: str) -> None:
    broken = rule.broken_by(imports_of(MODULES[module]))
    assert not broken, f"{module} breaks '{rule.name}': imports {broken}"


@pytest.mark.parametrize(
    ("source", "module", "rule_name"),
    [
        ("import time\n", "gateway.translate.openai_chat.x", "translation is pure"),
        ("from gateway.usage import recorder\n", "gateway.translate.shared.x", "translation never"),
        ("from ..pipeline import handler\n", "gateway.usage.x", "the ledger knows no routes"),
        ("from gateway.config import X\n", "gateway.emulator.x", "the emulator stands apart"),
        ("if TYPE_CHECKING:\n    import aiobotocore\n", "gateway.server.x", "only gateway.bedrock"),
        ("from gateway.limits import Limiter\n", "gateway.surfaces.x", "a surface reaches"),
    ],
)
def test_the_rules_can_fail(source: str, module: str, rule_name: str) -> None:
    """Each kind of break is caught (so a rule that silently matches nothing is noticed)."""
    (rule,) = [r for r in RULES if r.name.startswith(rule_name)]
    assert rule.covers(module)
    assert rule.broken_by(_imports(source, module.split(".")[:-1]))
