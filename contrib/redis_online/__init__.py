"""Redis online store (``pip install 'tether[redis]'``).

Layout: one hash per entity, ``<prefix><view>:<entity_id>``, with a field per feature
(the JSON value) and ``<feature>@ts`` (its feature timestamp, as fixed-width digits so
Redis compares them as text without losing nanoseconds); the view's entity column and
feature names live in the hash ``<prefix><view>:__view__``.

A write is one ``MULTI``/``EXEC`` transaction of Lua calls that replace a value only when
the new feature timestamp is newer, so nothing is applied unless everything is, and
re-running a materialisation changes nothing. The server is pinged before every write;
a server that is down is a one-line :class:`~tether.errors.StoreError`.

Modules: ``store`` holds ``RedisOnlineStore`` and its Lua script; this module holds only
the hook, so loading the plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .store import RedisOnlineStore

    backends.add(RedisOnlineStore)
