"""The state store in Redis, shared by every replica of one cluster.

Each record is one hash, `{prefix}:rec:{id}`, with two fields: `meta` (source,
labels, when it was added: written by whichever replica adds or relabels it)
and `doc` (state, result, the counted stages and the last snapshot: written only
by the record's owner, fenced by its lease token, so a replica that lost its
lease cannot overwrite what the new owner wrote). The set `{prefix}:ids` lists
every record; `{prefix}:version` counts watchlist changes and `{prefix}:changes`
(a sorted set, one entry per record, scored by the version of its last change)
tells other replicas what moved, so they follow in one read.

Claims for "counted once across the cluster" live in `{prefix}:claims:{id}`,
claimed in the same script as the save, and expire after `claim_ttl`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.store.base import StoredRecord, StoreError, Tombstone
from monitor.store.sqlite import decode, encode

FETCH_BATCH = 500
# Deleted records leave their entry in the changes feed; beyond this many more entries
# than records the oldest are trimmed, and a replica that had not read them reloads all.
CHANGES_SLACK = 1000

# KEYS: rec, lease, version, changes, ids, claims, trim floor
# ARGV: id, meta or "", doc or "", fencing token or "", member, claim ttl s, claims...
# Returns {1, claims held}; {0} when the fencing token is not the lease's any more; {-1}
# when the record was removed meanwhile (by another replica).
_SAVE = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return {0} end
if ARGV[2] == '' and redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return {-1} end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[1])
  local v = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[4], v, ARGV[1])
end
if ARGV[3] ~= '' then
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'doc', ARGV[3])
  else
    redis.call('HSETNX', KEYS[1], 'doc', ARGV[3])
  end
end
local out = {1}
for i = 7, #ARGV do
  local cur = redis.call('HGET', KEYS[6], ARGV[i])
  if not cur then
    redis.call('HSET', KEYS[6], ARGV[i], ARGV[5])
    out[#out + 1] = ARGV[i]
  elseif cur == ARGV[5] then
    out[#out + 1] = ARGV[i]
  end
end
if #ARGV >= 7 then redis.call('EXPIRE', KEYS[6], ARGV[6]) end
return out
"""

# KEYS: rec, version, changes, ids, trim floor; ARGV: id, slack
_DELETE = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
local v = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], v, ARGV[1])
local extra = redis.call('ZCARD', KEYS[3]) - redis.call('SCARD', KEYS[4]) - tonumber(ARGV[2])
if extra > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], 0, extra - 1, 'WITHSCORES')
  redis.call('SET', KEYS[5], gone[#gone])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
end
return v
"""


class Observer(Protocol):
    def observe_redis(self, op: str, seconds: float, ok: bool) -> None: ...


class RedisStore:
    """A StateStore (and ClaimingStore) in Redis."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        member: str,
        fence: Callable[[str], str | None] = lambda _rid: None,
        lease_key: Callable[[str], str] = lambda rid: f"lease:{rid}",
        claim_ttl: float = 7 * 86400.0,
        observer: Observer | None = None,
    ) -> None:
        self._redis = redis
        self._p = prefix
        self.member = member
        self.fence = fence  # the owner's fencing token for a record, set by the coordinator
        self.lease_key = lease_key
        self._claim_ttl = int(claim_ttl)
        self._observer = observer
        self._save = redis.register_script(_SAVE)
        self._delete = redis.register_script(_DELETE)
        self._written: dict[str, tuple[str, str]] = {}  # what Redis holds: (meta, doc)
        self.version = 0  # the watchlist version the last load or change read reached
        self.writes = 0

    @property
    def redis(self) -> Redis:
        return self._redis

    @property
    def prefix(self) -> str:
        return self._p

    async def call(self, op: str, call: Any) -> Any:
        """One Redis call, timed and counted; a failure is a StoreError."""
        return await self._call(op, call)

    def _key(self, record_id: str) -> str:
        return f"{self._p}:rec:{record_id}"

    async def _call(self, op: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await call
        except (RedisError, OSError) as exc:
            self._observe(op, started, False)
            raise StoreError(f"redis {op}: {type(exc).__name__}: {exc}") from None
        self._observe(op, started, True)
        return result

    def _observe(self, op: str, started: float, ok: bool) -> None:
        if self._observer is not None:
            self._observer.observe_redis(op, time.perf_counter() - started, ok)

    # --- the StateStore protocol ------------------------------------------------------------

    async def load(self) -> list[StoredRecord]:
        version = await self._call("load", self._redis.get(f"{self._p}:version"))
        ids = await self._call("load", self._redis.smembers(f"{self._p}:ids"))
        found = await self.fetch(sorted(i.decode() for i in ids))
        self.version = int(version or 0)
        out = [r for r in found.values() if r is not None]
        out.sort(key=lambda r: (r.added_at, r.record_id))
        return out

    async def save(self, record: StoredRecord) -> None:
        await self.save_claiming(record, ())

    async def save_claiming(self, record: StoredRecord, claims: Sequence[str]) -> frozenset[str]:
        rid = record.record_id
        meta, doc = _split(record)
        old = self._written.get(rid)
        meta_arg = "" if old is not None and old[0] == meta else meta
        doc_arg = "" if old is not None and old[1] == doc else doc
        if not (meta_arg or doc_arg or claims):
            return frozenset()
        token = self.fence(rid) or ""
        result = await self._call(
            "save",
            self._save(
                keys=[
                    self._key(rid),
                    self.lease_key(rid),
                    f"{self._p}:version",
                    f"{self._p}:changes",
                    f"{self._p}:ids",
                    f"{self._p}:claims:{rid}",
                    f"{self._p}:changes_floor",
                ],
                args=[rid, meta_arg, doc_arg, token, self.member, self._claim_ttl, *claims],
            ),
        )
        if int(result[0]) == 0:
            raise StoreError(
                f"record {rid}: not saved, this replica's lease was taken over (fenced out)"
            )
        if int(result[0]) < 0:
            self._written.pop(rid, None)
            raise StoreError(f"record {rid}: not saved, another replica removed it")
        self.writes += 1
        # Without a token the doc was only written if absent: what Redis holds is unknown.
        self._written[rid] = (meta, doc if token or old is None else old[1])
        return frozenset(c.decode() if isinstance(c, bytes) else str(c) for c in result[1:])

    async def delete(self, record_id: str) -> None:
        await self._call(
            "delete",
            self._delete(
                keys=[
                    self._key(record_id),
                    f"{self._p}:version",
                    f"{self._p}:changes",
                    f"{self._p}:ids",
                    f"{self._p}:changes_floor",
                ],
                args=[record_id, CHANGES_SLACK],
            ),
        )
        self._written.pop(record_id, None)
        self.writes += 1

    async def close(self) -> None:
        return None  # the connection belongs to the composition root

    # --- history: not kept in Redis yet ------------------------------------------------------
    # With replicas the daemon does not retire records (it starts no housekeeping), so
    # nothing is ever retired here; these keep the StateStore protocol whole.

    async def load_tombstones(self) -> list[Tombstone]:
        return []

    async def tombstone(self, record_id: str) -> Tombstone | None:
        return None

    async def retire(self, tombstones: list[Tombstone]) -> None:
        raise StoreError("the Redis store keeps no tombstones: records are not retired")

    async def forget(self, finished_before: float, limit: int) -> list[str]:
        return []

    async def compact(self) -> None:
        return None

    def size_bytes(self) -> int:
        return 0

    # --- what other replicas wrote ----------------------------------------------------------

    async def fetch(self, record_ids: Sequence[str]) -> dict[str, StoredRecord | None]:
        """The stored state of these records (None for one that is not stored)."""
        out: dict[str, StoredRecord | None] = {}
        for start in range(0, len(record_ids), FETCH_BATCH):
            chunk = record_ids[start : start + FETCH_BATCH]
            pipe = self._redis.pipeline(transaction=False)
            for rid in chunk:
                pipe.hmget(self._key(rid), "meta", "doc")
            rows = await self._call("fetch", pipe.execute())
            for rid, (meta, doc) in zip(chunk, rows, strict=True):
                if meta is None or doc is None:
                    out[rid] = None
                    self._written.pop(rid, None)
                    continue
                m, d = meta.decode(), doc.decode()
                out[rid] = self._decode(rid, m, d)
                self._written[rid] = (m, d)
        return out

    async def changes_since(self, version: int) -> tuple[int, list[str] | None]:
        """Records added, relabelled or removed after `version`, and the version now.

        None instead of a list when the feed no longer reaches back that far: reload all.
        """
        floor, now = await self._call(
            "changes", self._redis.mget(f"{self._p}:changes_floor", f"{self._p}:version")
        )
        if int(floor or 0) > version:
            return int(now or 0), None
        ids = await self._call(
            "changes", self._redis.zrangebyscore(f"{self._p}:changes", f"({version}", "+inf")
        )
        return int(now or 0), [i.decode() for i in ids]

    async def ids(self) -> set[str]:
        """Every record id in the shared watchlist."""
        raw = await self._call("load", self._redis.smembers(f"{self._p}:ids"))
        return {i.decode() for i in raw}

    def forget_written(self) -> None:
        """Redis lost its data: nothing this replica wrote can be assumed to be there."""
        self._written.clear()

    def _decode(self, rid: str, meta: str, doc: str) -> StoredRecord:
        try:
            source, labels, added_at = json.loads(meta)
            state, finished_at, result, error, counted, snapshot = json.loads(doc)
            return decode(
                (
                    rid,
                    state,
                    source,
                    labels,
                    added_at,
                    finished_at,
                    result,
                    error,
                    counted,
                    snapshot,
                )
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"redis record {rid!r} cannot be read ({exc}); it was written by other software"
            ) from None


def _split(record: StoredRecord) -> tuple[str, str]:
    """The record as its two fields: meta (who watches it) and doc (what was seen)."""
    (_rid, state, source, labels, added_at, finished_at, result, error, counted, snapshot) = encode(
        record
    )
    meta = json.dumps([source, labels, added_at], separators=(",", ":"))
    doc = json.dumps([state, finished_at, result, error, counted, snapshot], separators=(",", ":"))
    return meta, doc
