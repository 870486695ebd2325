"""Execution engines: where a stage's partitioned work runs.

The built-in ``local`` engine (the default) runs it in the process with pandas and
pyarrow, exactly as the stages do without an engine; ``tether.contrib.dask`` adds the
``dask`` engine (``pip install 'tether[dask]'``). See docs/scaling.md.

Modules:

- :mod:`.partitions`: a Parquet file or folder as ordered partitions (one per file), and
  the reader both engines use for one partition;
- :mod:`.local`: the ``local`` engine.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .local import LocalEngine

    backends.add(LocalEngine)
