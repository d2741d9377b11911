"""Durable state behind one narrow interface: what is watched and what was counted."""

from monitor.store.base import StateStore, StoredRecord
from monitor.store.memory import MemoryStore

__all__ = ["MemoryStore", "StateStore", "StoredRecord"]
