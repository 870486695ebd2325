"""Structured logs (structlog): human-readable on a terminal, JSON lines with ``json``.

Secrets never reach a log line: values of keys that look secret (``password``, ``token``,
``secret``, ``api_key``, ``dsn``...) are masked, and every value interpolated from an
environment variable into a chain config is masked wherever it appears
(:mod:`tether.secrets`).

structlog is imported when the first event is logged, not when tether is imported, so
commands that log nothing (``tether --help``) do not pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

from .secrets import MASK, SECRET_KEYS, redact


def _redact_processor(_, __, event_dict):
    for key, value in list(event_dict.items()):
        if SECRET_KEYS.search(key):
            event_dict[key] = MASK
        elif isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


_pending: tuple[str, str, Any] | None = None
_format = "auto"  # the format last asked for (``auto``, ``console`` or ``json``)
_live = True  # whether live displays (progress bars, spinners) may be drawn on stderr


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is when a line is logged (it may be replaced)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(fmt: str = "auto", level: str = "info", stream=None) -> None:
    """Configure structlog for this process; ``fmt`` is ``auto``, ``console`` or ``json``.
    Applied now if structlog is in use, else when the first event is logged."""
    global _pending, _format
    _pending = (fmt, level, stream)
    _format = fmt
    if "structlog" in sys.modules:
        _apply_configuration()


def suppress_live_output(suppress: bool = True) -> None:
    """Draw no live display (progress bar, spinner) on stderr until called with ``False``:
    the CLI suppresses them while a ``--json`` command runs (its output is for programs)."""
    global _live
    _live = not suppress


def live_output() -> bool:
    """Whether a live display may be drawn on stderr: it is a terminal, the logs are not
    JSON lines and :func:`suppress_live_output` was not called."""
    return _live and _format != "json" and sys.stderr.isatty()


def _apply_configuration() -> None:
    import logging

    import structlog

    global _pending
    fmt, level, stream = _pending or ("auto", "warning", None)
    _pending = None
    stream = stream or _CurrentStderr()
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


class _Logger:
    """A bound logger that imports and configures structlog on its first event."""

    __slots__ = ("_bound", "_name", "_real")

    def __init__(self, name: str, bound: dict[str, Any]) -> None:
        self._name, self._bound, self._real = name, bound, None

    def bind(self, **values: Any) -> _Logger:
        return _Logger(self._name, {**self._bound, **values})

    def __getattr__(self, method: str) -> Any:
        if self._real is None:
            import structlog

            if _pending is not None or not structlog.is_configured():
                _apply_configuration()
            self._real = structlog.get_logger(self._name, **self._bound)
        return getattr(self._real, method)


def get_logger(name: str = "tether", **bound: Any) -> Any:
    """A structlog logger; if the application has not configured structlog, tether logs
    warnings and errors to stderr (the CLI configures it from its options)."""
    return _Logger(name, bound)
