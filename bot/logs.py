"""Logging: JSON lines when not on a TTY, readable lines on a TTY, and secrets scrubbed from both.

Secrets (the key, tokens, signatures) are registered as they come into being; a filter on every
handler replaces them in the formatted message, so even a careless `log.debug(f"{x}")` is safe.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

REDACTED = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_STD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    """From now on, `value` is replaced by *** in every log line (ignored when too short)."""
    if value and len(value) >= 8:
        with _lock:
            _secrets.add(value)
            if value.startswith("0x"):
                _secrets.add(value[2:])


def scrub(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STD_ATTRS and not k.startswith("_")
        )
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line}  {extras}" if extras else line
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Install one handler on the root logger (idempotent: replaces the previous one)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(RedactingFilter())
    handler.set_name("alura-bot")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "alura-bot"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(noisy).setLevel(quiet)
