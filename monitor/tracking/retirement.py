"""The retired half of the watchlist: which records are exported, retiring, forgetting.

A mixin of `Watchlist`, kept apart so the watchlist module stays about polls. A
finished record stays in `records` while its series are exported (`retention`
after it finished); `retire_due` then replaces it by a tombstone: in memory only
its id and finished_at (`tombstones`), in the store also its final state, result
and source. `forget_due` deletes tombstones `forget_after` after the record
finished. Both run from the housekeeper (tracking/history.py), never from a poll
or a scrape.

With a store shared by replicas, `share_history` says which finished records this
replica retires (the ones assigned to it, whose state it knows first-hand) and
whether it deletes the forgotten tombstones from the store (one replica
does); every replica learns of the others' retirements through `retired_elsewhere`
and drops tombstones past the horizon from its own memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from monitor.domain import RecordState
from monitor.store.base import StateStore, Tombstone

if TYPE_CHECKING:
    from monitor.tracking.watchlist import WatchedRecord

# Rows per store transaction when retiring or forgetting: a long backlog is worked off
# in steps, each a short hold of the store, so polls' writes get their turn in between.
HOUSEKEEPING_BATCH = 500


class RetiredRecords:
    """What `Watchlist` sets up; the methods below read and change only these."""

    records: dict[str, WatchedRecord]
    tombstones: dict[str, float]  # retired record id -> finished_at
    retention: float
    forget_after: float
    _store: StateStore
    _clock: Callable[[], float] = time.time
    _removed_listeners: list[Callable[[str], None]]
    _retires: Callable[[str], bool] | None = None  # None: this process retires every record
    _sweeps: Callable[[], bool] | None = None

    def _notify(self) -> None:
        raise NotImplementedError

    async def tombstone(self, record_id: str) -> Tombstone | None:
        """What is left of a retired record (its final word), None if it has none."""
        return await self._store.tombstone(record_id) if record_id in self.tombstones else None

    def share_history(self, retires: Callable[[str], bool], sweeps: Callable[[], bool]) -> None:
        """With a shared store: retire only where `retires(record_id)`, delete forgotten
        tombstones from the store only while `sweeps()`."""
        self._retires = retires
        self._sweeps = sweeps

    def known(self, record_id: str) -> bool:
        """True for a record watched, retained or retired (not yet forgotten)."""
        return record_id in self.records or record_id in self.tombstones

    def exported(self) -> Iterator[WatchedRecord]:
        """Records whose series are exported: active ones, finished ones within retention."""
        cutoff = self._clock() - self.retention
        for rec in self.records.values():
            if rec.finished_at is None or rec.finished_at >= cutoff:
                yield rec

    def counts(self) -> dict[RecordState, int]:
        """Exported records by state (what `stage_monitor_records` shows)."""
        out = dict.fromkeys(RecordState, 0)
        for rec in self.exported():
            out[rec.state] += 1
        return out

    # --- history ----------------------------------------------------------------------

    async def retire_due(self) -> int:
        """Replace every record finished more than `retention` ago by its tombstone; store
        first, then memory (a crash in between leaves the full record, retired again at
        the next start). Returns how many retired."""
        cutoff = self._clock() - self.retention
        mine = self._retires or (lambda _rid: True)
        due = [
            r
            for r in self.records.values()
            if r.finished_at is not None and r.finished_at < cutoff and mine(r.record_id)
        ]
        due.sort(key=lambda r: r.finished_at or 0.0)
        retired = 0
        for i in range(0, len(due), HOUSEKEEPING_BATCH):
            recs = due[i : i + HOUSEKEEPING_BATCH]
            batch = [Tombstone.of(rec) for rec in recs]
            await self._store.retire(batch)
            for rec, t in zip(recs, batch, strict=True):
                if self.records.get(t.record_id) is rec:  # not removed meanwhile
                    del self.records[t.record_id]
                    self.tombstones[t.record_id] = t.finished_at
                    retired += 1
                    for cb in self._removed_listeners:
                        cb(t.record_id)
            await anyio.lowlevel.checkpoint()
        if retired:
            self._notify()
        return retired

    async def forget_due(self) -> int:
        """Delete the tombstones of records finished more than `forget_after` ago."""
        cutoff = self._clock() - self.forget_after
        forgotten = 0
        if self._sweeps is not None and not self._sweeps():
            # Another replica deletes them from the store; this one only from its memory.
            for record_id, finished_at in list(self.tombstones.items()):
                if finished_at < cutoff:
                    del self.tombstones[record_id]
                    forgotten += 1
            return forgotten
        while True:
            ids = await self._store.forget(cutoff, HOUSEKEEPING_BATCH)
            for record_id in ids:
                if self.tombstones.pop(record_id, None) is not None:
                    forgotten += 1
            if len(ids) < HOUSEKEEPING_BATCH:
                break
        return forgotten

    def retired_elsewhere(self, tombstone: Tombstone) -> None:
        """Another replica retired a record: drop it from `records`, keep its tombstone."""
        rid = tombstone.record_id
        self.tombstones[rid] = tombstone.finished_at
        if self.records.pop(rid, None) is not None:
            for cb in self._removed_listeners:
                cb(rid)
        self._notify()
