"""One request budget for the whole process: a token bucket that backs off when throttled.

Every request to the API passes `acquire()` first, whichever record it is for,
so the configured rate bounds the process as a whole. When the service says
"too many requests" (429 / APIGW.0308, or CB.00060211), the whole process
pauses for the `Retry-After` it was given (or `DEFAULT_PAUSE` without one) and
then runs at half its rate, recovering to the configured rate by doubling every
`recovery` seconds without another throttle. The published limit is unknown
(the API definitions only name the policy `ten_120_min`), so adapting to what
the service says is safer than trusting one number.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

DEFAULT_PAUSE = 1.0  # seconds to pause on a throttle that gave no Retry-After (INVENTED)
MAX_PAUSE = 300.0  # a Retry-After above this is capped: a bad header must not stall us for good
MIN_FACTOR = 1 / 16  # the slowest we go after repeated throttles, as a share of the rate
DEFAULT_RECOVERY = 10.0  # seconds without a throttle for the rate to double back


class TokenBucket:
    """`rate` requests per second with bursts of up to `burst`, shared by every caller.

    Waiters are served in arrival order (an `anyio.Lock` is fair), so no record
    starves another.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        recovery: float = DEFAULT_RECOVERY,
        default_pause: float = DEFAULT_PAUSE,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._recovery = recovery
        self._default_pause = default_pause
        self._max_pause = max_pause
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock: anyio.Lock | None = None  # made on first use: it needs an event loop
        self.paused_until = 0.0  # monotonic time before which nothing is sent
        self._factor_at_throttle = 1.0
        self._throttled_at: float | None = None
        self.throttles = 0  # how many throttles this gate heard of
        self.pauses = 0  # how many of them started a new pause (and halved the rate)

    def current_rate(self, now: float | None = None) -> float:
        """The rate in force now: the configured one, or less while recovering from a throttle."""
        if self._throttled_at is None:
            return self.rate
        now = self._clock() if now is None else now
        since = max(0.0, now - max(self._throttled_at, self.paused_until))
        factor = self._factor_at_throttle * 2 ** (since / self._recovery)
        if factor >= 1.0:
            self._throttled_at = None
            return self.rate
        return self.rate * factor

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.current_rate(now))

    async def acquire(self) -> None:
        """Wait until one more request may be sent."""
        if self._lock is None:
            self._lock = anyio.Lock()
        # Fast path: nobody waiting, not paused, a token in the bucket. Taking it without
        # the lock saves two event-loop round trips per request (the lock's checkpoints),
        # which at hundreds of polls a second is a large share of a poll's CPU.
        if not self._lock.locked():
            now = self._clock()
            if now >= self.paused_until:
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
        async with self._lock:
            while True:
                now = self._clock()
                if now < self.paused_until:
                    await anyio.sleep(self.paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await anyio.sleep((1.0 - self._tokens) / self.current_rate(now))

    def throttled(self, retry_after: float | None) -> None:
        """The service refused a request as too many: pause everyone, then go slower."""
        self.throttles += 1
        now = self._clock()
        pause = self._default_pause if retry_after is None else retry_after
        pause = min(max(pause, 0.0), self._max_pause)
        if now < self.paused_until:
            # Requests already in flight when the first refusal came back say the same
            # thing again: honour the longest wait but slow down only once per pause.
            self.paused_until = max(self.paused_until, now + pause)
            self._stamp = max(self._stamp, self.paused_until)
            return
        self.pauses += 1
        factor = self.current_rate(now) / self.rate
        self._factor_at_throttle = max(MIN_FACTOR, factor / 2)
        self._throttled_at = now
        self.paused_until = now + pause
        self._tokens = 0.0  # resume gently, not with a full burst
        self._stamp = self.paused_until
