"""Loading a config file: `${VAR}` interpolation, validation with errors that name the key path,
the embedded defaults, and the masked view `check-config` prints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.base import ConfigError
from gateway.config.root import GatewayConfig

# The catalogue used when there is no config file at all, so that `bedrock-gateway serve`
# answers for the common models without any set-up: `default_models.yaml`, next to this
# module (data, with the source of every price, rather than a long Python literal).
_DEFAULT_MODELS_FILE = Path(__file__).with_name("default_models.yaml")


def default_models() -> list[dict[str, Any]]:
    """The embedded catalogue, as config data (`default_models.yaml`)."""
    models: list[dict[str, Any]] = yaml.safe_load(_DEFAULT_MODELS_FILE.read_text(encoding="utf-8"))[
        "models"
    ]
    return models


def default_config() -> GatewayConfig:
    """The embedded defaults: used when no config file exists at all."""
    return GatewayConfig.model_validate({"models": default_models()})


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], *, source: str = "<config>") -> str:
    """Replace `${VAR}` and `${VAR:-default}`; an unset variable without default is an error.

    Applied to string values after YAML parsing, never to the raw text: comments stay
    inert, and a variable's value can never change the structure of the document. Values
    are strings; pydantic turns `"8080"` into the port number where an int is expected.
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    result = _VAR.sub(replace, text)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ConfigError(f"{source}: environment variable(s) not set: {names}")
    return result


def _interpolate_values(data: Any, env: Mapping[str, str], *, source: str, path: str) -> Any:
    if isinstance(data, str):
        return interpolate(data, env, source=f"{source}: {path}" if path else source)
    if isinstance(data, dict):
        return {
            key: _interpolate_values(
                value, env, source=source, path=f"{path}.{key}" if path else str(key)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [
            _interpolate_values(value, env, source=source, path=f"{path}[{i}]")
            for i, value in enumerate(data)
        ]
    return data


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<root>"


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        # Pydantic appends the union member or validator name to loc; keep the user's keys.
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {_key_path(loc)}: {message}")
    return "\n".join(lines)


def parse_config(text: str, env: Mapping[str, str], *, source: str) -> GatewayConfig:
    """Validate a YAML document (after interpolation) into a GatewayConfig."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    data = _interpolate_values(data, env, source=source, path="")
    if "models" not in data:
        # A file that does not mention `models` gets the embedded catalogue, as no file at
        # all does; it used to get no models, and every call a silent 404 (issue 19, item
        # 17). `models: []` still means none (the start-up log says so).
        data = {**data, "models": default_models()}
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """`--config`, then `$GATEWAY_CONFIG`, then `./config.yaml`; None means embedded defaults.

    A path that was asked for explicitly must exist; only the implicit `./config.yaml`
    may be absent.
    """
    for candidate in (explicit, env.get("GATEWAY_CONFIG")):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            return path
    implicit = Path("config.yaml")
    return implicit if implicit.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str]) -> GatewayConfig:
    """Read and validate a config file; `None` gives the embedded defaults."""
    if path is None:
        return default_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, env, source=str(path))


def masked_config(config: GatewayConfig) -> dict[str, Any]:
    """The effective config as plain data, with plaintext keys and DSN passwords hidden."""
    data = config.model_dump(mode="json")
    for key in data["auth"]["keys"]:
        if key.get("key") is not None:
            key["key"] = "***"
    for section in ("usage", "limits"):
        data[section]["store"] = _mask_dsn(data[section]["store"])
    for team in data["auth"]["teams"].values():
        # An external id is a shared secret between the role's account and ours.
        if team.get("external_id") is not None:
            team["external_id"] = "***"
    return data


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)@")
_QUERY_SECRET = re.compile(r"([?&;][^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)


def _mask_dsn(dsn: str) -> str:
    """Hide every password form: `user:pw@`, `:pw@` (Redis), `?password=` and a pw with `@`.

    The user info runs to the *last* `@` (greedy): a password may hold an unencoded `@`,
    and masking a little too much is harmless where showing a little of it is not.
    """

    def userinfo(match: re.Match[str]) -> str:
        user, sep, _ = match.group(2).partition(":")
        if not sep and match.group(1).lower().startswith("redis"):
            return f"{match.group(1)}***@"  # redis://secret@host: the lone part is the password
        return f"{match.group(1)}{user}{sep}{'***' if sep else ''}@"

    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(userinfo, dsn, count=1))
