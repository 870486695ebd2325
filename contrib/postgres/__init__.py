"""PostgreSQL metadata store (extra ``postgres``): the SQLite store's schema on a server.

For teams that share one registry: records, runs, lineage and metrics in PostgreSQL,
written in transactions through a connection pool (``psycopg_pool``; ``pool_size``
connections at most). Each workspace lives in its own schema: opening the store creates
the schema and applies the pending versioned migrations (under an advisory lock, so
concurrent first openers of a fresh or old schema never race), every table is qualified
with the schema and ``search_path`` is that schema only, so a workspace never reads or
writes another schema's tables. Model versions are
numbered under a transaction-scoped advisory lock, so two registrations of the same
model name never get the same number, and ``put_versioned(..., unchanged=)`` compares
the latest version under that same lock (concurrent applies of one feature catalogue
store each definition once). The connection string usually comes from the
environment: ``store: {plugin: postgres, params: {dsn: "${TETHER_PG_DSN}"}}``; it is
never logged, and errors name the server as ``host:port/db`` only.

Modules: ``store`` holds ``PostgresStore``; this module holds only the hook, so loading
the plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .store import PostgresStore

    backends.add(PostgresStore)
