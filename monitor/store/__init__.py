"""Durable state behind one narrow interface: what is watched and what was counted."""

from monitor.store.base import StateStore, StoredRecord, StoreError, Tombstone
from monitor.store.memory import MemoryStore
from monitor.store.sqlite import MEMORY, SqliteStore


def store_for(path: str) -> StateStore:
    """The store MONITOR_STATE_PATH asks for: `:memory:` keeps nothing across restarts."""
    return MemoryStore() if path == MEMORY else SqliteStore(path)


__all__ = [
    "MemoryStore",
    "SqliteStore",
    "StateStore",
    "StoreError",
    "StoredRecord",
    "Tombstone",
    "store_for",
]
