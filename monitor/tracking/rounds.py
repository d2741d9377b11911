"""What both discoveries share: the round loop, its counters, and how the last round went.

A round asks the API many times (per job, per project, per batch); each answer is
counted with `count_run`. The round as a whole is summed up in `last_outcome`:
"success" when every answer was, else the first error outcome of that round, so one
look at the status page says whether the last round fully worked and, if not, what
went wrong first. `last_round_at` is wall-clock time (unix seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

SUCCESS = "success"


class RunCounter(Protocol):
    def count_discovery_run(self, outcome: str) -> None: ...


class Rounds:
    """A discovery's rounds: `run_once` runs `_round` and records how it went."""

    def __init__(
        self, counter: RunCounter, interval: float, wall: Callable[[], float] = time.time
    ) -> None:
        self._counter = counter
        self._interval = interval
        self._wall = wall
        self.rounds_started = 0
        self.rounds_completed = 0
        self.last_round_at: float | None = None  # when the last completed round ended
        self.last_outcome: str | None = None  # of that round: "success" or its first error
        self._outcome: str | None = None  # of the round in progress
        self._round_done = anyio.Event()

    async def _round(self) -> None:
        raise NotImplementedError

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """A round now, then one every interval, until cancelled."""
        task_status.started()
        while True:
            await self.run_once()
            await anyio.sleep(self._interval)

    async def run_once(self) -> None:
        """One round; what failed in it is retried next round."""
        self.rounds_started += 1
        self._outcome = None
        await self._round()
        self.rounds_completed += 1
        self.last_round_at = self._wall()
        self.last_outcome = self._outcome or SUCCESS
        self._round_done.set()
        self._round_done = anyio.Event()

    async def wait_rounds(self, count: int) -> None:
        """Return once `count` rounds have completed since the process started."""
        while self.rounds_completed < count:
            await self._round_done.wait()

    def count_run(self, outcome: str) -> None:
        """Count one answer of this round (`outcome` is "success" or an error's outcome)."""
        self._counter.count_discovery_run(outcome)
        if self._outcome is None or self._outcome == SUCCESS:
            self._outcome = outcome
