"""tether: reproducible, traceable, monitorable machine-learning systems.

The core defines the lifecycle as hooks (:mod:`tether.hookspecs`), the records that flow
between stages (:mod:`tether.records`), chain configs, the runner and the CLI. Backends
come from plugins. Importing ``tether`` imports nothing heavy.
"""

from .errors import (
    CheckFailed,
    ConfigError,
    DataError,
    DeploymentError,
    IntegrityError,
    NotFoundError,
    PluginError,
    SchemaError,
    StageError,
    StoreError,
    TetherError,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

#: public names imported on first use, so ``import tether`` stays light: name -> module
_LAZY = {"start_run": "tether.tracking", "evaluate": "tether.plugins.evaluation.api",
         "span": "tether.tracing", "traced": "tether.tracing"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CheckFailed",
    "ConfigError",
    "DataError",
    "DeploymentError",
    "IntegrityError",
    "NotFoundError",
    "PluginError",
    "SchemaError",
    "StageError",
    "StoreError",
    "TetherError",
    "__version__",
    "evaluate",
    "hookimpl",
    "span",
    "start_run",
    "traced",
]
