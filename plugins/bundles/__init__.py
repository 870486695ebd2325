"""Bundles: verified, content-addressed packages of a model version.

A bundle holds the fitted model and transform (skops by default, with the exact types it
needs trusted), the input/output schema, the package versions and the model card of one
model version; loading it checks its hash before anything is deserialized and validates
input rows against its schema. See ``docs/deploy.md``.

Modules: :mod:`.record` (the ``bundle`` record kind and its digest), :mod:`.artifacts`
(skops / pickle), :mod:`.schema` (inference and validation), :mod:`.build`
(``build_bundle``) and :mod:`.loaded` (``load_bundle``, ``LoadedBundle``). The Python API
is importable from this package::

    from tether.plugins.bundles import build_bundle, load_bundle
"""

from tether import hookimpl

_API = {"build_bundle": "build", "load_bundle": "loaded", "LoadedBundle": "loaded", "find_bundle": "loaded"}


def __getattr__(name: str):
    """``build_bundle``, ``load_bundle``, ``find_bundle`` and ``LoadedBundle``, imported on first use."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def tether_add_backends(backends):
    from . import record  # noqa: F401 - defines the record kind "bundle"
