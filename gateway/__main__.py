"""The `bedrock-gateway` command (also `python -m gateway`).

serve, demo, emulator, usage, keys (new, create, list, update, rotate, revoke),
check-config: see CONTRACT.md and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gateway import __version__
from gateway.config import (
    ConfigError,
    GatewayConfig,
    load_config,
    masked_config,
    resolve_config_path,
)

__all__ = ["main"]


def _load(path_arg: str | None) -> tuple[GatewayConfig, Path | None]:
    env = dict(os.environ)
    path = resolve_config_path(path_arg, env)
    return load_config(path, env), path


def _cmd_check_config(args: argparse.Namespace) -> int:
    config, path = _load(args.config)
    source = str(path) if path else "embedded defaults (no config file)"
    print(f"# effective config from {source}; secrets masked")
    print(yaml.safe_dump(masked_config(config), sort_keys=False), end="")
    return 0


def _cmd_keys_new(args: argparse.Namespace) -> int:
    key = "bgw-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    entry: dict[str, object] = {"id": args.id or f"key-{secrets.token_hex(3)}"}
    entry["key_sha256"] = digest
    if args.team:
        entry["team"] = args.team
    if args.user:
        entry["user"] = args.user
    print(f"API key (shown once, store it now): {key}")
    print()
    print("Config entry (under auth.keys):")
    print(yaml.safe_dump([entry], sort_keys=False), end="")
    return 0


_APP = "gateway.app:app_from_environment"


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.logs import configure_logging, uvicorn_log_config
    from gateway.server.protocol import PROTOCOL

    config, path = _load(args.config)
    configure_logging(config.logging)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    workers = args.workers or 1
    # The workers re-load the config by path: pass the resolved one (or none) along.
    os.environ["GATEWAY_CONFIG"] = str(path.resolve()) if path else ""
    metrics_dir = _metrics_directory(workers)
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully; with the
    # default handler that would kill us with status 143. A finished drain is a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": uvicorn_log_config(),
        "access_log": False,
        "timeout_graceful_shutdown": int(config.server.graceful_shutdown_s),
        "proxy_headers": False,
        "server_header": False,
        "http": PROTOCOL,  # httptools, with a deadline for request headers
    }
    try:
        if workers > 1:
            from gateway.server.workers import serve_workers

            serve_workers(uvicorn.Config(_APP, **options))
        else:
            uvicorn.run(_APP, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _metrics_directory(workers: int) -> str | None:
    """Prepare prometheus-client's multiprocess directory; returns it if we created it.

    The workers' metric files must start empty: files left by an earlier run (a restarted
    container keeps its emptyDir) would be summed into this run's counters, and the dead
    run's gauges would count for ever. prometheus-client asks for the directory to be wiped
    before start, so an operator's `PROMETHEUS_MULTIPROC_DIR` loses its `*.db` files (only
    those: the directory may be shared with other things). With several workers and no
    directory given, a fresh temporary one is made, and removed again at exit.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    if workers > 1:
        created = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
        return created
    return None


def _cmd_emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.emulator.app import create_emulator_app

    print(f"Bedrock Runtime emulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_emulator_app(), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(port=args.port, host=args.host, key=args.key))


def _cmd_usage(args: argparse.Namespace) -> int:
    from gateway.usage.cli import run_usage_report

    config, _ = _load(args.config)
    return asyncio.run(
        run_usage_report(
            config,
            group_by=args.group_by,
            since=args.since,
            until=args.until,
            output_format=args.format,
        )
    )


def _cmd_keys_store(args: argparse.Namespace) -> int:
    from gateway.keys.cli import run_keys_command

    config, _ = _load(args.config)
    return asyncio.run(run_keys_command(config, args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bedrock-gateway",
        description="OpenAI-compatible gateway in front of Amazon Bedrock.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, ./config.yaml)")
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(func=_cmd_serve)

    demo = commands.add_parser("demo", help="the gateway in front of the built-in emulator")
    demo.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.add_argument("--key", help="the demo API key (default: a fresh one, printed)")
    demo.set_defaults(func=_cmd_demo)

    emulator = commands.add_parser("emulator", help="only the built-in Bedrock emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8081, help="listen port (default 8081)")
    emulator.set_defaults(func=_cmd_emulator)

    usage = commands.add_parser("usage", help="usage report from the usage store")
    usage.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, ./config.yaml)")
    usage.add_argument(
        "--group-by",
        default="team,model",
        help=(
            "comma list of key_id, team, user, end_user, model, route, status, day, "
            "service_tier, region, guardrail_id (default team,model)"
        ),
    )
    usage.add_argument("--since", help="start, ISO 8601 date or time (UTC if no offset)")
    usage.add_argument("--until", help="end, ISO 8601 date or time (exclusive)")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.set_defaults(func=_cmd_usage)

    keys = commands.add_parser("keys", help="API key tools")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    new = key_commands.add_parser("new", help="print a new random API key and its config entry")
    new.add_argument("--id", help="key id (stable, non-secret; appears in metrics and usage)")
    new.add_argument("--team")
    new.add_argument("--user")
    new.set_defaults(func=_cmd_keys_new)
    from gateway.keys.cli import add_key_commands

    add_key_commands(key_commands, _cmd_keys_store)

    check = commands.add_parser("check-config", help="validate and print the effective config")
    check.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, ./config.yaml)")
    check.set_defaults(func=_cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:  # names the file and the key path
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
