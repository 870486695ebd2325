"""Keeping secrets out of records, files and output.

Two kinds of secret are known: values interpolated from the environment (``${VAR}``),
registered with :func:`add_secret` when a chain is read, and literals written into a
chain under a key that looks secret (``password``, ``token``, ``dsn``...) or as the
password of a URL (``postgresql://user:pw@host``). :func:`mask_literals` replaces the
latter in the chain text a run records and in the sections a workspace remembers;
:func:`redact` masks both wherever they would be printed or logged.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api[_-]?key|credential|dsn|authorization", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.IGNORECASE)
MASK = "***"
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in later output and log events."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret, and any URL password, replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def literal_secrets(value: Any, key: str = "") -> list[str]:
    """Secret literals in a parsed (not yet interpolated) config: strings under secret-looking
    keys and URL passwords; ``${VAR}`` placeholders are not secrets."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in literal_secrets(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in literal_secrets(v, key)]
    if not isinstance(value, str) or not value or value.startswith("${"):
        return []
    found = [m.group("password") for m in URL_PASSWORD.finditer(value) if not m.group("password").startswith("${")]
    if SECRET_KEYS.search(key) and not URL_PASSWORD.search(value):
        found.append(value)
    return found


def mask_literals(value: Any, secrets: list[str]) -> Any:
    """``value`` (text, or nested dicts and lists) with each secret replaced by ``***``."""
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: mask_literals(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_literals(v, secrets) for v in value]
    return value
