"""The snapshot stage: read a source, fingerprint its data, store it as immutable Parquet objects.

Data flows through in pieces of bounded size: each piece is written to a temporary Parquet
part in storage while a worker thread fingerprints and summarizes the previous one. When
the source is exhausted the parts are committed as content-addressed objects and only then
is the record written, so a snapshot is visible whole or not at all (``docs/snapshots.md``).

Modules:

- :mod:`.sources`: the source backends (``csv``, ``parquet``, ``python``, ``sql``);
- :mod:`.files`, :mod:`.database`: CSV/Parquet files and SQL query rows as record batches;
- :mod:`.checks`: column-name and declared-column checks shared by the readers;
- :mod:`.conform`: any input (DataFrame, table, batches, path) as bounded Arrow pieces;
- :mod:`.fingerprint`: the chunk-independent data fingerprint;
- :mod:`.card`: declared card fields, streamed column statistics, the card's text form;
- :mod:`.writer`: temporary Parquet parts in storage;
- :mod:`.create`: ``take_snapshot`` / ``create_snapshot`` (the Python API);
- :mod:`.read`: resolving references, verified read-back and export;
- :mod:`.diff`: comparing two snapshots;
- :mod:`.verify`: ``tether verify`` (re-hash, deep check, garbage collection);
- :mod:`.commands`: ``tether snapshots ...`` and ``tether verify``.
"""

from __future__ import annotations

from tether import hookimpl


@hookimpl(trylast=True)
def tether_snapshot(stage, context):
    # the runner has already preflighted this stage's backend, before the run started
    from .create import take_snapshot

    source = context.backend(stage)
    return take_snapshot(source.read(context=context), name=source.dataset or stage.id, source=source.describe(),
                         workspace=context.workspace, time_column=source.time_column, key=source.key,
                         card=source.card, context=context, log=context.log)


@hookimpl
def tether_add_backends(backends):
    from .sources import CsvSource, ParquetSource, PythonSource, SqlSource

    for backend in (CsvSource, ParquetSource, PythonSource, SqlSource):
        backends.add(backend)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)
