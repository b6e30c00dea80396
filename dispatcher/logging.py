"""structlog, configured once: JSON with Cloud Logging's ``severity`` or a readable console.

Logs go to stderr so that commands printing data (``plan --json``) keep stdout clean.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

_CLOUD_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "exception": "ERROR",
}


def _severity(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    level = event.pop("level", method)
    event["severity"] = _CLOUD_SEVERITY.get(level, level.upper())
    return event


def _message_key(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Cloud Logging shows `message` as the summary line of a structured entry.
    event["message"] = event.pop("event", "")
    return event


def configure(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger; safe to call more than once."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")  # noqa: TRY004 - a bad value, not a type
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: list[structlog.types.Processor]
    if fmt == "json":
        renderer = [_severity, _message_key, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)


def get_logger(**bound: Any) -> Any:
    """A lazy logger: safe at import time, it takes the configuration in force when used."""
    return structlog.get_logger("burst_dispatcher", **bound)
