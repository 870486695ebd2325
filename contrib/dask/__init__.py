"""The ``dask`` execution engine (extra ``dask``: ``dask[dataframe]`` and ``distributed``).

A chain runs its partitioned work on an existing cluster or on a local one it starts::

    engine: {plugin: dask, params: {address: "tcp://scheduler:8786"}}
    engine: {plugin: dask, params: {workers: 2, memory_limit: "2GiB"}}

Workers need tether installed and must see the data paths the chain names (a shared file
system). See docs/scaling.md for what runs distributed and how results match the local
engine's.

Modules: ``engine`` holds ``DaskEngine`` (cluster connection, ordered streaming, error
mapping); ``tasks`` the functions that run on workers. This module holds only the hook,
so loading the plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .engine import DaskEngine

    backends.add(DaskEngine)
