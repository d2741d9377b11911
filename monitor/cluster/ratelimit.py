"""One request budget for every replica: a token bucket in Redis.

The same rules as the process-wide `codearts.ratelimit.TokenBucket` (a throttle
pauses everyone for its Retry-After, then the rate halves and recovers by
doubling every `recovery` seconds), but the bucket, the pause and the slow-down
live in one Redis hash, so `MONITOR_RATE_LIMIT` and `MONITOR_RATE_BURST` bound
the cluster as a whole and a 429 seen by one replica pauses all of them.

Tokens are taken in small batches (one round trip per batch, a batch at most 2%
of a second's budget); a batch not used within the time it stands for (at least
BATCH_HOLD) is dropped, so held tokens never add up to a burst the bucket would
not have allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis

from monitor.cluster import scripts
from monitor.cluster.coordinator import ClusterUnavailable, RedisObserver, timed

DEFAULT_PAUSE = 1.0  # as the process-wide bucket: a throttle without Retry-After
MAX_PAUSE = 300.0
MIN_FACTOR = 1 / 16
DEFAULT_RECOVERY = 10.0
BATCH_SHARE = 0.02  # a batch is at most this many seconds' worth of the rate
MAX_BATCH = 10
# A batch may be spent this long after it was granted (or as long as it stands for, if
# longer): spent late, it could only exceed the budget by rate x this, i.e. one batch.
BATCH_HOLD = 0.1


class ClusterGate:
    """A RequestGate whose budget is shared through Redis."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        burst: int,
        *,
        observer: RedisObserver,
        unavailable: Callable[[str], Exception] = ClusterUnavailable,
        recovery: float = DEFAULT_RECOVERY,
        default_pause: float = DEFAULT_PAUSE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._key = key
        self._observer = observer
        self._unavailable = unavailable  # what acquire raises when Redis does not answer
        self._recovery = recovery
        self._default_pause = default_pause
        self._clock = clock
        self._take = redis.register_script(scripts.TAKE)
        self._throttle = redis.register_script(scripts.THROTTLE)
        self.batch = max(1, min(MAX_BATCH, burst, int(rate * BATCH_SHARE)))
        self._held = 0
        self._held_until = float("-inf")
        self._rate_now = rate
        self.paused_until = 0.0  # monotonic; as seen in the last answer from Redis
        self.pauses = 0  # pauses this replica started
        self.throttles = 0
        self.round_trips = 0
        self._lock: anyio.Lock | None = None
        self._pending: list[float] = []  # throttles still to tell Redis about
        self._wake: anyio.Event | None = None

    def current_rate(self, now: float | None = None) -> float:
        """The cluster's rate in force, as Redis said at the last round trip."""
        return self._rate_now

    async def acquire(self) -> None:
        """Wait until one more request may be sent by this cluster."""
        if self._held and self._clock() < self._held_until:
            self._held -= 1
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            while True:
                now = self._clock()
                if now < self.paused_until:
                    await anyio.sleep(self.paused_until - now)
                    continue
                if self._held and now < self._held_until:
                    self._held -= 1
                    return
                self._held = 0
                try:
                    granted, wait, rate = await timed(
                        self._observer,
                        "rate_limit",
                        self._take(
                            keys=[self._key],
                            args=[self.rate, self.burst, self.batch, self._recovery],
                        ),
                    )
                except ClusterUnavailable as exc:
                    raise self._unavailable(str(exc)) from None
                self.round_trips += 1
                granted, wait = int(float(granted)), float(wait)
                self._rate_now = float(rate)
                if granted:
                    self._held = granted - 1
                    self._held_until = now + max(granted / max(self._rate_now, 1e-9), BATCH_HOLD)
                    return
                if wait > 1.0 / max(self._rate_now, 1e-9) + 0.001:
                    self.paused_until = now + wait  # a pause, not just an empty bucket
                await anyio.sleep(min(max(wait, 0.001), MAX_PAUSE))

    def throttled(self, retry_after: float | None) -> None:
        """The API refused a request as too many: pause here now, and tell every replica."""
        self.throttles += 1
        pause = self._default_pause if retry_after is None else retry_after
        pause = min(max(pause, 0.0), MAX_PAUSE)
        self.paused_until = max(self.paused_until, self._clock() + pause)
        self._held = 0
        self._pending.append(pause)
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Tell Redis of throttles as they happen (the client reports them synchronously)."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            if not self._pending:
                await self._wake.wait()
            pause = max(self._pending)
            self._pending.clear()
            try:
                started = await timed(
                    self._observer,
                    "throttle",
                    self._throttle(
                        keys=[self._key],
                        args=[self.rate, self.burst, 0, self._recovery, pause, MIN_FACTOR],
                    ),
                )
            except ClusterUnavailable:
                continue  # Redis away: polling pauses anyway, and the local pause holds
            if int(started):
                self.pauses += 1
