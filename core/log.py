"""Structured logs (structlog): human-readable on a terminal, JSON lines with ``json``.

Secrets never reach a log line: values of keys that look secret (``password``, ``token``,
``secret``, ``api_key``, ``dsn``...) are masked, and every value interpolated from an
environment variable into a chain config is registered with :func:`add_secret` and
masked wherever it appears.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api[_-]?key|credential|dsn|authorization", re.I)
MASK = "***"
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in later log events."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _redact_processor(_, __, event_dict):
    for key, value in list(event_dict.items()):
        if SECRET_KEYS.search(key):
            event_dict[key] = MASK
        elif isinstance(value, str) and _secrets:
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info", stream=None) -> None:
    """Configure structlog once per process; ``fmt`` is ``auto``, ``console`` or ``json``."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "tether", **bound):
    """A structlog logger; if the application has not configured structlog, tether logs
    warnings and errors to stderr (the CLI configures it from its options)."""
    if not structlog.is_configured():
        configure_logging("auto", "warning")
    return structlog.get_logger(name, **bound)
