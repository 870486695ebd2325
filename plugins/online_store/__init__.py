"""Online stores: the latest value of every feature per entity, for serving.

Two functions of ``lookups`` hold the logic every online store shares, on top of the methods of the
``online_store`` contract (:class:`tether.backends.OnlineStore`), so they work with any
online store plugin:

* :func:`materialize` takes a feature frame (entity, feature timestamp,
  feature columns), keeps per entity and feature the latest row that is available (with
  ``as_of``, only rows whose ``feature_timestamp + lag <= as_of``), encodes every value,
  and only then writes, in one all-or-nothing write. A stored value is replaced only by a
  value with a newer feature timestamp, so materialisation is incremental (feed it only
  new rows) and idempotent (re-running it changes nothing).
* :func:`get_online_features` returns one row per requested entity, in
  order, with each feature's value, its feature timestamp (``<feature>__timestamp``) and
  its age at ``now`` (``<feature>__age``); a value older than its ``ttl`` counts as missing,
  and entities never materialised get nulls (or raise with ``strict=True``).

The built-in backend keeps everything in one SQLite file in the workspace
(``<workspace>/online.db``); ``tether.contrib.redis_online`` does the same in Redis.

Modules: ``lookups`` (``materialize``, ``get_online_features``, ``open_online_store``,
``latest_rows``, ``encode_value``, ``Row``) and ``sqlite`` (``SQLiteOnlineStore``).
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .sqlite import SQLiteOnlineStore

    backends.add(SQLiteOnlineStore)
