"""The simulator's log of every request it answered, for tests to read."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass

from aiohttp import web

from monitor.simulator.faults import Fault


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    at: float  # time.monotonic() when the request arrived (handlers log before awaiting)
    method: str
    path: str
    record_id: str | None
    status: int
    fault: str | None


class RequestLog:
    """The last requests in arrival order, and how often each record was asked for."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self.requests: deque[LoggedRequest] = deque(maxlen=maxlen)
        self.by_record: Counter[str] = Counter()

    def __call__(
        self,
        request: web.Request,
        record_id: str | None,
        status: int,
        fault: Fault | None = None,
    ) -> None:
        self.requests.append(
            LoggedRequest(
                time.monotonic(),
                request.method,
                request.path,
                record_id,
                status,
                fault.value if fault else None,
            )
        )
        if record_id is not None:
            self.by_record[record_id] += 1
