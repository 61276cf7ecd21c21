"""Redis online store whose writes keep the newest row per entity key (see the package docstring)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from feast.feature_view import FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key, _redis_key_prefix
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped,unused-ignore]
from pydantic import StrictStr
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.online.stores import newest_per_entity
from service.training.offline.order import to_ns

WriteRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

# Compare-and-write of one entity hash, atomic because Redis runs a script without interleaving.
# KEYS[1]: the entity's hash (Feast's layout: serialized entity key + project).
# ARGV: [1] event-ts field "_ts:<view>", [2] created-ts field "_created_ts:<view>",
#       [3] new event ts (Timestamp proto), [4] its seconds, [5] its nanos,
#       [6] "1" if the row has a created ts else "0", [7] created ts (Timestamp proto), [8] its seconds,
#       [9] its nanos, [10] key TTL in seconds (0: none), [11..] feature field/value pairs.
# Returns 1 when written, 0 when the stored row is newer and was kept.
_ORDERED_WRITE_LUA = """
local function read_varint(s, i)
  local groups = {}
  repeat
    local b = string.byte(s, i)
    i = i + 1
    groups[#groups + 1] = b % 128
  until b < 128
  local v = 0
  if #groups == 10 then  -- negative int64 (two's complement): -(~v + 1) using the low 63 bits
    for k = 9, 1, -1 do v = v * 128 + (127 - groups[k]) end
    return -(v + 1), i
  end
  for k = #groups, 1, -1 do v = v * 128 + groups[k] end
  return v, i
end

-- google.protobuf.Timestamp: field 1 (tag 0x08) seconds, field 2 (tag 0x10) nanos, both varints.
local function decode_ts(s)
  local secs, nanos, i = 0, 0, 1
  while i <= #s do
    local tag = string.byte(s, i)
    local v
    v, i = read_varint(s, i + 1)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  return secs, nanos
end

local function cmp(s1, n1, s2, n2)
  if s1 ~= s2 then return s1 < s2 and -1 or 1 end
  if n1 ~= n2 then return n1 < n2 and -1 or 1 end
  return 0
end

local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[1])
if stored then
  local s, n = decode_ts(stored)
  local c = cmp(tonumber(ARGV[4]), tonumber(ARGV[5]), s, n)
  if c < 0 then return 0 end
  if c == 0 then
    local stored_created = redis.call('HGET', key, ARGV[2])
    if stored_created then
      if ARGV[6] ~= '1' then return 0 end
      local cs, cn = decode_ts(stored_created)
      if cmp(tonumber(ARGV[8]), tonumber(ARGV[9]), cs, cn) < 0 then return 0 end
    end
  end
end

local fields = {ARGV[1], ARGV[3]}
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
if ARGV[6] == '1' then
  fields[#fields + 1] = ARGV[2]
  fields[#fields + 1] = ARGV[7]
else
  redis.call('HDEL', key, ARGV[2])
end
redis.call('HSET', key, unpack(fields))
local ttl = tonumber(ARGV[10])
if ttl > 0 then redis.call('EXPIRE', key, ttl) end
return 1
"""


class OrderedRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Config of :class:`OrderedRedisOnlineStore`; Feast's ``redis`` fields, ``skip_dedup`` refused."""

    type: StrictStr = "service.online.stores.redis.OrderedRedisOnlineStore"  # type: ignore[assignment]

    skip_dedup: Literal[False] = False
    """Always False: skipping the timestamp check is exactly the out-of-order overwrite this store prevents."""


class OrderedRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store, except that an older row never overwrites a newer one.

    The hash layout is Feast's (one hash per entity key and project; ``_ts:<view>`` holds the event
    Timestamp proto; features under ``mmh3("<view>:<feature>")``), so Feast reads what this store writes.
    One field is added per view, ``_created_ts:<view>`` (a Timestamp proto, absent when the row had no
    created timestamp), because Feast does not store created timestamps and the tie-break needs them.

    Feast's own check reads every stored timestamp first and writes afterwards, so two concurrent writers
    can both pass it and the older row may land last. Here each entity's compare-and-write is one Lua
    script, which Redis runs atomically.
    """

    _ordered_write: Any = None
    _ordered_write_async: Any = None

    def _get_client(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        """Feast's client, failing fast for a single Redis server (see :func:`fail_fast`)."""
        if not self._client and online_store_config.redis_type == RedisType.redis:
            nodes, kwargs = self._parse_connection_string(online_store_config.connection_string)
            self._client = Redis(host=nodes[0]["host"], port=nodes[0]["port"], **fail_fast(kwargs))
        return super()._get_client(online_store_config)

    async def _get_client_async(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        """The asyncio twin of :meth:`_get_client`."""
        if not self._client_async and online_store_config.redis_type == RedisType.redis:
            nodes, kwargs = self._parse_connection_string(online_store_config.connection_string)
            self._client_async = AsyncRedis(host=nodes[0]["host"], port=nodes[0]["port"], **fail_fast(kwargs, True))
        return await super()._get_client_async(online_store_config)

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[WriteRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write ``data`` so that, per entity key and view, the stored row is the newest one seen.

        Args:
            config: the repo config; ``config.online_store`` is an :class:`OrderedRedisOnlineStoreConfig`.
            table: the feature view written to.
            data: rows ``(entity_key, {feature: value}, event_ts, created_ts)``; naive timestamps are UTC.
            progress: called once with ``len(data)`` after the batch is written.

        Ordering rule: inside the batch only the row with the greatest ``(event_ts, created_ts)`` per entity
        key is kept (a full tie keeps the later row). It then replaces the stored row only if its
        ``event_ts`` is greater (nanosecond precision), or equal with a greater-or-equal ``created_ts``
        (missing = smallest). Otherwise a replayed or late push would silently replace fresher values.
        ``key_ttl_seconds`` is applied as Feast does: the key's expiry is reset whenever a row is written.
        """
        client = self._get_client(config.online_store)
        if self._ordered_write is None:
            self._ordered_write = client.register_script(_ORDERED_WRITE_LUA)
        calls = self._script_calls(config, table, data)
        with client.pipeline(transaction=False) as pipe:
            for key, args in calls:
                self._ordered_write(keys=[key], args=args, client=pipe)
            pipe.execute()
        if progress:
            progress(len(data))

    async def online_write_batch_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[WriteRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """The same as :meth:`online_write_batch`, on Feast's async Redis client."""
        client = await self._get_client_async(config.online_store)
        if self._ordered_write_async is None:
            self._ordered_write_async = client.register_script(_ORDERED_WRITE_LUA)
        calls = self._script_calls(config, table, data)
        async with client.pipeline(transaction=False) as pipe:
            for key, args in calls:
                await self._ordered_write_async(keys=[key], args=args, client=pipe)
            await pipe.execute()
        if progress:
            progress(len(data))

    def delete_table(self, config: RepoConfig, table: FeatureView) -> None:
        """Feast's deletion, plus the ``_created_ts:<view>`` field it does not know about."""
        super().delete_table(config, table)
        client = self._get_client(config.online_store)
        created_field = _created_field(_versioned_fv_name(table, config))
        pattern = b"".join([_redis_key_prefix(table.join_keys), b"*", config.project.encode("utf8")])
        with client.pipeline(transaction=False) as pipe:
            for key in client.scan_iter(pattern):
                pipe.hdel(key, created_field)
            pipe.execute()

    @staticmethod
    def _script_calls(config: RepoConfig, table: FeatureView, data: list[WriteRow]) -> list[tuple[bytes, list[Any]]]:
        """One ``(redis key, script args)`` per entity key, for the newest row of that key in ``data``."""
        view = _versioned_fv_name(table, config)
        ttl = config.online_store.key_ttl_seconds or 0
        calls: list[tuple[bytes, list[Any]]] = []

        def redis_key(row: WriteRow) -> bytes:
            return _redis_key(
                config.project, row[0], entity_key_serialization_version=config.entity_key_serialization_version
            )

        for row in newest_per_entity(data, redis_key):
            _, values, event_ts, created_ts = row
            event = _timestamp(event_ts)
            created = Timestamp() if created_ts is None else _timestamp(created_ts)
            args: list[Any] = [
                f"_ts:{view}",
                _created_field(view),
                event.SerializeToString(),
                event.seconds,
                event.nanos,
                "0" if created_ts is None else "1",
                created.SerializeToString(),
                created.seconds,
                created.nanos,
                ttl,
            ]
            for feature_name, val in values.items():
                args.extend([_mmh3(f"{view}:{feature_name}"), val.SerializeToString()])
            calls.append((redis_key(row), args))
        return calls


#: Client defaults when ``connection_string`` does not set them. redis-py's own default retries a refused
#: connection 3 times with exponential back-off, so with Redis down an online read or a push took 3.5-9.5 s
#: to become the 503 it ends as; a blackholed host had no connect timeout at all. Here: one immediate
#: retry (rides out a dropped idle connection), 1 s to connect, 2 s per reply.
FAIL_FAST: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}


def fail_fast(kwargs: dict[str, Any], asynchronous: bool = False) -> dict[str, Any]:
    """``kwargs`` of a Redis client with :data:`FAIL_FAST` defaults and ``retry`` = one immediate retry
    (the asyncio client needs redis.asyncio's ``Retry``); values given in the ``connection_string``
    (``host:port,socket_timeout=5``) win."""
    retry = AsyncRetry(NoBackoff(), 1) if asynchronous else Retry(NoBackoff(), 1)
    return {**FAIL_FAST, "retry": retry, **kwargs}


def _created_field(view: str) -> str:
    return f"_created_ts:{view}"


def _timestamp(ts: datetime) -> Timestamp:
    """``ts`` as a Timestamp proto, nanoseconds kept (``Timestamp.FromDatetime`` stops at microseconds)."""
    proto = Timestamp()
    proto.FromNanoseconds(to_ns(ts))
    return proto
