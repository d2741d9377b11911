"""The watchlist: every record the daemon knows, and what happens when a poll answers.

It owns the records, applies poll results through the pure tracker, persists
what changed, logs it, then hands the events to its listeners (metrics, traces,
the `watch` command). Persisting before emitting means a crash between the two
loses at most one event rather than ever repeating one.

A finished record stays in `records` for `retention`, then is retired to a
tombstone in `tombstones`, forgotten `forget_after` after it finished (see
tracking/history.py for when, and what a forgotten id added again means).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from monitor.codearts.errors import CodeArtsError, Forbidden, NotFound
from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.domain.ids import is_valid_record_id
from monitor.domain.labels import JOB_LABELS
from monitor.logging import get_logger
from monitor.store.base import ClaimingStore, StateStore, StoredRecord, StoreError, Tombstone
from monitor.tracking.retirement import RetiredRecords
from monitor.tracking.tracker import (
    Observation,
    PollDone,
    RecordCompleted,
    StageFinished,
    Transition,
    observe,
)

WatchlistEvent = Transition | StageFinished | RecordCompleted | PollDone
Listener = Callable[[WatchlistEvent], None]


@dataclass(slots=True)
class WatchedRecord(StoredRecord):
    """A stored record plus what only matters while the process runs."""

    consecutive_errors: int = 0
    refusals: int = 0  # consecutive 404/403 answers
    polls: int = 0
    version: int = 0  # bumped whenever exported values change (render cache key)

    def stored(self) -> StoredRecord:
        return StoredRecord(
            record_id=self.record_id,
            state=self.state,
            labels=dict(self.labels),
            source=self.source,
            added_at=self.added_at,
            finished_at=self.finished_at,
            result=self.result,
            error=self.error,
            snapshot=self.snapshot,
            counted=self.counted,
        )


class Watchlist(RetiredRecords):
    """Every watched record, keyed by id. All methods run on the event loop."""

    def __init__(
        self,
        store: StateStore,
        *,
        terminal_statuses: frozenset[str],
        refusal_confirmations: int = 3,
        retention: float = 900.0,
        forget_after: float = 604800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records: dict[str, WatchedRecord] = {}  # active and retained records
        # Retired ones, until forgotten: id -> finished_at (the rest is in the store).
        self.tombstones: dict[str, float] = {}
        self.retention = retention
        self.forget_after = forget_after
        self._store = store
        self._terminal = terminal_statuses
        self._confirmations = refusal_confirmations
        self._clock = clock
        self._log = get_logger("monitor.watchlist")
        self._changed = anyio.Event()
        self._added_listeners: list[Callable[[WatchedRecord], None]] = []
        self._event_listeners: list[Listener] = []
        self._removed_listeners: list[Callable[[str], None]] = []
        self._completing: list[Callable[[str, float], Awaitable[None]]] = []

    # --- subscriptions -----------------------------------------------------------------

    def on_added(self, callback: Callable[[WatchedRecord], None]) -> None:
        """Called for every record that becomes active (the scheduler listens)."""
        self._added_listeners.append(callback)

    def on_event(self, callback: Listener) -> None:
        """Called for every event (transition, finished stage, completion, poll), after
        it was persisted and logged."""
        self._event_listeners.append(callback)

    def on_removed(self, callback: Callable[[str], None]) -> None:
        """Called with the record id of every record that leaves `records` (removed, or
        retired to a tombstone)."""
        self._removed_listeners.append(callback)

    def on_completing(self, callback: Callable[[str, float], Awaitable[None]]) -> None:
        """Awaited with (record id, completion time) before a completion is stored; if it
        raises StoreError the completion is not stored either, and the next poll retries."""
        self._completing.append(callback)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; re-checked after every change."""
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # --- membership --------------------------------------------------------------------

    async def restore(self) -> int:
        """Load what the store kept (records in full, tombstones); active records are handed
        to the scheduler. Records whose retention ended meanwhile wait for `retire_due`."""
        loaded = await self._store.load()
        for t in await self._store.load_tombstones():
            self.tombstones[t.record_id] = t.finished_at
        for stored in loaded:
            rec = WatchedRecord(**{f: getattr(stored, f) for f in StoredRecord.__slots__})
            self.records[rec.record_id] = rec
        for rec in self.records.values():
            if rec.state is RecordState.ACTIVE:
                for cb in self._added_listeners:
                    cb(rec)
        if loaded or self.tombstones:
            self._log.info("state_restored", records=len(loaded), tombstones=len(self.tombstones))
        self._notify()
        return len(loaded)

    async def add(
        self, record_id: str, labels: Mapping[str, str] | None = None, source: str = "config"
    ) -> tuple[WatchedRecord | Tombstone, bool]:
        """Watch a record; returns it and whether it was new. Idempotent. A retired id is
        not watched again: its tombstone is returned; nothing is logged, polled, counted."""
        tombstone = await self.tombstone(record_id)
        if tombstone is not None:
            return tombstone, False
        existing = self.records.get(record_id)
        if existing is not None:
            kept = {k: v for k, v in existing.labels.items() if k in JOB_LABELS}
            if labels and {**kept, **labels} != existing.labels:
                existing.labels = {**kept, **labels}
                existing.version += 1
                await self._store.save(existing.stored())
                self._notify()
            return existing, False
        rec = WatchedRecord(
            record_id=record_id, labels=dict(labels or {}), source=source, added_at=self._clock()
        )
        if not is_valid_record_id(record_id):
            rec.state = RecordState.ERROR
            rec.error = "not a record id (36 characters of [0-9a-z-])"
            rec.finished_at = rec.added_at
        self.records[record_id] = rec
        await self._store.save(rec.stored())
        if rec.state is RecordState.ERROR:
            self._log.warning(
                "record_invalid",
                record_id=record_id,
                source=source,
                error=rec.error,
                **_label_kv(rec),
            )
        else:
            self._log.info("record_added", record_id=record_id, source=source, **_label_kv(rec))
            for cb in self._added_listeners:
                cb(rec)
        self._notify()
        return rec, True

    async def reconcile(self, source: str, wanted: Mapping[str, Mapping[str, str]]) -> None:
        """Make the records of one source exactly `wanted` (record id -> labels).

        Records of that source that are not wanted any more stop being watched; those of
        other sources are left alone.
        """
        for record_id, labels in wanted.items():
            await self.add(record_id, labels, source=source)
        for record_id, rec in list(self.records.items()):
            if rec.source == source and record_id not in wanted:
                await self.remove(record_id)

    async def remove(self, record_id: str) -> bool:
        """Stop watching a record and forget it; its series vanish at the next scrape."""
        rec = self.records.pop(record_id, None)
        if rec is None:
            return False
        await self._store.delete(record_id)
        self._log.info("record_removed", record_id=record_id, source=rec.source, **_label_kv(rec))
        for cb in self._removed_listeners:
            cb(record_id)
        self._notify()
        return True

    # --- poll results -----------------------------------------------------------------

    async def apply_snapshot(self, rec: WatchedRecord, snapshot: RecordSnapshot) -> None:
        """Take in a successful poll: persist what changed, then log and count it."""
        rec.polls += 1
        rec.consecutive_errors = 0
        rec.refusals = 0
        rec.error = None
        self._emit(PollDone(rec.record_id, "success"))
        if rec.state is not RecordState.ACTIVE or rec.record_id not in self.records:
            return  # removed or finished while the request was in flight
        obs = observe(rec.snapshot, snapshot, rec.counted, self._terminal)
        won: frozenset[str] | None = None  # claims held, where replicas share the store
        values_changed = rec.snapshot is None or rec.snapshot.stages != snapshot.stages
        if obs.transitions or obs.newly_finished or obs.completed is not None:
            after = rec.stored()
            after.snapshot = snapshot
            if obs.newly_finished:
                after.counted = rec.counted | {s.key for s in obs.newly_finished}
            if obs.completed is not None:
                after.state = RecordState.COMPLETE
                after.result = obs.completed.result
                after.finished_at = completed_at = self._clock()
            try:
                if obs.completed is not None:
                    for hook in self._completing:
                        await hook(rec.record_id, completed_at)
                won = await self._save_claiming(after, obs)
            except StoreError as exc:
                # Left as it was, the record shows the same changes to the next poll,
                # which logs and counts them then: nothing is lost, nothing is doubled.
                self._log.error("state_write_failed", record_id=rec.record_id, error=str(exc))
                self._notify()
                return
            rec.counted = after.counted
            rec.state, rec.result, rec.finished_at = after.state, after.result, after.finished_at
        # Without a status change only durations moved: nothing a restart needs, no write.
        rec.snapshot = snapshot
        if values_changed:
            rec.version += 1
        for t in obs.transitions:
            if won is not None and _transition_claim(t) not in won:
                continue  # another replica logged and counted it
            self._log.info(
                "stage_transition",
                record_id=t.record_id,
                build_stage=t.build_stage,
                display_name=t.display_name,
                from_status=t.from_status,
                to_status=t.to_status,
                status_code=t.status_code,
                duration_seconds=t.duration_seconds,
                pending_seconds=t.pending_seconds,
                **_label_kv(rec),
            )
            self._emit(t)
        for stage in obs.newly_finished:
            if won is None or _finish_claim(stage) in won:
                self._emit(StageFinished(rec.record_id, stage))
        if obs.completed is not None and (won is None or COMPLETION_CLAIM in won):
            c = obs.completed
            self._log.info(
                "record_complete",
                record_id=c.record_id,
                result=c.result,
                duration_seconds=c.duration_seconds,
                **_label_kv(rec),
            )
            self._emit(c)
        self._notify()

    async def apply_error(self, rec: WatchedRecord, error: CodeArtsError) -> None:
        """Take in a failed poll: count it, log it, and give the record up if refused for good."""
        rec.polls += 1
        rec.consecutive_errors += 1
        rec.error = str(error)
        self._emit(PollDone(rec.record_id, error.outcome))
        self._log.warning(
            "poll_failed",
            record_id=rec.record_id,
            outcome=error.outcome,
            error=str(error),
            consecutive_errors=rec.consecutive_errors,
            **_label_kv(rec),
        )
        if isinstance(error, NotFound | Forbidden) and rec.state is RecordState.ACTIVE:
            rec.refusals += 1
            if rec.refusals >= self._confirmations:
                rec.state = (
                    RecordState.NOT_FOUND if isinstance(error, NotFound) else RecordState.FORBIDDEN
                )
                rec.finished_at = self._clock()
                rec.version += 1
                await self._store.save(rec.stored())
                self._log.warning(
                    "record_refused",
                    record_id=rec.record_id,
                    state=rec.state.value,
                    error=str(error),
                    **_label_kv(rec),
                )
        else:
            rec.refusals = 0
        self._notify()

    async def expire(self, rec: WatchedRecord) -> None:
        """Give up on a record watched longer than MONITOR_MAX_WATCH."""
        if rec.state is not RecordState.ACTIVE:
            return
        rec.state = RecordState.EXPIRED
        rec.finished_at = self._clock()
        rec.version += 1
        await self._store.save(rec.stored())
        self._log.warning(
            "record_expired",
            record_id=rec.record_id,
            watched_seconds=round(rec.finished_at - rec.added_at, 3),
            **_label_kv(rec),
        )
        self._notify()

    async def _save_claiming(self, after: StoredRecord, obs: Observation) -> frozenset[str] | None:
        """Persist, and where the store is shared claim each event first (None: not shared)."""
        if not isinstance(self._store, ClaimingStore):
            await self._store.save(after)
            return None
        claims = [_transition_claim(t) for t in obs.transitions]
        claims += [_finish_claim(s) for s in obs.newly_finished]
        if obs.completed is not None:
            claims.append(COMPLETION_CLAIM)
        return await self._store.save_claiming(after, claims)

    # --- what other replicas changed (a shared store) ----------------------------------------

    def adopt(self, stored: StoredRecord) -> None:
        """Know a record another replica added, or its new labels; nothing is written."""
        rec = self.records.get(stored.record_id)
        if rec is not None:
            if rec.labels != stored.labels:
                rec.labels = dict(stored.labels)
                rec.version += 1
                self._notify()
            return
        rec = WatchedRecord(**{f: getattr(stored, f) for f in StoredRecord.__slots__})
        self.records[rec.record_id] = rec
        if rec.state is RecordState.ACTIVE:
            for cb in self._added_listeners:
                cb(rec)
        self._notify()

    def refresh(self, stored: StoredRecord) -> None:
        """Take what the store holds for a record as the truth (its new owner is us)."""
        rec = self.records.get(stored.record_id)
        if rec is None:
            self.adopt(stored)
            return
        was_active = rec.state is RecordState.ACTIVE
        for f in StoredRecord.__slots__:
            setattr(rec, f, getattr(stored, f))
        rec.version += 1
        if rec.state is RecordState.ACTIVE and not was_active:
            for cb in self._added_listeners:
                cb(rec)
        self._notify()

    def forget(self, record_id: str) -> None:
        """Drop a record another replica removed; nothing is written."""
        if self.records.pop(record_id, None) is not None:
            self._notify()

    def _emit(self, event: WatchlistEvent) -> None:
        for cb in self._event_listeners:
            cb(event)


COMPLETION_CLAIM = "c"


def _transition_claim(t: Transition) -> str:
    return f"t|{t.build_stage}|{t.from_status or ''}|{t.to_status}"


def _finish_claim(stage: StageSnapshot) -> str:
    return f"f|{stage.key}|{stage.status}"


def _label_kv(rec: StoredRecord) -> dict[str, dict[str, str]]:
    return {"labels": dict(rec.labels)} if rec.labels else {}
