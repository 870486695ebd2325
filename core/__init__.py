"""tether: reproducible, traceable, monitorable machine-learning systems.

The core defines the lifecycle as hooks (:mod:`tether.hookspecs`), the records that flow
between stages (:mod:`tether.records`), chain configs, the runner and the CLI. Backends
come from plugins. Importing ``tether`` imports nothing heavy.
"""

from .errors import (
    CheckFailed,
    ConfigError,
    DataError,
    IntegrityError,
    NotFoundError,
    PluginError,
    StageError,
    StoreError,
    TetherError,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "CheckFailed",
    "ConfigError",
    "DataError",
    "IntegrityError",
    "NotFoundError",
    "PluginError",
    "StageError",
    "StoreError",
    "TetherError",
    "__version__",
    "hookimpl",
]
