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
claimed in the same script as the save, and expire after `claim_ttl` (the
forget-after horizon).

A retired record keeps no key of its own: its tombstone is one field of the hash
`{prefix}:tombstones` (id -> final state, result, finished_at, source) and one
member of the sorted set `{prefix}:retired` (scored by finished_at, so forgetting
reads the oldest first). Retiring deletes the record's hash and claims, and bumps
the version and the changes feed in the same script, so every replica drops the
full record at its next tick and keeps the tombstone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.domain import RecordState
from monitor.store.base import StoredRecord, StoreError, Tombstone
from monitor.store.redis_scripts import DELETE, FORGET, RETIRE, SAVE
from monitor.store.sqlite import decode, encode

FETCH_BATCH = 500
# Deleted records leave their entry in the changes feed; beyond this many more entries
# than records the oldest are trimmed, and a replica that had not read them reloads all.
CHANGES_SLACK = 1000


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
        claim_ttl: float,
        observer: Observer | None = None,
    ) -> None:
        self._redis = redis
        self._p = prefix
        self.member = member
        self.fence = fence  # the owner's fencing token for a record, set by the coordinator
        self.lease_key = lease_key
        self._claim_ttl = int(claim_ttl)
        self._observer = observer
        self._save = redis.register_script(SAVE)
        self._delete = redis.register_script(DELETE)
        self._retire = redis.register_script(RETIRE)
        self._forget = redis.register_script(FORGET)
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
                    f"{self._p}:tombstones",
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
            how = "retired" if int(result[0]) == -2 else "removed"
            raise StoreError(f"record {rid}: not saved, another replica {how} it")
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

    # --- history -----------------------------------------------------------------------------

    async def load_tombstones(self) -> list[Tombstone]:
        ids = await self._call("load", self._redis.zrange(f"{self._p}:retired", 0, -1))
        found = await self.tombstones_of([i.decode() for i in ids])
        return [t for t in found.values() if t is not None]  # zrange: oldest first

    async def tombstone(self, record_id: str) -> Tombstone | None:
        return (await self.tombstones_of([record_id]))[record_id]

    async def tombstones_of(self, record_ids: Sequence[str]) -> dict[str, Tombstone | None]:
        """The tombstones of these ids (None for one that has none)."""
        out: dict[str, Tombstone | None] = {}
        for start in range(0, len(record_ids), FETCH_BATCH):
            chunk = list(record_ids[start : start + FETCH_BATCH])
            if not chunk:
                continue
            raw = await self._call("load", self._redis.hmget(f"{self._p}:tombstones", chunk))
            for rid, value in zip(chunk, raw, strict=True):
                out[rid] = None if value is None else _tombstone(rid, value.decode())
        return out

    async def retire(self, tombstones: list[Tombstone]) -> None:
        if not tombstones:
            return
        keys = [
            f"{self._p}:version",
            f"{self._p}:changes",
            f"{self._p}:ids",
            f"{self._p}:changes_floor",
            f"{self._p}:tombstones",
            f"{self._p}:retired",
        ]
        args: list[str | int | float] = [CHANGES_SLACK]
        for t in tombstones:
            keys += [self._key(t.record_id), f"{self._p}:claims:{t.record_id}"]
            doc = [t.state.value, t.result, t.finished_at, t.source]
            args += [t.record_id, json.dumps(doc, separators=(",", ":")), repr(t.finished_at)]
        await self._call("retire", self._retire(keys=keys, args=args))
        for t in tombstones:
            self._written.pop(t.record_id, None)
        self.writes += 1

    async def forget(self, finished_before: float, limit: int) -> list[str]:
        ids = await self._call(
            "forget",
            self._forget(
                keys=[f"{self._p}:tombstones", f"{self._p}:retired"],
                args=[repr(finished_before), limit],
            ),
        )
        if ids:
            self.writes += 1
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def compact(self) -> None:
        return None  # Redis frees a deleted key's memory itself

    def size_bytes(self) -> int:
        """0: nothing is kept on this replica's disk (Redis's own memory is Redis's to report:
        `INFO memory`, or MEMORY USAGE of the keys listed in docs/cluster.md)."""
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


def _tombstone(rid: str, value: str) -> Tombstone:
    try:
        state, result, finished_at, source = json.loads(value)
        return Tombstone(rid, RecordState(state), result, float(finished_at), str(source))
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"redis tombstone {rid!r} cannot be read ({exc}); it was written by other software"
        ) from None


def _split(record: StoredRecord) -> tuple[str, str]:
    """The record as its two fields: meta (who watches it) and doc (what was seen)."""
    (_rid, state, source, labels, added_at, finished_at, result, error, counted, snapshot) = encode(
        record
    )
    meta = json.dumps([source, labels, added_at], separators=(",", ":"))
    doc = json.dumps([state, finished_at, result, error, counted, snapshot], separators=(",", ":"))
    return meta, doc
