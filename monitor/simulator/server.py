"""The simulated CodeArts Build API, served by aiohttp on loopback.

Answers follow ../shared/reference/: field names, millisecond durations, both
timestamp shapes, nulls on stages that have not started, `check_stages: null`,
and the documented error bodies (CodeArts `error_code`/`error_msg`, API Gateway
APIGW.0301 for bad credentials and APIGW.0308 for throttling).

Control endpoints under `/_sim/` exist for tests in other processes; they are
not part of the real API.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.export.server import start_site
from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.scenario import RecordPlan, full_stages_body, make_plan

RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")
APIGW_TOKEN_MSG = "Incorrect IAM authentication information: token expires or invalid"  # noqa: S105


class SimClock:
    """Simulated wall-clock time: real time times `speed`, plus manual advances.

    With speed 0 the clock only moves when a test calls `advance`.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self.speed = speed
        self._base = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return self._base + (time.monotonic() - self._mono0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    at: float  # time.monotonic()
    method: str
    path: str
    record_id: str | None
    status: int
    fault: str | None


def error_body(code: str, msg: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": msg}


def apigw_body(code: str, msg: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": msg, "request_id": uuid.uuid4().hex}


class Simulator:
    """Builds, tokens, faults and a request log behind one aiohttp application."""

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        tokens: set[str] | None = None,
        faults: FaultPlan | None = None,
        clock: SimClock | None = None,
        accept_any_auth: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.clock = clock or SimClock(speed)
        self.tokens: set[str] = set(tokens) if tokens is not None else {secrets.token_urlsafe(24)}
        self.faults = faults or FaultPlan(seed=seed)
        # FOR BENCHMARKS ONLY: accept any request that carries an `Authorization` or
        # `X-Auth-Token` header without checking it, so the official SDK (which signs
        # with AK/SK) can be measured against the simulator. Never the real API's behaviour.
        self.accept_any_auth = accept_any_auth
        self.plans: dict[str, RecordPlan] = {}
        self.requests: deque[LoggedRequest] = deque(maxlen=200_000)
        self.requests_by_record: Counter[str] = Counter()
        self.answered: dict[str, dict[str, Any]] = {}  # last 200 body per record: the truth
        self.app = self._build_app()

    # --- builds ---------------------------------------------------------------------

    def add_plan(self, plan: RecordPlan) -> RecordPlan:
        self.plans[plan.record_id] = plan
        return plan

    def new_build(
        self,
        *,
        started_ago: float = 0.0,
        duration_scale: float = 1.0,
        fate: str | None = None,
        job_id: str = "",
        build_number: int = 1,
    ) -> RecordPlan:
        """Start a build `started_ago` simulated seconds before now."""
        plan = make_plan(
            self.rng,
            self.clock.now() - started_ago,
            job_id=job_id,
            build_number=build_number,
            speed_scale=duration_scale,
            fate=fate,
        )
        return self.add_plan(plan)

    def populate(self, count: int, duration_scale: float = 1.0) -> list[RecordPlan]:
        """`count` builds at every point of their life: some done, some running, some queued."""
        out = []
        for _ in range(count):
            plan = make_plan(self.rng, 0.0, speed_scale=duration_scale)
            span = plan.end_time() - plan.created
            ago = self.rng.uniform(-0.1 * span, 1.2 * span)
            out.append(self.add_plan(_reanchor(plan, self.clock.now() - ago)))
        return out

    def truth(self, record_id: str) -> dict[str, Any]:
        """What the API would answer for this record right now."""
        return full_stages_body(self.plans[record_id], self.clock.now())

    def request_count(self, record_id: str) -> int:
        return self.requests_by_record[record_id]

    # --- HTTP ------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/record/{record_id}/full-stages", self._full_stages)
        app.router.add_get("/_sim/records", self._sim_records)
        app.router.add_post("/_sim/faults", self._sim_faults)
        app.router.add_post("/_sim/clock", self._sim_clock)
        return app

    def authorized(self, request: web.Request) -> bool:
        if self.accept_any_auth:
            return "Authorization" in request.headers or "X-Auth-Token" in request.headers
        token = request.headers.get("X-Auth-Token")
        return token is not None and token in self.tokens

    def _log(
        self, request: web.Request, record_id: str | None, status: int, fault: Fault | None
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
            self.requests_by_record[record_id] += 1

    async def _full_stages(self, request: web.Request) -> web.StreamResponse:
        record_id = request.match_info["record_id"]
        if not self.authorized(request):
            self._log(request, record_id, 401, None)
            return web.json_response(apigw_body("APIGW.0301", APIGW_TOKEN_MSG), status=401)
        fault = self.faults.pick(record_id)
        if fault is not None:
            return await self._faulty(request, record_id, fault)
        if not RECORD_ID_RE.fullmatch(record_id):
            self._log(request, record_id, 400, None)
            return web.json_response(error_body("CB.00060200", "Invalid param"), status=400)
        plan = self.plans.get(record_id)
        if plan is None:
            self._log(request, record_id, 404, None)
            return web.json_response(
                error_body("DEVCB.00031006", "build task not found"), status=404
            )
        body = full_stages_body(plan, self.clock.now())
        self.answered[record_id] = body
        self._log(request, record_id, 200, None)
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/json", charset="UTF-8"
        )

    async def _faulty(
        self, request: web.Request, record_id: str, fault: Fault
    ) -> web.StreamResponse:
        status = 200
        try:
            if fault is Fault.THROTTLE:
                status = 429
                return web.json_response(
                    apigw_body("APIGW.0308", "The throttling threshold has been reached"),
                    status=429,
                    headers={"Retry-After": "1"},
                )
            if fault is Fault.HTTP_500:
                status = 500
                return web.json_response(
                    error_body("CB.00060100", "Network busy. Try again later."), status=500
                )
            if fault in (Fault.HTTP_502, Fault.HTTP_503):
                status = 502 if fault is Fault.HTTP_502 else 503
                return web.Response(
                    text=f"<html><body><h1>{status} Bad Gateway</h1></body></html>",
                    status=status,
                    content_type="text/html",
                )
            if fault is Fault.SLOW:
                await asyncio.sleep(self.faults.slow_seconds)
                return web.json_response(error_body("CB.00060100", "Network busy."), status=500)
            if fault is Fault.RESET:
                status = 0
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if fault is Fault.TRUNCATED:
                plan = self.plans.get(record_id)
                payload = json.dumps(
                    full_stages_body(plan, self.clock.now()) if plan else error_body("x", "y")
                ).encode()
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
                    {
                        "result": None,
                        "status": "fail",
                        "error": error_body("CB.00060101", "Internal error"),
                    }
                )
            if fault is Fault.OK_ERROR_CODE:
                return web.json_response(error_body("CB.00060101", "Internal error"))
            raise AssertionError(f"unhandled fault {fault}")
        finally:
            self._log(request, record_id, status, fault)

    async def _sim_records(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        return web.json_response(
            {
                rid: full_stages_body(p, now)["result"]["build_stages"]
                for rid, p in self.plans.items()
            }
        )

    async def _sim_faults(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "rate" in data:
            self.faults.rate = float(data["rate"])
        if "kind" in data:
            self.faults.inject(
                Fault(data["kind"]), data.get("record_id"), int(data.get("count", 1))
            )
        return web.json_response({"ok": True})

    async def _sim_clock(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.clock.advance(float(data.get("advance", 0)))
        return web.json_response({"now": self.clock.now()})


def _reanchor(plan: RecordPlan, created: float) -> RecordPlan:
    fields = {f: getattr(plan, f) for f in RecordPlan.__slots__}
    shift = created - plan.created
    fields["created"] = created
    if plan.stop_at is not None:
        fields["stop_at"] = plan.stop_at + shift
    return RecordPlan(**fields)


async def serve(sim: Simulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the simulator's server; returns the runner and the bound port."""
    return await start_site(sim.app, host, port)
