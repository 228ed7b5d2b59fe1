"""`bedrock-gateway keys create|list|update|rotate|revoke`: the key store from a shell.

The same `KeyAdmin` rules as the admin API, on the database `usage.store` names, with
the actor `cli:<os user>` in the audit log. Running gateways pick the change up within
`auth.refresh_s`. The plaintext key is printed once (create, rotate) and nowhere else.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from decimal import Decimal
from typing import Any

import pydantic

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.keys.admin import KeyAdmin
from gateway.keys.store import opened
from gateway.schemas.admin import KeyCreate, KeyPatch, admin_validation_error

__all__ = ["add_key_commands", "run_keys_command"]

_LIST_COLUMNS = ("id", "team", "user", "models", "rpm", "tpm", "budget_usd_monthly", "source")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as admin API body fields."""
    fields: dict[str, Any] = {}
    for name in ("team", "user", "rpm", "tpm"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    if args.models is not None:
        fields["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.budget is not None:
        fields["budget_usd_monthly"] = Decimal(args.budget)
    if args.expires is not None:
        fields["expires_at"] = args.expires
    return fields


def _table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], name: str) -> str:
        value = row.get(name)
        if name == "models":
            return ",".join(value) if value else "all"
        status = " (revoked)" if name == "id" and row.get("revoked_at") else ""
        status = status or (" (disabled)" if name == "id" and row.get("disabled") else "")
        return ("-" if value is None else str(value)) + status

    lines = [list(_LIST_COLUMNS), *([cell(r, c) for c in _LIST_COLUMNS] for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_LIST_COLUMNS))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


async def run_keys_command(config: GatewayConfig, args: argparse.Namespace) -> int:
    try:
        async with opened(config.usage.store) as store:
            admin = KeyAdmin(store, config)
            return await _run(admin, args)
    except pydantic.ValidationError as exc:
        _param, message = admin_validation_error(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


async def _run(admin: KeyAdmin, args: argparse.Namespace) -> int:
    command = args.keys_command
    actor = _actor()
    if command == "create":
        body = KeyCreate.model_validate({"id": args.id, **_fields(args)})
        created = await admin.create_key(body, actor=actor)
        print(f"API key for {created['id']} (shown once, store it now): {created['key']}")
    elif command == "list":
        rows = await admin.list_keys()
        if args.format == "json":
            print(json.dumps({"object": "list", "data": rows}, indent=2))
        else:
            print(_table(rows))
    elif command == "update":
        fields = _fields(args)
        if args.enable or args.disable:
            fields["disabled"] = bool(args.disable)
        if not fields:
            print("error: nothing to change; give at least one option", file=sys.stderr)
            return 2
        view = await admin.update_key(args.id, KeyPatch.model_validate(fields), actor=actor)
        print(f"updated {view['id']}")
    elif command == "rotate":
        rotated = await admin.rotate_key(args.id, actor=actor)
        print(
            f"New API key for {rotated['id']} (shown once; the old one stops working): "
            f"{rotated['key']}"
        )
    elif command == "revoke":
        view = await admin.revoke_key(args.id, actor=actor)
        print(f"revoked {view['id']} at {view['revoked_at']}")
    return 0


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team")
    parser.add_argument("--user")
    parser.add_argument("--models", help="comma-separated allow-list of model names")
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--budget", help="monthly budget in USD")
    parser.add_argument("--expires", help="expiry, RFC 3339 UTC (2027-01-31T00:00:00Z)")


def add_key_commands(key_commands: Any, run: Any) -> None:
    """Add the store commands to the `keys` sub-parser; `run` is their handler."""
    config_help = "config file (default: $GATEWAY_CONFIG, ./config.yaml)"
    create = key_commands.add_parser("create", help="create a key in the key store")
    create.add_argument("--id", required=True, help="key id (stable, non-secret)")
    _limit_options(create)
    create.add_argument("--config", help=config_help)

    listing = key_commands.add_parser("list", help="list config and stored keys")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--config", help=config_help)

    update = key_commands.add_parser("update", help="change a stored key")
    update.add_argument("id")
    _limit_options(update)
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    update.add_argument("--config", help=config_help)

    for name, text in (
        ("rotate", "issue a new key; the old one stops working"),
        ("revoke", "revoke a stored key for good"),
    ):
        sub = key_commands.add_parser(name, help=text)
        sub.add_argument("id")
        sub.add_argument("--config", help=config_help)
    for name in ("create", "list", "update", "rotate", "revoke"):
        key_commands.choices[name].set_defaults(func=run)
