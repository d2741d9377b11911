"""The state-store protocol.

A store keeps, per watched record: its labels and source, its state, the last
snapshot seen (each stage's last status) and which finished stages were
counted. That is exactly what a restart needs to resume without logging a
transition twice or counting a stage twice. Counters themselves are not
stored: Prometheus expects them to restart at zero with the process.

A finished record keeps that full state only while its series are exported
(MONITOR_RETENTION). Then it is retired: its row is replaced by a tombstone
(id, final state, result, finished_at, source), in one atomic step, so the id
is not given a second life. Tombstones are forgotten MONITOR_FORGET_AFTER after
the record finished. Both keep the store's size bounded by the horizon, not by
every build ever seen.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from monitor.domain import RecordSnapshot, RecordState


@dataclass(slots=True)
class StoredRecord:
    """The persistent part of one watched record."""

    record_id: str
    state: RecordState = RecordState.ACTIVE
    labels: dict[str, str] = field(default_factory=dict)
    source: str = "config"
    added_at: float = 0.0  # unix seconds
    finished_at: float | None = None
    result: str | None = None
    error: str | None = None
    snapshot: RecordSnapshot | None = None
    counted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a retired record: enough to answer for it, nothing to export."""

    record_id: str
    state: RecordState
    result: str | None
    finished_at: float  # unix seconds; the record is forgotten MONITOR_FORGET_AFTER later
    source: str

    @classmethod
    def of(cls, record: StoredRecord) -> Tombstone:
        assert record.finished_at is not None, "only finished records retire"
        # Interned: a few distinct results and sources, kept once each, not once per record.
        result = None if record.result is None else sys.intern(record.result)
        return cls(
            record.record_id, record.state, result, record.finished_at, sys.intern(record.source)
        )


class StoreError(Exception):
    """The store cannot be read or written. The message says where and what to do."""


class StateStore(Protocol):
    """Where watched records live between restarts. Every write is atomic per call."""

    async def load(self) -> list[StoredRecord]:
        """Every stored record (active and retained ones; not the tombstones)."""
        ...

    async def load_tombstones(self) -> list[Tombstone]:
        """Every tombstone, oldest finished_at first."""
        ...

    async def save(self, record: StoredRecord) -> None:
        """Insert or replace one record; raises StoreError if it could not be kept."""
        ...

    async def delete(self, record_id: str) -> None:
        """Forget one record; no error if it is unknown."""
        ...

    async def tombstone(self, record_id: str) -> Tombstone | None:
        """One tombstone, None if there is none for that id."""
        ...

    async def retire(self, tombstones: list[Tombstone]) -> None:
        """Replace each record by its tombstone, all in one atomic step; raises StoreError."""
        ...

    async def forget(self, finished_before: float, limit: int) -> list[str]:
        """Delete up to `limit` tombstones that finished before the given time (oldest
        first) and return their ids; a caller repeats until fewer than `limit` come back."""
        ...

    async def compact(self) -> None:
        """Give the space of forgotten rows back for reuse (no-op where nothing is kept)."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store takes on disk (0 when it keeps nothing there)."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


@runtime_checkable
class ClaimingStore(StateStore, Protocol):
    """A store shared by several replicas: a save also claims what it is about to count.

    A claim names one event of one record (a stage's transition or finish, the
    record's completion). The first replica to claim it counts it; the others
    see it was claimed and stay silent. Save and claims are one atomic step.
    """

    async def save_claiming(self, record: StoredRecord, claims: Sequence[str]) -> frozenset[str]:
        """Save `record` and claim `claims`; returns the claims this replica holds now."""
        ...
