"""The trace outbox: completed records whose trace is not delivered yet.

A narrow seam beside the record store, so a restart neither loses an undelivered
trace nor sends a delivered one again. An entry is written before the record's
completion is stored, and removed once the collector accepted the trace (or it
was given up). A kill -9 between the two writes leaves an entry for a record that
is still active: it completes again after the restart and is exported then.

The SQLite outbox is its own table in the state file, on the store's connection
(the file is opened with an exclusive lock, so a second connection could not use it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from monitor.store.base import StateStore
from monitor.store.memory import MemoryStore
from monitor.store.redis import RedisStore
from monitor.store.sqlite import SqliteStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PendingTrace:
    record_id: str
    completed_at: float  # unix seconds, when the completion was first seen


class TraceOutbox(Protocol):
    """Where undelivered traces are remembered. Every write is atomic per call."""

    async def add(self, record_id: str, completed_at: float) -> None:
        """Remember a record whose trace is owed; keeps the first `completed_at`."""
        ...

    async def pending(self) -> list[PendingTrace]:
        """Every trace still owed, oldest first."""
        ...

    async def remove(self, record_ids: Iterable[str]) -> None:
        """Forget traces that were delivered or given up; unknown ids are ignored."""
        ...


class MemoryOutbox:
    """For `:memory:` state and tests: lives as long as the process."""

    def __init__(self) -> None:
        self._pending: dict[str, float] = {}

    async def add(self, record_id: str, completed_at: float) -> None:
        self._pending.setdefault(record_id, completed_at)

    async def pending(self) -> list[PendingTrace]:
        items = sorted(self._pending.items(), key=lambda kv: (kv[1], kv[0]))
        return [PendingTrace(rid, at) for rid, at in items]

    async def remove(self, record_ids: Iterable[str]) -> None:
        for rid in record_ids:
            self._pending.pop(rid, None)


_CREATE = (
    "CREATE TABLE IF NOT EXISTS trace_outbox ("
    "record_id TEXT PRIMARY KEY, completed_at REAL NOT NULL)"
)


class SqliteOutbox:
    """The outbox as table `trace_outbox` in the state store's file."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._ready = False

    async def add(self, record_id: str, completed_at: float) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO trace_outbox (record_id, completed_at) VALUES (?, ?)",
                (record_id, completed_at),
            )
        )

    async def pending(self) -> list[PendingTrace]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT record_id, completed_at FROM trace_outbox ORDER BY completed_at, record_id"
            ).fetchall()
        )
        return [PendingTrace(str(rid), float(at)) for rid, at in rows]

    async def remove(self, record_ids: Iterable[str]) -> None:
        ids = [(rid,) for rid in record_ids]
        if ids:
            await self._run(lambda c: _remove_all(c, ids))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # The store's own queue of calls: same connection, same order as its saves.
        if not self._ready:
            await self._store._call(lambda c: c.execute(_CREATE))
            self._ready = True
        return await self._store._call(fn)


def _remove_all(conn: sqlite3.Connection, ids: list[tuple[str]]) -> None:
    conn.execute("BEGIN")
    try:
        conn.executemany("DELETE FROM trace_outbox WHERE record_id = ?", ids)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class RedisOutbox:
    """The trace outbox as the sorted set `{prefix}:trace_outbox` (record id -> completed at).

    Shared by every replica; each resumes only the traces of records rendezvous hashing
    gives it (`mine`, set by the composition root), so no trace is sent twice.
    """

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._key = f"{store._p}:trace_outbox"
        self.mine: Callable[[str], bool] = lambda _rid: True

    async def add(self, record_id: str, completed_at: float) -> None:
        redis = self._store.redis
        await self._store.call("outbox", redis.zadd(self._key, {record_id: completed_at}, nx=True))

    async def pending(self) -> list[PendingTrace]:
        redis = self._store.redis
        rows = await self._store.call("outbox", redis.zrange(self._key, 0, -1, withscores=True))
        out = [PendingTrace(rid.decode(), float(at)) for rid, at in rows]
        return [p for p in out if self.mine(p.record_id)]

    async def remove(self, record_ids: Iterable[str]) -> None:
        ids = list(record_ids)
        if ids:
            await self._store.call("outbox", self._store.redis.zrem(self._key, *ids))


def outbox_for(store: StateStore) -> TraceOutbox:
    """The outbox that lives where `store` keeps its records."""
    if isinstance(store, SqliteStore):
        return SqliteOutbox(store)
    if isinstance(store, MemoryStore):
        return MemoryOutbox()
    if isinstance(store, RedisStore):
        return RedisOutbox(store)
    raise TypeError(f"no trace outbox for a {type(store).__name__}")
