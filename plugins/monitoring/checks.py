"""The shape of a backend named inside monitor params (sinks, rollback, window source);
the number checks are the shared ones of :mod:`tether.validators`."""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigError


def backend_spec(raw: Any, key: str, cls: type) -> None:
    """``{plugin: NAME, params: {...}}``: the shape of a backend named in params (the
    backend itself is built by the monitor's ``preflight``, which knows the plugins)."""
    from tether.errors import reject_unknown_keys

    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping {{plugin, params}}, got {raw!r}", key=key)
    try:
        reject_unknown_keys(raw, ("plugin", "params"), key)
    except ConfigError as exc:
        raise ConfigError(str(exc).split(": ", 1)[1], key=key) from None
    if not isinstance(raw.get("plugin"), str) or not raw.get("plugin"):
        raise ConfigError(f"required, a plugin name; got {raw.get('plugin')!r}", key=f"{key}.plugin")
    if not isinstance(raw.get("params") or {}, dict):
        raise ConfigError(f"expected a mapping, got {raw.get('params')!r}", key=f"{key}.params")
