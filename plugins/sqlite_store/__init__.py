"""The built-in metadata store: one SQLite file in the workspace (``<workspace>/tether.db``).

Modules:

- ``file``: ``SQLiteFile``, a SQLite file in the workspace (WAL mode, ``BEGIN IMMEDIATE``
  write transactions), shared with the online store. Concurrent first opens of a fresh
  file are safe: the switch to WAL is retried while another connection holds a lock
  (SQLite takes that lock without its busy handler), the schema is created in
  ``BEGIN IMMEDIATE``.
- ``store``: ``SQLiteStore``, the records schema of ``tether.plugins.sql_records`` in one.
  Every ``put`` is one transaction, so a record and its edges appear together or not at
  all. The database file is created on first write; reading a store that was never
  written creates nothing.

This module holds only the hook, so loading the plugin stays cheap.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .store import SQLiteStore

    backends.add(SQLiteStore)
