"""Redactors (backend kind ``redactor``): mask personal data and secrets in trace text.

* ``pii`` - e-mail addresses and phone numbers (9 to 15 digits, with the usual
  separators; dates and short numbers are left alone);
* ``secrets`` - API keys and tokens by their well-known prefixes (``sk-``, ``ghp_``,
  ``github_pat_``, ``AKIA``/``ASIA``, ``xox?-``, ``AIza``, ``glpat-``), bearer and basic
  authorization values, JSON web tokens, private-key blocks, ``key=value`` pairs whose
  key looks secret, values registered with :func:`tether.secrets.add_secret`, and any
  other long high-entropy token (a random secret with no known prefix);
* ``regex`` - the patterns a configuration lists.

The tracer runs them on every string of a span before any sink sees it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, ClassVar

import attrs
from tether.backends import Redactor
from tether.errors import ConfigError

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![\w+])\+?(?:\(\d{1,4}\)[ .-]?)?\d[\d .()-]{6,}\d(?![\w])")

#: one alternation, so a string is scanned once: (group, pattern, replacement or None for a
#: group handled by :func:`_secret`)
SECRET_PATTERNS: tuple[tuple[str, str, str | None], ...] = (
    ("pem", r"(?s:-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z))", "[PRIVATE KEY]"),
    ("auth", r"\b(?P<scheme>(?i:Bearer|Basic|Token))\s+[A-Za-z0-9._~+/=-]{8,}", None),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[SECRET]"),
    ("openai", r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{16,}", "[SECRET]"),
    ("git", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,})", "[SECRET]"),
    ("aws", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[SECRET]"),
    ("slack", r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "[SECRET]"),
    ("google", r"\bAIza[0-9A-Za-z_-]{35}", "[SECRET]"),
    ("pair", r"(?P<key>(?i:\b(?:api[_-]?key|access[_-]?key|secret|token|password|passwd|pwd))[\"']?\s*[:=]\s*[\"']?)"
             r"[^\s\"',;]{4,}", None),
    ("token", r"[A-Za-z0-9+/_=-]{24,}", None),  # a long token: masked if it looks random
)
SECRETS = re.compile("|".join(f"(?P<{group}>{pattern})" for group, pattern, _ in SECRET_PATTERNS))
REPLACEMENTS = {group: replacement for group, _, replacement in SECRET_PATTERNS}
#: digests, UUIDs and record ids (``retrieval-3f2a…``): hex, maybe after a word prefix
HEX_OR_UUID = re.compile(r"(?:sha256:|blake3:|[a-z][a-z_]*-)?[0-9a-fA-F-]+")


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(token: str, min_entropy: float) -> bool:
    if HEX_OR_UUID.fullmatch(token):  # digests, UUIDs and record ids are not secrets
        return False
    kinds = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return kinds >= 2 and any(c.isdigit() for c in token) and entropy(token) >= min_entropy


def _phone(match: re.Match) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[PHONE]" if 9 <= digits <= 15 else match.group(0)


@attrs.frozen(kw_only=True)
class PiiRedactor(Redactor):
    """E-mail addresses and phone numbers."""

    name: ClassVar[str] = "pii"
    emails: bool = True
    phones: bool = True

    def redact(self, text: str) -> str:
        if self.emails and "@" in text:
            text = EMAIL.sub("[EMAIL]", text)
        if self.phones:
            text = PHONE.sub(_phone, text)
        return text


def _min_entropy(inst, attribute, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 8:
        raise ConfigError(f"must be in (0, 8] bits per character, got {value!r}", key=attribute.name)


@attrs.frozen(kw_only=True)
class SecretsRedactor(Redactor):
    """API keys, tokens and other secrets (see the module docstring)."""

    name: ClassVar[str] = "secrets"
    high_entropy: bool = True
    min_entropy: float = attrs.field(default=4.0, validator=_min_entropy)

    def redact(self, text: str) -> str:
        from tether.secrets import redact as known_secrets

        return SECRETS.sub(self._secret, known_secrets(text))

    def _secret(self, match: re.Match) -> str:
        group = match.lastgroup
        if group == "auth":
            return f"{match.group('scheme')} [SECRET]"
        if group == "pair":
            return f"{match.group('key')}[SECRET]"
        if group == "token":
            token = match.group(0)
            return "[SECRET]" if self.high_entropy and _looks_random(token, self.min_entropy) else token
        return REPLACEMENTS[group]


def _patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list of regular expressions, got {value!r}", key="patterns")
    for i, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"expected a regular expression, got {pattern!r}", key=f"patterns[{i}]")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"invalid regular expression {pattern!r}: {exc}", key=f"patterns[{i}]") from None
    return tuple(value)


@attrs.frozen(kw_only=True)
class RegexRedactor(Redactor):
    """Each match of ``patterns`` (Python regular expressions) becomes ``replacement``."""

    name: ClassVar[str] = "regex"
    patterns: Any = attrs.field(converter=_patterns)
    replacement: str = "[REDACTED]"
    _compiled: tuple = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(re.compile(p) for p in self.patterns))

    def redact(self, text: str) -> str:
        for pattern in self._compiled:
            text = pattern.sub(self.replacement, text)
        return text


REDACTORS = (PiiRedactor, SecretsRedactor, RegexRedactor)
DEFAULT_REDACTORS = ({"plugin": "pii"}, {"plugin": "secrets"})
