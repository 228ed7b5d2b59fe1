"""Structured logs: one JSON object per line, for our own lines and uvicorn's alike.

Log collectors (Fluent Bit, CloudWatch, Loki) index JSON fields without regexes, so the
access line carries request_id, key_id, team, model, status, tokens and timings as fields.
Prompts, completions and keys are never logged unless `logging.log_prompts` is true (and
keys not even then).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.config import LoggingConfig

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging"]

ACCESS_LOGGER = "gateway.access"

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(config: LoggingConfig) -> None:
    """Route the root, gateway and uvicorn loggers through one stderr handler and format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    level = getattr(logging, config.level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gateway"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(level)
    # Our middleware writes the access line; uvicorn's would be a second, poorer one.
    logging.getLogger("uvicorn.access").disabled = True
    # botocore logs request details at debug; never let them out, even at debug level.
    for noisy in ("botocore", "aiobotocore", "aioboto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn `log_config` that leaves handler set-up to `configure_logging`."""
    return {"version": 1, "disable_existing_loggers": False}
