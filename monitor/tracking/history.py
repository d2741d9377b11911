"""Housekeeping: retire records whose retention ended, forget tombstones past the horizon.

It runs as its own task at a modest cadence, so neither a poll nor a scrape ever
does this work; each step holds the store only for one batch (see
Watchlist.retire_due and forget_due), so polls' writes are not held up behind a
long backlog.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus

from monitor.logging import get_logger
from monitor.store.base import StateStore, StoreError
from monitor.tracking.watchlist import Watchlist

# Series vanish exactly at the end of retention (the renderer filters on it); retiring
# later only delays freeing the memory, so there is no need to look more often than this.
MAX_INTERVAL = 60.0
MIN_INTERVAL = 0.5


def housekeeping_interval(retention: float) -> float:
    """How often to look: a quarter of the retention, within [0.5 s, 60 s]."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, retention / 4))


class Housekeeper:
    """Retires and forgets on a timer; `run_once` is the step tests call directly."""

    def __init__(
        self,
        watchlist: Watchlist,
        store: StateStore,
        *,
        interval: float | None = None,
        enabled: bool = True,
    ) -> None:
        self._watchlist = watchlist
        self._compact = store.compact
        self.interval = interval or housekeeping_interval(watchlist.retention)
        self.enabled = enabled
        self.passes = 0
        self._log = get_logger("monitor.history")

    async def run_once(self) -> tuple[int, int]:
        """One pass: (records retired, tombstones forgotten)."""
        if not self.enabled:
            return 0, 0
        retired = await self._watchlist.retire_due()
        forgotten = await self._watchlist.forget_due()
        if retired or forgotten:
            # Rows went: give their pages back and fold the write-ahead log into the file,
            # so neither grows with the records that passed through.
            await self._compact()
        self.passes += 1
        if retired or forgotten:
            self._log.info(
                "history_pruned",
                retired=retired,
                forgotten=forgotten,
                records=len(self._watchlist.records),
                tombstones=len(self._watchlist.tombstones),
            )
        return retired, forgotten

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self.enabled:
            return
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.run_once()
            except StoreError as exc:
                # Nothing changed in memory; the next pass tries the same records again.
                self._log.error("history_prune_failed", error=str(exc))
