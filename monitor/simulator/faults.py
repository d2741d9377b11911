"""What can go wrong with an answer (chosen at random or by a test), and the faulty answers."""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from monitor.simulator.errors import apigw_body, error_body


class Fault(StrEnum):
    THROTTLE = "throttle"  # 429, APIGW.0308, Retry-After (none when `retry_after` is None)
    HTTP_500 = "http_500"  # CB.00060100 network busy
    HTTP_502 = "http_502"  # a gateway page, not JSON
    HTTP_503 = "http_503"
    SLOW = "slow"  # answers after the client's timeout
    RESET = "reset"  # connection closed before any answer
    TRUNCATED = "truncated"  # body cut short of its Content-Length
    NOT_JSON = "not_json"  # 200 with an HTML body
    WRONG_SHAPE = "wrong_shape"  # 200, JSON, but not the documented shape
    OK_STATUS_FAIL = "ok_status_fail"  # 200 with "status": "fail"
    OK_ERROR_CODE = "ok_error_code"  # 200 with error_code / error_msg

    @property
    def http_status(self) -> int:
        """The HTTP status this fault is answered (and logged) with; 0 for no answer."""
        return FAULT_STATUS[self]


FAULT_STATUS = {
    Fault.THROTTLE: 429,
    Fault.HTTP_500: 500,
    Fault.HTTP_502: 502,
    Fault.HTTP_503: 503,
    Fault.SLOW: 500,
    Fault.RESET: 0,
    Fault.TRUNCATED: 200,
    Fault.NOT_JSON: 200,
    Fault.WRONG_SHAPE: 200,
    Fault.OK_STATUS_FAIL: 200,
    Fault.OK_ERROR_CODE: 200,
}


@dataclass(slots=True)
class _Queued:
    fault: Fault
    record_id: str | None
    remaining: int


class FaultPlan:
    """Random faults at `rate` over `kinds`, plus faults a test queues for a record."""

    def __init__(
        self,
        rate: float = 0.0,
        kinds: list[Fault] | None = None,
        seed: int | None = None,
        slow_seconds: float = 30.0,
        retry_after: str | None = "1",
    ) -> None:
        self.rate = rate
        # The Retry-After header of THROTTLE answers. The real API's value is not
        # documented; tests shorten it (a fraction is not valid HTTP, but we accept it).
        # None sends the 429 with no Retry-After at all.
        self.retry_after = retry_after
        self.kinds = list(kinds) if kinds else list(Fault)
        self.slow_seconds = slow_seconds
        self._rng = random.Random(seed)
        self._queued: deque[_Queued] = deque()

    def inject(self, fault: Fault, record_id: str | None = None, count: int = 1) -> None:
        """Answer the next `count` matching requests with `fault` (any record if None)."""
        self._queued.append(_Queued(fault, record_id, count))

    def clear(self) -> None:
        self._queued.clear()
        self.rate = 0.0

    def pick_keyed(self, key: str, rng: random.Random) -> Fault | None:
        """A fault queued for exactly `key`, else one at `rate` drawn from `rng`.

        For routes other than full-stages: they never take a fault queued for "any
        record", and draw from their own generator, so adding them changes no
        record's faults.
        """
        for q in self._queued:
            if q.record_id == key:
                q.remaining -= 1
                if q.remaining <= 0:
                    self._queued.remove(q)
                return q.fault
        if self.rate > 0 and rng.random() < self.rate:
            return rng.choice(self.kinds)
        return None

    def pick(self, record_id: str | None) -> Fault | None:
        for q in self._queued:
            if q.record_id is None or q.record_id == record_id:
                q.remaining -= 1
                if q.remaining <= 0:
                    self._queued.remove(q)
                return q.fault
        if self.rate > 0 and self._rng.random() < self.rate:
            return self._rng.choice(self.kinds)
        return None


async def answer(
    request: web.Request,
    fault: Fault,
    plan: FaultPlan,
    body: Callable[[], dict[str, Any]],
) -> web.StreamResponse:
    """The faulty answer to `request`; `body` makes the good answer a TRUNCATED one cuts short."""
    if fault is Fault.THROTTLE:
        headers = {} if plan.retry_after is None else {"Retry-After": plan.retry_after}
        return web.json_response(
            apigw_body("APIGW.0308", "The throttling threshold has been reached"),
            status=429,
            headers=headers,
        )
    if fault is Fault.HTTP_500:
        return web.json_response(
            error_body("CB.00060100", "Network busy. Try again later."), status=500
        )
    if fault in (Fault.HTTP_502, Fault.HTTP_503):
        status = fault.http_status
        return web.Response(
            text=f"<html><body><h1>{status} Bad Gateway</h1></body></html>",
            status=status,
            content_type="text/html",
        )
    if fault is Fault.SLOW:
        await asyncio.sleep(plan.slow_seconds)
        return web.json_response(error_body("CB.00060100", "Network busy."), status=500)
    if fault is Fault.RESET:
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPServiceUnavailable()
    if fault is Fault.TRUNCATED:
        payload = json.dumps(body()).encode()
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.content_length = len(payload)
        await resp.prepare(request)
        await resp.write(payload[: len(payload) // 2])
        if request.transport is not None:
            request.transport.abort()
        return resp
    if fault is Fault.NOT_JSON:
        return web.Response(
            text="<html><body>Service Unavailable</body></html>", content_type="text/html"
        )
    if fault is Fault.WRONG_SHAPE:
        return web.json_response({"result": {"build_stages": [1, 2]}, "status": "success"})
    if fault is Fault.OK_STATUS_FAIL:
        # The shape of `error` here is inferred: the doc only says "Object".
        return web.json_response(
            {"result": None, "status": "fail", "error": error_body("CB.00060101", "Internal error")}
        )
    if fault is Fault.OK_ERROR_CODE:
        return web.json_response(error_body("CB.00060101", "Internal error"))
    raise AssertionError(f"unhandled fault {fault}")
