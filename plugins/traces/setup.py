"""Starting trace capture from a configuration: which sinks and redactors, and the limits.

    from tether.plugins.traces import start_tracing
    tracer = start_tracing(".tether")                       # store sink, pii + secrets redactors
    tracer = start_tracing(".tether", {"sinks": [{"plugin": "jsonl"}, {"plugin": "otlp",
                           "params": {"endpoint": "http://127.0.0.1:4318/v1/traces"}}],
                           "redactors": [{"plugin": "pii"}, {"plugin": "secrets"},
                           {"plugin": "regex", "params": {"patterns": ["CUST-[0-9]{6}"]}}]})

Every key is validated before anything starts; errors name the key path
(``tracing.sinks[1].params.endpoint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether.errors import ConfigError, reject_unknown_keys

DEFAULT_SINKS = ({"plugin": "store"},)
OPTIONS = {"max_queue": 10_000, "batch_size": 512, "interval": 0.5, "max_value_chars": 65_536}
KEYS = ("sinks", "redactors", *OPTIONS)


def _specs(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of {{plugin, params}}, got {value!r}")
    for i, spec in enumerate(value):
        if not isinstance(spec, dict) or not isinstance(spec.get("plugin"), str):
            raise ConfigError(f"{where}[{i}]: expected {{plugin: NAME, params: {{...}}}}, got {spec!r}")
        reject_unknown_keys(spec, ["plugin", "params"], f"{where}[{i}]", what="key")
        if not isinstance(spec.get("params", {}), dict):
            raise ConfigError(f"{where}[{i}].params: expected a mapping, got {spec['params']!r}")
    return value


def _option(config: dict[str, Any], key: str, where: str) -> Any:
    value = config.get(key, OPTIONS[key])
    kind = float if key == "interval" else int
    low = {"max_queue": 1, "batch_size": 1, "max_value_chars": 64}.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) \
            or value < low or (key == "interval" and value <= 0):
        raise ConfigError(f"{where}.{key}: expected {'a number above 0' if kind is float else f'an integer >= {low}'}"
                          f", got {value!r}")
    return value


def build(config: dict[str, Any] | None, *, host: Any, workspace: str | Path = ".tether",
          where: str = "tracing") -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The sinks, redactors and tracer options ``config`` names, all built and opened."""
    from .redaction import DEFAULT_REDACTORS

    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected a mapping with {', '.join(KEYS)}, got {config!r}")
    reject_unknown_keys(config, list(KEYS), where, what="key")
    sinks = [host.backends.create("trace_sink", spec["plugin"], spec.get("params"), where=f"{where}.sinks[{i}]",
                                  workspace=workspace)
             for i, spec in enumerate(_specs(config.get("sinks", list(DEFAULT_SINKS)), f"{where}.sinks"))]
    redactors = [host.backends.create("redactor", spec["plugin"], spec.get("params"),
                                      where=f"{where}.redactors[{i}]")
                 for i, spec in enumerate(_specs(config.get("redactors", list(DEFAULT_REDACTORS)),
                                                 f"{where}.redactors"))]
    options = {key: _option(config, key, where) for key in OPTIONS}
    for sink in sinks:
        opener = getattr(sink, "open", None)  # optional part of the TraceSink contract
        if opener is not None:
            opener(host=host)
    return sinks, redactors, options


def start_tracing(workspace: str | Path = ".tether", config: dict[str, Any] | None = None, *,
                  host: Any = None, where: str = "tracing") -> Any:
    """Install the process-wide tracer with the sinks and redactors ``config`` names
    (default: the ``store`` sink, the ``pii`` and ``secrets`` redactors); return it."""
    from tether import tracing

    if host is None:
        from tether.manager import PluginHost

        host = PluginHost()
    sinks, redactors, options = build(config, host=host, workspace=workspace, where=where)
    return tracing.configure(sinks, redactors, **options)
