"""When to poll what: one dispatcher, a fixed pool of workers, a heap of due times.

Each active record is polled at a fixed rate (due times do not drift with
request latency). First polls of records known at start-up are spread over one
interval so a large watchlist does not arrive as one burst; records added while
running are polled at once. Errors back off exponentially with jitter, per
record. Concurrency is bounded by the number of workers. The dispatcher sleeps
to points of a grid (1% of the interval, at most 100 ms), never waking early.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from monitor.codearts.errors import CodeArtsError, Throttled
from monitor.domain import RecordSnapshot, RecordState
from monitor.domain.backoff import jittered_backoff
from monitor.logging import get_logger
from monitor.tracking.watchlist import WatchedRecord, Watchlist

PollFn = Callable[[str], Awaitable[RecordSnapshot]]
IDLE_TICK = 1.0  # the dispatcher wakes at least this often, to prove it is alive
# The dispatcher wakes on a grid of 1% of the interval (at most 100 ms), so polls due
# close together start in one wake-up. Each wake-up of an idle event loop costs tens of
# microseconds of CPU, as much as the rest of a poll's own work; starting at most 1% of
# an interval late is invisible in the data.
COALESCE_SHARE = 0.01
COALESCE_MAX = 0.1


class Scheduler:
    """Polls every active record of a watchlist until it is no longer active."""

    def __init__(
        self,
        watchlist: Watchlist,
        poll: PollFn,
        *,
        interval: float,
        max_concurrency: int,
        max_watch: float,
        backoff_max: float = 300.0,
        stall_timeout: float = 120.0,
        held_until: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        coalesce: float = COALESCE_MAX,
        may_poll: Callable[[str], bool] | None = None,
    ) -> None:
        self._watchlist = watchlist
        self._poll = poll
        self.interval = interval
        self._concurrency = max_concurrency
        self._max_watch = max_watch
        self._backoff_max = max(backoff_max, interval)
        self._stall_timeout = stall_timeout
        # Monotonic time until which requests are held back on purpose (a throttling
        # pause of the rate gate): waiting for it is not a stall.
        self._held_until = held_until or (lambda: 0.0)
        # With replicas sharing a watchlist, only records this one owns are polled; the
        # others stay planned, one interval apart, so one moving here is polled in time.
        self._may_poll = may_poll
        self._dispatching: anyio.CancelScope | None = None
        self._finished: anyio.Event | None = None
        self.stopping = False
        self._clock = clock
        self._wall = wall
        self._tick = max(0.0, min(coalesce, interval * COALESCE_SHARE))
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._wake = anyio.Event()
        # When the sleeping dispatcher wakes by itself; -inf while it is not sleeping.
        self._sleeping_until = float("-inf")
        self._running = False
        self._first_round: set[str] = set()
        self._first_round_done = anyio.Event()
        self.heartbeat = clock()
        self.in_flight = 0
        # Recent (start - due) delays, for benchmarks and the debug log.
        self.delays: deque[float] = deque(maxlen=10_000)
        self._log = get_logger("monitor.scheduler")

    # --- health ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once every record known at start-up has been polled once."""
        return self._first_round_done.is_set()

    async def wait_ready(self) -> None:
        await self._first_round_done.wait()

    @property
    def stalled(self) -> bool:
        """True when the dispatcher has made no progress for the stall timeout."""
        if not self._running or self.stopping:
            return False
        progress = max(self.heartbeat, self._held_until())
        return self._clock() - progress > self._stall_timeout

    @property
    def scheduled(self) -> int:
        return len(self._due)

    # --- scheduling --------------------------------------------------------------------

    def on_added(self, rec: WatchedRecord) -> None:
        """Plan the first poll of a record that became active (the watchlist calls it)."""
        if self._running:
            self.schedule(rec.record_id, self._clock())
        else:
            self._first_round.add(rec.record_id)
            self.schedule(rec.record_id, self._clock() + self._rng.uniform(0, self.interval))

    def schedule(self, record_id: str, due: float) -> None:
        """Poll `record_id` at monotonic time `due` (replacing any earlier plan)."""
        self._due[record_id] = due
        heapq.heappush(self._heap, (due, next(self._seq), record_id))
        # Wake the dispatcher only if it would otherwise sleep past this due time: every
        # poll reschedules its record an interval ahead, and waking for that cost a
        # needless dispatcher round per poll.
        if self._wake_time(due) < self._sleeping_until:
            self._wake.set()

    def _wake_time(self, due: float) -> float:
        """When the dispatcher wakes for a poll due at `due`: the next point of the grid."""
        if self._tick <= 0:
            return due
        return max(due, math.ceil(due / self._tick) * self._tick)

    def stop(self) -> None:
        """Take no more work: polls already running finish, then `run()` returns."""
        self.stopping = True
        if self._dispatching is not None:
            self._dispatching.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Dispatch until cancelled, or until `stop()` and the last running poll is done."""
        self._running = True
        self._finished = anyio.Event()
        self.heartbeat = self._clock()
        if not self._first_round:
            self._first_round_done.set()
        send, receive = anyio.create_memory_object_stream[tuple[WatchedRecord, float]](0)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self._concurrency):
                    tg.start_soon(self._worker, receive.clone())
                receive.close()
                task_status.started()
                with anyio.CancelScope() as self._dispatching:
                    if not self.stopping:
                        await self._dispatch(send)
                send.close()  # workers finish what they hold, then see the end of the stream
        finally:
            self._running = False
            self._finished.set()

    async def wait_finished(self) -> None:
        """Return once `run()` has returned (after `stop()`, when no poll is left running)."""
        if self._finished is not None:
            await self._finished.wait()

    async def _dispatch(self, send: MemoryObjectSendStream[tuple[WatchedRecord, float]]) -> None:
        async with send:
            while True:
                self.heartbeat = now = self._clock()
                if not self._heap:
                    await self._sleep(IDLE_TICK)
                    continue
                due, _, record_id = self._heap[0]
                if due > now:
                    await self._sleep(min(self._wake_time(due) - now, IDLE_TICK))
                    continue
                heapq.heappop(self._heap)
                if self._due.get(record_id) != due:
                    continue  # superseded by a later schedule() call
                del self._due[record_id]
                rec = self._watchlist.records.get(record_id)
                if rec is None or rec.state is not RecordState.ACTIVE:
                    self._first_round_finished(record_id)
                    continue
                if self._may_poll is not None and not self._may_poll(record_id):
                    self._first_round_finished(record_id)
                    later = due + self.interval
                    self.schedule(record_id, later if later > now else now + self.interval)
                    continue
                if self._wall() - rec.added_at > self._max_watch:
                    await self._watchlist.expire(rec)
                    self._first_round_finished(record_id)
                    continue
                await send.send((rec, due))

    async def _sleep(self, seconds: float) -> None:
        self._wake = anyio.Event()
        self._sleeping_until = self._clock() + seconds
        try:
            with anyio.move_on_after(seconds):
                await self._wake.wait()
        finally:
            self._sleeping_until = float("-inf")

    async def _worker(
        self, receive: MemoryObjectReceiveStream[tuple[WatchedRecord, float]]
    ) -> None:
        async with receive:
            async for rec, due in receive:
                self.in_flight += 1
                try:
                    next_due = await self._poll_once(rec, due)
                finally:
                    self.in_flight -= 1
                    self._first_round_finished(rec.record_id)
                if rec.state is RecordState.ACTIVE and rec.record_id in self._watchlist.records:
                    self.schedule(rec.record_id, next_due)

    async def _poll_once(self, rec: WatchedRecord, due: float) -> float:
        started = self._clock()
        self.delays.append(started - due)
        try:
            snapshot = await self._poll(rec.record_id)
        except CodeArtsError as exc:
            try:
                await self._watchlist.apply_error(rec, exc)
            except Exception:
                self._log.exception("poll_crashed", record_id=rec.record_id)
            return self._clock() + self._backoff(rec.consecutive_errors, exc)
        except Exception:
            # A bug of ours must not take the daemon down with one record.
            self._log.exception("poll_crashed", record_id=rec.record_id)
            rec.consecutive_errors += 1
            return self._clock() + self._backoff(rec.consecutive_errors, None)
        try:
            await self._watchlist.apply_snapshot(rec, snapshot)
        except Exception:
            self._log.exception("poll_crashed", record_id=rec.record_id)
            rec.consecutive_errors += 1
            return self._clock() + self._backoff(rec.consecutive_errors, None)
        next_due = due + self.interval
        now = self._clock()
        return next_due if next_due > now else now

    def _backoff(self, failures: int, exc: CodeArtsError | None) -> float:
        """Exponential backoff with full jitter, never sooner than one interval."""
        delay = jittered_backoff(failures, self.interval, self._backoff_max, self._rng)
        if isinstance(exc, Throttled) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self._backoff_max))
        return delay

    def _first_round_finished(self, record_id: str) -> None:
        if self._first_round:
            self._first_round.discard(record_id)
            if not self._first_round:
                self._first_round_done.set()
