"""Names users give things (chains, datasets, models, profiles, features).

A name may end up in a file name, a storage key, a record id or a URL, so it is checked
once, where it is read: 1 to 128 characters, letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or digit. That keeps every name inside the folder it names a
file in (no ``/``, no ``..``) and readable in ids such as ``mv-churn-3``.
"""

from __future__ import annotations

import re

from .errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(value: object, where: str, *, what: str = "name") -> str:
    """``value`` if it is a valid name, else a ConfigError naming ``where``."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: the {what} must be a non-empty string, got {value!r}")
    if not NAME.fullmatch(value):
        raise ConfigError(
            f"{where}: the {what} {value!r} may hold only letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return value
