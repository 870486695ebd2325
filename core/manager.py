"""The plugin host: which plugins are loaded, in which order, and how to reach them.

Load order (each a fresh host; there is no global manager):

1. ``ESSENTIAL_PLUGINS``: the built-ins every chain relies on; they cannot be disabled.
2. ``DEFAULT_PLUGINS``: optional built-ins and the contrib plugins. A contrib plugin
   whose extra is missing still loads (it imports its libraries lazily) and reports
   itself unavailable with the ``pip install`` to run.
3. Entry points in the group ``tether``, imported only when first needed (a hook call,
   a backend name not found among the loaded ones, or a listing), minus the names in
   ``TETHER_DISABLE_PLUGINS`` (comma separated).
4. Modules a chain names under ``plugins:`` (dotted paths).

After each step ``check_pending()`` rejects implementations of hooks that do not exist.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .backends import Backends
from .errors import PluginError
from .extras import install_hint
from .log import get_logger

ENTRY_POINT_GROUP = "tether"

ESSENTIAL_PLUGINS: tuple[str, ...] = (
    "tether.plugins.local_storage",
    "tether.plugins.sqlite_store",
    "tether.plugins.snapshots",
    "tether.plugins.splits",
    "tether.plugins.leakage",
    "tether.plugins.features",
    "tether.plugins.evaluation",
    "tether.plugins.registry",
    "tether.plugins.bundles",
    "tether.plugins.rollout",
    "tether.plugins.monitoring",
    "tether.plugins.tracking",
    "tether.plugins.engines",
)

DEFAULT_PLUGINS: tuple[str, ...] = (
    "tether.plugins.traces",
    "tether.plugins.online_store",
    "tether.contrib.redis_online",
    "tether.contrib.postgres",
    "tether.contrib.s3",
    "tether.contrib.otlp",
    "tether.contrib.serve",
    "tether.contrib.mlflow",
    "tether.contrib.dask",
)


class PluginHost:
    """A pluggy manager with tether's load order, its backend registry and lazy entry points."""

    def __init__(self, *, entry_points: bool = True, disabled: Iterable[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.log = get_logger("tether.plugins")
        if disabled is None:
            disabled = [n.strip() for n in os.environ.get("TETHER_DISABLE_PLUGINS", "").split(",")]
        self.disabled = {n for n in disabled if n}
        essential = sorted(self.disabled & set(ESSENTIAL_PLUGINS))
        if essential:
            raise PluginError(
                f"TETHER_DISABLE_PLUGINS names the essential plugin '{essential[0]}', which cannot be "
                "disabled (every chain relies on it); remove it from the list"
            )
        for name in self.disabled:
            self.pm.set_blocked(name)
        self._backends = Backends(on_miss=self.load_entry_points)
        self._backends_added = False
        self.origins: dict[str, dict[str, Any]] = {}
        for module in ESSENTIAL_PLUGINS + DEFAULT_PLUGINS:
            self.register_module(module, origin="builtin" if module in ESSENTIAL_PLUGINS else "default")
        self._pending = self._discover_entry_points() if entry_points else []
        self.pm.hook.tether_configure.call_historic(kwargs={"host": self})

    @property
    def backends(self) -> Backends:
        """The backend registry, filled through ``tether_add_backends`` on first use (so a
        command that needs no backend, such as ``tether --help``, imports none)."""
        if not self._backends_added:
            self._backends_added = True
            self.pm.hook.tether_add_backends.call_historic(kwargs={"backends": self._backends})
        return self._backends

    # -- loading ---------------------------------------------------------------------------

    def _discover_entry_points(self) -> list[metadata.EntryPoint]:
        found = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.disabled or self.pm.has_plugin(ep.name):
                continue
            found.append(ep)
        return found

    def register_module(self, dotted: str, *, origin: str, name: str | None = None) -> None:
        """Import ``dotted`` and register it; failures name the plugin."""
        name = name or dotted
        if name in self.disabled or self.pm.has_plugin(name):
            return
        try:
            module = importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            if exc.name and dotted.startswith(exc.name):
                raise PluginError(f"plugin module '{dotted}' not found: {exc}") from None
            raise PluginError(f"plugin '{name}' failed to import: {exc}") from None
        except Exception as exc:
            raise PluginError(f"plugin '{name}' failed to import: {type(exc).__name__}: {exc}") from None
        self._register(module, name=name, origin=origin)

    def _register(self, plugin: Any, *, name: str, origin: str, dist: Any = None) -> None:
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            raise PluginError(f"plugin '{name}' is invalid: {exc}") from None
        except PluginError:
            self.pm.unregister(name=name)
            raise
        self.origins[name] = {
            "origin": origin,
            "distribution": getattr(dist, "name", None) if dist else None,
            "version": getattr(dist, "version", None) if dist else None,
        }

    def load_entry_points(self) -> None:
        """Import every pending entry-point plugin (idempotent)."""
        pending, self._pending = self._pending, []
        for ep in pending:
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin '{ep.name}' ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                ) from None
            self._register(plugin, name=ep.name, origin="entry point", dist=ep.dist)
            self.log.debug("plugin loaded", plugin=ep.name)

    def register(self, plugin: Any, *, name: str | None = None) -> None:
        """Register an object or module directly (tests, embedding applications)."""
        if isinstance(plugin, type):
            raise PluginError(
                f"register() takes a module or an instance, got the class {plugin.__name__}; "
                "have you forgotten the ()?"
            )
        self._register(plugin, name=name or getattr(plugin, "__name__", repr(plugin)), origin="registered")

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hook relay; entry-point plugins are loaded before any hook is called."""
        if self._pending:
            self.load_entry_points()
        return self.pm.hook

    # -- reporting -------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with its hooks, backends and availability (``tether plugins``)."""
        self.load_entry_points()
        plugins = [(name, plugin, getattr(plugin, "__name__", type(plugin).__module__))
                   for name, plugin in self.pm.list_name_plugin() if plugin is not None]
        backends_by_module: dict[str, list[type]] = {}
        for cls in self.backends:  # a class belongs to the plugin module (or package) holding it
            owners = [m for _, _, m in plugins if cls.__module__ == m or cls.__module__.startswith(m + ".")]
            if owners:
                backends_by_module.setdefault(max(owners, key=len), []).append(cls)
        rows = []
        for name, plugin, module in plugins:
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            classes = backends_by_module.get(module, [])
            missing = sorted({m for cls in classes for m in cls.missing_requirements()})
            extras = sorted({cls.extra for cls in classes if cls.extra})
            info = self.origins.get(name, {})
            rows.append(
                {
                    "name": name,
                    "origin": info.get("origin", "registered"),
                    "distribution": info.get("distribution"),
                    "version": info.get("version") or _tether_version(),
                    "hooks": hooks,
                    "backends": sorted(f"{c.kind}:{c.name}" for c in classes),
                    "available": not missing,
                    "install": install_hint(extras) if missing and extras else None,
                    "missing": missing,
                }
            )
        return rows


def _tether_version() -> str:
    from . import __version__

    return __version__
