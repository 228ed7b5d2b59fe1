"""Summarise a py-spy profile (`py-spy record --format raw`): where the gateway's CPU goes.

    python -m tests.benchmarks.profile_summary /tmp/prof/nonstreaming.txt [--top 15]

`run.py --profile DIR` writes these files. Each line of a raw profile is a stack, root
first, frames separated by `;`, then the sample count. This prints:

* the share of samples per area (uvicorn/httptools, starlette, our middleware, pydantic,
  translation, botocore, the HTTP client, json, metrics, usage, logging, ...), twice: by the
  innermost frame that belongs to a known area ("self": who does the work; standard
  library frames such as `hmac` or `copy` count for the package that called them), and
  by any frame in the stack ("cumulative": what the work was done for);
* the top functions by self and by cumulative samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# (area, substring of the frame's file); the innermost frame that matches names the area of
# a sample, and the first matching entry wins, so aiobotocore comes before botocore and
# the C modules (native profiles, `py-spy record --native`) before the Python ones.
AREAS: tuple[tuple[str, str], ...] = (
    ("GC", "gc_collect"),
    ("GC", "gcmodule.c"),
    ("uvloop (C): event loop, socket I/O", "loop.c"),
    ("uvloop (C): event loop, socket I/O", "uvloop/"),
    ("httptools (C): HTTP parsing", "parser.c"),
    ("httptools (C): HTTP parsing", "httptools/parser"),
    ("json encoding", "_json.c"),
    ("json encoding", "json/"),
    ("usage recording", "libsqlite3"),
    ("usage recording", "_sqlite/"),
    ("usage recording", "cursor.c"),
    ("openssl (sigv4 hmac/sha256)", "libcrypto"),
    ("openssl (sigv4 hmac/sha256)", "_hashopenssl"),
    ("our middleware", "gateway/server/middleware.py"),
    ("metrics", "gateway/metrics.py"),
    ("metrics", "prometheus_client/"),
    ("usage recording", "gateway/usage/"),
    ("logging", "gateway/logs.py"),
    ("translation", "gateway/translate/"),
    ("translation", "gateway/server/sse.py"),
    ("validation (pydantic + ours)", "gateway/schemas/"),
    ("validation (pydantic + ours)", "gateway/server/bodies.py"),
    ("validation (pydantic + ours)", "pydantic"),
    ("gateway: bedrock.py", "gateway/bedrock/client.py"),
    ("gateway: streaming.py", "gateway/server/streaming.py"),
    ("gateway: routes", "gateway/routes/"),
    ("gateway: limits", "gateway/limits/"),
    ("gateway: upstream.py", "gateway/bedrock/retries.py"),
    ("gateway: other", "gateway/"),
    ("aiobotocore: parse", "aiobotocore/parsers.py"),
    ("aiobotocore: eventstream", "aiobotocore/eventstream.py"),
    ("aiobotocore: sign", "aiobotocore/signers.py"),
    ("aiobotocore: retries", "aiobotocore/retries/"),
    ("aiobotocore: hooks", "aiobotocore/hooks.py"),
    ("aiobotocore: endpoint/http", "aiobotocore/endpoint.py"),
    ("aiobotocore: endpoint/http", "aiobotocore/httpsession.py"),
    ("aiobotocore: endpoint/http", "aiobotocore/_endpoint_helpers.py"),
    ("aiobotocore: endpoint/http", "aiobotocore/response.py"),
    ("aiobotocore: client", "aiobotocore/client.py"),
    ("aiobotocore: other", "aiobotocore/"),
    ("botocore: validate", "botocore/validate.py"),
    ("botocore: serialize", "botocore/serialize.py"),
    ("botocore: sign", "botocore/auth.py"),
    ("botocore: sign", "botocore/signers.py"),
    ("botocore: parse", "botocore/parsers.py"),
    ("botocore: eventstream", "botocore/eventstream.py"),
    ("botocore: user agent", "botocore/useragent.py"),
    ("botocore: hooks/handlers", "botocore/hooks.py"),
    ("botocore: hooks/handlers", "botocore/handlers.py"),
    ("botocore: retries", "botocore/retries/"),
    ("botocore: retries", "botocore/retryhandler.py"),
    ("botocore: endpoint/http", "botocore/endpoint.py"),
    ("botocore: endpoint/http", "botocore/awsrequest.py"),
    ("botocore: endpoint/http", "botocore/httpsession.py"),
    ("botocore: endpoint ruleset", "botocore/regions.py"),
    ("botocore: endpoint ruleset", "botocore/endpoint_provider.py"),
    ("botocore: client", "botocore/client.py"),
    ("botocore: other", "botocore/"),
    ("aiohttp", "aiohttp/"),
    ("multidict/yarl", "multidict/"),
    ("multidict/yarl", "yarl/"),
    ("uvicorn (Python)", "uvicorn/"),
    ("starlette routing/requests/middleware", "starlette/"),
    ("uuid", "uuid.py"),
    ("logging", "logging/"),
    ("asyncio (C tasks, Python helpers)", "_asynciomodule.c"),
    ("asyncio (C tasks, Python helpers)", "asyncio/"),
)
# Stacks of threads that only wait (the SQLite writer's idle pool thread): native profiles
# cannot tell them idle, so they are left out.
IDLE = "_queue_SimpleQueue_get_impl"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def area_of(func: str, path: str) -> str | None:
    """The area of a frame, from its file (Python) or its function and library (native)."""
    text = f"{func} ({path})"
    for area, needle in AREAS:
        if needle in text:
            return area
    return None


def parse(lines: Iterable[str]) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames as (function, file), root first; count) per stack."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack_text, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = []
        for frame in stack_text.split(";"):
            match = FRAME.match(frame)
            if match is None:
                frames.append((frame, ""))
            else:
                frames.append((match["func"], match["file"]))
        if any(IDLE in func for func, _ in frames):
            continue
        stacks.append((frames, count))
    return stacks


def short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# The split asked for in the performance issue; the detailed areas above roll up into it.
GROUPS: tuple[tuple[str, str], ...] = (
    ("uvloop", "server: uvicorn + uvloop + httptools + asyncio (incl. socket I/O)"),
    ("httptools", "server: uvicorn + uvloop + httptools + asyncio (incl. socket I/O)"),
    ("uvicorn", "server: uvicorn + uvloop + httptools + asyncio (incl. socket I/O)"),
    ("asyncio", "server: uvicorn + uvloop + httptools + asyncio (incl. socket I/O)"),
    ("starlette", "starlette routing/middleware/Request"),
    ("our middleware", "our middleware (auth, request bookkeeping)"),
    ("validation", "pydantic validation + body reading"),
    ("translation", "translation (request, response, stream, SSE)"),
    ("aiobotocore", "botocore + aiobotocore (serialize, sign, hooks, send, parse)"),
    ("botocore", "botocore + aiobotocore (serialize, sign, hooks, send, parse)"),
    ("openssl", "botocore + aiobotocore (serialize, sign, hooks, send, parse)"),
    ("aiohttp", "HTTP client to Bedrock (aiohttp)"),
    ("multidict", "HTTP client to Bedrock (aiohttp)"),
    ("json", "json encoding/decoding"),
    ("metrics", "metrics (prometheus)"),
    ("usage", "usage recording"),
    ("logging", "logging"),
    ("GC", "garbage collector"),
    ("gateway", "gateway: other (routes, bedrock.py, streaming, limits, upstream)"),
    ("uuid", "gateway: other (routes, bedrock.py, streaming, limits, upstream)"),
)
# A stack belongs to the event loop's thread when one of these is on it; the rest is the
# SQLite writer's thread (mostly waiting for the GIL or fsync) and other helpers.
LOOP_MARKERS = ("run_forever", "Runner.run", "uv_run")


def group_of(area: str) -> str:
    for prefix, group in GROUPS:
        if area.startswith(prefix) or prefix in area:
            return group
    return "other"


def summarise(path: Path, top: int) -> str:
    stacks = parse(path.read_text(errors="replace").splitlines())
    everything = sum(count for _, count in stacks)
    stacks = [
        (frames, count)
        for frames, count in stacks
        if any(marker in func for func, _ in frames for marker in LOOP_MARKERS)
    ]
    total = sum(count for _, count in stacks)
    if not total:
        return f"{path}: no samples"
    self_area: Counter[str] = Counter()
    self_group: Counter[str] = Counter()
    cum_area: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    cum_func: Counter[str] = Counter()
    for frames, count in stacks:
        owner = "other"
        for func, file in reversed(frames):
            area = area_of(func, file)
            if area is not None:
                owner = area
                break
        self_area[owner] += count
        self_group[group_of(owner)] += count
        seen_areas = {area_of(func, file) for func, file in frames} - {None}
        for area in seen_areas:
            cum_area[str(area)] += count
        for name in {f"{func} ({short(file)})" for func, file in frames if file.endswith(".py")}:
            cum_func[name] += count
        named = [(f, p) for f, p in frames if not f.startswith("0x")]
        if named:
            func, file = named[-1]
            self_func[f"{func} ({short(file)})"] += count
    # Frames on (nearly) every stack are the server's scaffolding, not a cost of their own.
    scaffolding = {name for name, count in cum_func.items() if count >= 0.8 * total}
    for name in scaffolding:
        del cum_func[name]

    def table(title: str, counter: Counter[str], limit: int | None = None) -> list[str]:
        rows = [f"{title}:"]
        for name, count in counter.most_common(limit):
            rows.append(f"  {100 * count / total:5.1f}%  {name}")
        return rows

    out = [
        f"== {path}: {total} samples on the event loop's thread "
        f"({everything - total} more on other threads, left out)"
    ]
    out += table("by area of the issue (self time)", self_group)
    out += table("detailed areas by self time (innermost frame with a known area)", self_area)
    out += table("areas by cumulative time (any frame in the stack)", cum_area)
    out += table(f"top {top} functions by self time (innermost named frame)", self_func, top)
    out += table(
        f"top {top} Python functions by cumulative time (without the {len(scaffolding)} "
        "frames found on 80%+ of stacks)",
        cum_func,
        top,
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
