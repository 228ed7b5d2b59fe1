"""`bedrock-gateway demo`: the gateway in front of the built-in emulator, in one process.

For a newcomer with no AWS account: both servers share one event loop, the gateway's
Bedrock client points at the emulator on a free loopback port with throwaway credentials
(the emulator checks that requests are signed, not by whom), and a fresh API key is
printed so the first `curl` or OpenAI SDK call works at once.

The gateway's port is bound before anything is printed: a taken port is one error line and
exit status 1, never a key and a curl line for a server that then fails to start (issue 19,
item 20). `--key` fixes the key (scripts and workshops), under the same rules as any
plaintext key in a config file.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
from dataclasses import dataclass

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import GatewayConfig, format_validation_error
from gateway.emulator.app import create_emulator_app
from gateway.logs import configure_logging, uvicorn_log_config

__all__ = ["demo_config", "run_demo"]


@dataclass(frozen=True)
class _DemoCredentials:
    access_key: str = "demo"
    secret_key: str = "demo"


def demo_config(
    *, emulator_url: str, api_key: str, port: int, host: str = "127.0.0.1"
) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "server": {"host": host, "port": port},
            "bedrock": {"region": "us-east-1", "endpoint_url": emulator_url},
            "models": [
                {
                    "name": "claude-3-5-sonnet",
                    "bedrock_id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                    "aliases": ["gpt-4o"],
                },
                {
                    "name": "nova-micro",
                    "bedrock_id": "amazon.nova-micro-v1:0",
                    "aliases": ["gpt-4o-mini"],
                },
                {
                    # The names Claude Code asks for by default (README, "Claude Code
                    # through the gateway"), so it runs against the demo unchanged.
                    "name": "claude-sonnet-4-5",
                    "bedrock_id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                    "aliases": ["claude-haiku-4-5"],
                },
                {
                    "name": "titan-embed-text-v2",
                    "bedrock_id": "amazon.titan-embed-text-v2:0",
                    "kind": "embedding",
                    "aliases": ["text-embedding-3-small"],
                },
            ],
            "auth": {"keys": [{"id": "demo", "key": api_key, "team": "demo", "user": "newcomer"}]},
            "logging": {"format": "text"},
        }
    )


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening now, so that a taken port is known before anything is printed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


async def run_demo(*, port: int, host: str = "127.0.0.1", key: str | None = None) -> int:
    api_key = key if key is not None else "demo-" + secrets.token_urlsafe(32)
    try:
        config = demo_config(
            emulator_url="http://127.0.0.1:1", api_key=api_key, port=port, host=host
        )
    except ValidationError as exc:
        print(f"error: {format_validation_error(exc, '--key')}", file=sys.stderr)
        return 2
    try:
        gateway_sock = _listening_socket(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    emulator_sock = _loopback_socket()
    emulator_url = f"http://127.0.0.1:{emulator_sock.getsockname()[1]}"
    port = gateway_sock.getsockname()[1]
    config = demo_config(emulator_url=emulator_url, api_key=api_key, port=port, host=host)
    configure_logging(config.logging)
    emulator = uvicorn.Server(
        uvicorn.Config(create_emulator_app(), log_level="warning", access_log=False)
    )
    gateway = uvicorn.Server(
        uvicorn.Config(
            create_app(config, credentials=_DemoCredentials(), tune_gc=True),
            log_config=uvicorn_log_config(),
            access_log=False,
        )
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
    print(
        f"""
bedrock-gateway demo: the gateway on {base}/v1, in front of the built-in
Bedrock emulator at {emulator_url} (no AWS account needed).

  API key: {api_key}

  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {api_key}" -H "content-type: application/json" \\
    -d '{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Models: claude-3-5-sonnet (alias gpt-4o), nova-micro (alias gpt-4o-mini),
claude-sonnet-4-5 (alias claude-haiku-4-5, for Claude Code: ANTHROPIC_BASE_URL={base}),
titan-embed-text-v2 (alias text-embedding-3-small). Ctrl-C stops.
""",
        flush=True,
    )
    emulator_task = asyncio.create_task(emulator.serve(sockets=[emulator_sock]))
    try:
        await gateway.serve(sockets=[gateway_sock])
    finally:
        emulator.should_exit = True
        await emulator_task
    return 0
