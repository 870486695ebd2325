"""Importing the user's own code named as ``module:function`` (steps, transforms, rules)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .errors import ConfigError


def import_callable(spec: str, *, where: str) -> Callable:
    """Import ``module:attribute`` and return it; errors are ConfigErrors naming ``where``."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"{where}: expected 'module:function', got {spec!r}")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{where}: cannot import '{module_name}': {type(exc).__name__}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"{where}: '{module_name}' has no callable '{attr}'")
    return func
