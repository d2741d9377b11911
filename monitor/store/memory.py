"""A store that lives as long as the process: for tests, demos and `:memory:`."""

from __future__ import annotations

from dataclasses import replace

from monitor.store.base import StoredRecord


class MemoryStore:
    """Keeps copies, so later changes to a caller's record are not visible until saved."""

    def __init__(self) -> None:
        self._records: dict[str, StoredRecord] = {}
        self.writes = 0

    async def load(self) -> list[StoredRecord]:
        return [replace(r, labels=dict(r.labels)) for r in self._records.values()]

    async def save(self, record: StoredRecord) -> None:
        self._records[record.record_id] = replace(record, labels=dict(record.labels))
        self.writes += 1

    async def delete(self, record_id: str) -> None:
        self._records.pop(record_id, None)

    async def close(self) -> None:
        return None
