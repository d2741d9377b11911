"""A store that lives as long as the process: for tests, demos and `:memory:`."""

from __future__ import annotations

from dataclasses import replace

from monitor.store.base import StoredRecord, Tombstone


class MemoryStore:
    """Keeps copies, so later changes to a caller's record are not visible until saved."""

    def __init__(self) -> None:
        self._records: dict[str, StoredRecord] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self.writes = 0

    async def load(self) -> list[StoredRecord]:
        return [replace(r, labels=dict(r.labels)) for r in self._records.values()]

    async def load_tombstones(self) -> list[Tombstone]:
        return sorted(self._tombstones.values(), key=lambda t: t.finished_at)

    async def tombstone(self, record_id: str) -> Tombstone | None:
        return self._tombstones.get(record_id)

    async def save(self, record: StoredRecord) -> None:
        self._records[record.record_id] = replace(record, labels=dict(record.labels))
        self.writes += 1

    async def delete(self, record_id: str) -> None:
        self._records.pop(record_id, None)

    async def retire(self, tombstones: list[Tombstone]) -> None:
        for t in tombstones:
            self._records.pop(t.record_id, None)
            self._tombstones[t.record_id] = t
        self.writes += 1

    async def forget(self, finished_before: float, limit: int) -> list[str]:
        old = sorted(
            (t for t in self._tombstones.values() if t.finished_at < finished_before),
            key=lambda t: t.finished_at,
        )[:limit]
        for t in old:
            del self._tombstones[t.record_id]
        return [t.record_id for t in old]

    async def compact(self) -> None:
        return None

    def size_bytes(self) -> int:
        return 0

    async def close(self) -> None:
        return None
