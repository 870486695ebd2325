"""Validators for backend parameters (attrs ``validator=``), shared by every plugin.

Each raises :class:`~tether.errors.ConfigError` with the parameter as ``key``, so a chain's
error names the whole key path however deep the parameter sits
(``stages[3].params.drift.sketch_size: must be at least 2, got 0``). ``None`` passes, for
optional parameters.

    sketch_size: int = attrs.field(default=4096, validator=at_least(2))
    critical_share: float = attrs.field(default=0.5, validator=share)
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(low: float):
    """Validator: a number ``>= low`` (``None`` allowed)."""
    def check(inst, attribute, value) -> None:
        if value is not None and (not _number(value) or value < low):
            raise ConfigError(f"must be at least {low:g}, got {value!r}", key=attribute.name)
    return check


def above(low: float):
    """Validator: a number ``> low`` (``None`` allowed)."""
    def check(inst, attribute, value) -> None:
        if value is not None and (not _number(value) or value <= low):
            raise ConfigError(f"must be above {low:g}, got {value!r}", key=attribute.name)
    return check


def share(inst, attribute, value) -> None:
    """Validator: a share in ``[0, 1]`` (``None`` allowed)."""
    if value is not None and (not _number(value) or not 0 <= value <= 1):
        raise ConfigError(f"a share must be in [0, 1], got {value!r}", key=attribute.name)


def within(low: float, high: float, *, open_low: bool = False, open_high: bool = False, what: str = "must be"):
    """Validator: a number in ``[low, high]`` (ends open as asked)."""
    text = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def check(inst, attribute, value) -> None:
        ok = _number(value) and (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high)
        if value is not None and not ok:
            raise ConfigError(f"{what} in {text}, got {value!r}", key=attribute.name)
    return check


def single_character(inst, attribute, value) -> None:
    """Validator: exactly one character (a CSV delimiter)."""
    if not isinstance(value, str) or len(value) != 1:
        raise ConfigError(f"must be one character, got {value!r}", key=attribute.name)


def one_of(*choices: Any):
    """Validator: one of ``choices`` (``None`` allowed)."""
    def check(inst, attribute, value) -> None:
        if value is not None and value not in choices:
            raise ConfigError(f"{value!r} is not one of {', '.join(map(str, choices))}", key=attribute.name)
    return check
