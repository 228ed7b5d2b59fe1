"""Structured logs: one JSON object per line, for our own lines and uvicorn's alike.

Log collectors (Fluent Bit, CloudWatch, Loki) index JSON fields without regexes, so the
access line carries request_id, key_id, team, model, status, tokens and timings as fields.
Prompts, completions and keys are never logged unless `logging.log_prompts` is true (and
keys not even then).

With `log_prompts: true` the access line gains `prompt` and `completion`, taken from the
request's context (`gateway.pipeline.finish`): a surface's parsed request names what the
prompt is, and its response or stream encoder what the completion was. While the setting
is false they are left out, whatever a surface put there. The caller's API key cannot
reach the line even then: it travels in a header, and the line is an allow-list of record
fields plus these two.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.config import LoggingConfig

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging"]

ACCESS_LOGGER = "gateway.access"


# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# uvicorn passes `color_message` (the message with ANSI colour codes) for terminals; in a
# structured line it would only repeat the message with escape bytes in it.
_DROPPED = _STANDARD | {"color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _DROPPED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        try:
            # One line per request: orjson is several times faster than json here.
            return orjson.dumps(data, default=str).decode()
        except (orjson.JSONEncodeError, TypeError):  # a lone surrogate, say: json escapes it
            return json.dumps(data, default=str, separators=(",", ":"))


# C0 and C1 controls and DEL: a newline or CR would forge a line, an ESC recolour a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _escape_control(text: str) -> str:
    """Control characters as `\\xNN`, the way the JSON format escapes them (issue 19)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _text_value(value: object) -> str:
    text = str(value)
    if _NEEDS_QUOTES.search(text):  # could be read as another field: a JSON string
        text = json.dumps(text, ensure_ascii=False)
    return _escape_control(text)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> key=value ...`, one physical line per record.

    Caller text (a model id, a `user`, a header) reaches log lines, so the message and the
    fields have their control characters escaped: no value can start a line of its own.
    A traceback keeps its lines, each indented, so it cannot look like a record either.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = _escape_control(record.getMessage())
        line = self._fmt_line(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _DROPPED and not k.startswith("_")
        }
        if extras:
            line += " " + " ".join(
                f"{_escape_control(k)}={_text_value(v)}" for k, v in extras.items()
            )
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n    {part}" for part in trace.splitlines())
        return line

    def _fmt_line(self, record: logging.LogRecord) -> str:
        record.asctime = self.formatTime(record, self.datefmt)
        return self.formatMessage(record)


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
    # What no line of ours prints, the logging module need not find out for every record:
    # the caller's file and line (a walk up the stack), the thread, the process id (a
    # system call) and the multiprocessing name. The logging HOWTO's "Optimization"
    # section names these switches; with access lines on they were a tenth of the cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Our middleware writes the access line; uvicorn's would be a second, poorer one.
    logging.getLogger("uvicorn.access").disabled = True
    # botocore logs request details at debug; never let them out, even at debug level.
    for noisy in ("botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn `log_config` that leaves handler set-up to `configure_logging`."""
    return {"version": 1, "disable_existing_loggers": False}
