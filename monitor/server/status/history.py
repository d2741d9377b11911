"""What the status page remembers beyond the snapshots: recent transitions and the last poll.

A listener on the watchlist's events. Both maps are bounded: at most `per_record`
transitions of one record and `total` of all records (the oldest go first), and a
record's entries are dropped when it leaves the watchlist, so a daemon that runs for
months keeps no more than the page can show.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from monitor.tracking.tracker import PollDone, Transition
from monitor.tracking.watchlist import WatchlistEvent

PER_RECORD = 50
TOTAL = 10_000


@dataclass(frozen=True, slots=True)
class SeenTransition:
    """A transition and when the daemon saw it (unix seconds)."""

    at: float
    transition: Transition


@dataclass(frozen=True, slots=True)
class LastPoll:
    at: float
    outcome: str  # "success" or the error's outcome


class TransitionHistory:
    """The last transitions of every watched record, and the time and outcome of its last poll."""

    def __init__(
        self,
        *,
        per_record: int = PER_RECORD,
        total: int = TOTAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._per_record = per_record
        self._total = total
        self._clock = clock
        # Ordered by each record's latest transition: the first one is the oldest to trim.
        self._transitions: OrderedDict[str, deque[SeenTransition]] = OrderedDict()
        self._count = 0
        self._polls: dict[str, LastPoll] = {}

    def __len__(self) -> int:
        return self._count

    def on_event(self, event: WatchlistEvent) -> None:
        if isinstance(event, Transition):
            self._add(event)
        elif isinstance(event, PollDone):
            self._polls[event.record_id] = LastPoll(self._clock(), event.outcome)

    def _add(self, t: Transition) -> None:
        kept = self._transitions.get(t.record_id)
        if kept is None:
            kept = self._transitions[t.record_id] = deque()
        else:
            self._transitions.move_to_end(t.record_id)
        if len(kept) >= self._per_record:
            kept.popleft()
            self._count -= 1
        kept.append(SeenTransition(self._clock(), t))
        self._count += 1
        while self._count > self._total:
            # Records whose last transition is oldest lose their oldest transitions first.
            rid, oldest = next(iter(self._transitions.items()))
            oldest.popleft()
            self._count -= 1
            if not oldest:
                del self._transitions[rid]

    def forget(self, record_id: str) -> None:
        """The record left the watchlist: drop what was kept of it."""
        kept = self._transitions.pop(record_id, None)
        if kept is not None:
            self._count -= len(kept)
        self._polls.pop(record_id, None)

    def transitions(self, record_id: str) -> list[SeenTransition]:
        """The record's kept transitions, newest first."""
        return list(reversed(self._transitions.get(record_id, ())))

    def last_poll(self, record_id: str) -> LastPoll | None:
        return self._polls.get(record_id)
