"""The state-store protocol.

A store keeps, per watched record: its labels and source, its state, the last
snapshot seen (each stage's last status) and which finished stages were
counted. That is exactly what a restart needs to resume without logging a
transition twice or counting a stage twice. Counters themselves are not
stored: Prometheus expects them to restart at zero with the process.
"""

from __future__ import annotations

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


class StoreError(Exception):
    """The store cannot be read or written. The message says where and what to do."""


class StateStore(Protocol):
    """Where watched records live between restarts. Every write is atomic per call."""

    async def load(self) -> list[StoredRecord]:
        """Every stored record."""
        ...

    async def save(self, record: StoredRecord) -> None:
        """Insert or replace one record; raises StoreError if it could not be kept."""
        ...

    async def delete(self, record_id: str) -> None:
        """Forget one record; no error if it is unknown."""
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
