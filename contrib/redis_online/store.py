"""``RedisOnlineStore``: one hash per entity, values replaced by a Lua script only when the
new feature timestamp is newer, all in one ``MULTI``/``EXEC`` transaction. ``redis`` is
imported on first use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
from tether.backends import OnlineStore
from tether.errors import StoreError
from tether.plugins.online_store.lookups import Row

_OFFSET = 2**62  # shifts pre-1970 timestamps above zero before zero-padding
_WIDTH = 20

# KEYS: entity hashes; ARGV: (feature, value, padded timestamp) per key. Returns changes.
# Every key is checked before anything is written, so a bad key fails the whole call.
_UPSERT_NEWER = """
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' and kind ~= 'none' then
    return redis.error_reply('key ' .. key .. ' holds a ' .. kind .. ', not a hash')
  end
end
local changed = 0
for i, key in ipairs(KEYS) do
  local field, value, ts = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local current = redis.call('HGET', key, field .. '@ts')
  if (not current) or current < ts then
    redis.call('HSET', key, field, value, field .. '@ts', ts)
    changed = changed + 1
  end
end
return changed
"""


def _pad(ts_ns: int) -> str:
    return str(ts_ns + _OFFSET).zfill(_WIDTH)


def _unpad(text: str | bytes) -> int:
    return int(text) - _OFFSET


@attrs.define(kw_only=True)
class RedisOnlineStore(OnlineStore):
    """The latest feature values in Redis; ``url`` like ``redis://127.0.0.1:6379/0``."""

    name: ClassVar[str] = "redis"
    requires: ClassVar[tuple[str, ...]] = ("redis",)
    extra: ClassVar[str | None] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "tether:online:"
    timeout: float = 2.0
    batch: int = 2000
    _client: Any = attrs.field(default=None, init=False, repr=False)

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"redis://{parts.hostname}:{parts.port or 6379}{parts.path} (prefix {self.prefix!r})"

    @property
    def client(self):
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.url, socket_timeout=self.timeout,
                                                socket_connect_timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def check(self) -> None:
        import redis

        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreError(f"online store {self.describe()} is not reachable: {exc}; "
                             "start Redis or fix the url") from None

    def _key(self, view: str, entity_id: str) -> str:
        return f"{self.prefix}{view}:{entity_id}"

    def write(self, view: str, rows: list[Row], *, entity: str, features: Sequence[str]) -> int:
        import redis

        meta_key = self._key(view, "__view__")
        try:
            known = self.client.hget(meta_key, "features")
            merged = list(json.loads(known)) if known else []
            merged += [f for f in features if f not in merged]
            keys = list(dict.fromkeys(self._key(view, k) for k, *_ in rows))
            check = self.client.pipeline(transaction=False)
            for key in keys:
                check.type(key)
            for key, kind in zip(keys, check.execute()):
                kind = kind.decode() if isinstance(kind, bytes) else kind
                if kind not in ("hash", "none"):
                    raise StoreError(f"online store {self.describe()}: key '{key}' holds a {kind}, not a hash; "
                                     f"nothing written to view '{view}' (delete the key or use another prefix)")
            pipe = self.client.pipeline(transaction=True)  # MULTI ... EXEC: all or nothing
            for start in range(0, len(rows), self.batch):
                chunk = rows[start:start + self.batch]
                args: list[str] = []
                for _, feature, value, ts in chunk:
                    args += [feature, value, _pad(ts)]
                pipe.eval(_UPSERT_NEWER, len(chunk), *[self._key(view, k) for k, *_ in chunk], *args)
            pipe.hset(meta_key, mapping={"entity": entity, "features": json.dumps(merged)})
            results = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"online store {self.describe()}: write to view '{view}' failed: {exc}") from None
        return int(sum(results[:-1]))

    def read(self, view: str, keys: Sequence[str], features: Sequence[str]) -> dict[tuple[str, str], tuple[str, int]]:
        import redis

        unique = list(dict.fromkeys(keys))
        fields = [f for feature in features for f in (feature, f"{feature}@ts")]
        try:
            pipe = self.client.pipeline(transaction=False)
            for k in unique:
                pipe.hmget(self._key(view, k), fields)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"online store {self.describe()}: read from view '{view}' failed: {exc}") from None
        found = {}
        for k, values in zip(unique, replies):
            for i, feature in enumerate(features):
                value, ts = values[2 * i], values[2 * i + 1]
                if value is not None and ts is not None:
                    found[(k, feature)] = (value.decode(), _unpad(ts))
        return found

    def view_info(self, view: str) -> dict[str, Any] | None:
        import redis

        try:
            meta = self.client.hgetall(self._key(view, "__view__"))
        except redis.RedisError as exc:
            raise StoreError(f"online store {self.describe()} is not reachable: {exc}") from None
        if not meta:
            return None
        return {"entity": meta[b"entity"].decode(), "features": json.loads(meta[b"features"])}

    def drop_view(self, view: str) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}{view}:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start:start + 1000])

