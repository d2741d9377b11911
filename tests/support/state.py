"""A state file read back the way the next process would read it."""

from __future__ import annotations

from pathlib import Path

from monitor.store.base import StoredRecord
from monitor.store.sqlite import SqliteStore


async def load_state(path: str | Path) -> list[StoredRecord]:
    """What a state file holds, read the way the next process would read it."""
    store = SqliteStore(path)
    try:
        return await store.load()
    finally:
        await store.close()
