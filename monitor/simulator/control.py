"""The simulator's own `/_sim/` routes, for tests in other processes; not part of the real API.

Not behind the gateway: they need no credentials.
"""

from __future__ import annotations

from aiohttp import web

from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.gateway import Gateway
from monitor.simulator.scenario import full_stages_body
from monitor.simulator.world import World


class Control:
    """Reads and steers the world, the faults and the gateway's tokens."""

    def __init__(self, *, world: World, faults: FaultPlan, gateway: Gateway) -> None:
        self._world = world
        self._faults = faults
        self._gateway = gateway

    async def records(self, request: web.Request) -> web.Response:
        """Every record's stages as the API would answer them now."""
        world = self._world
        world.start_due_builds()
        now = world.clock.now()
        return web.json_response(
            {
                rid: full_stages_body(p, now)["result"]["build_stages"]
                for rid, p in world.plans.items()
            }
        )

    async def faults(self, request: web.Request) -> web.Response:
        """Set `rate`, `slow_seconds`, `retry_after` (null: none sent); queue `kind` faults."""
        data = await request.json()
        plan = self._faults
        if "rate" in data:
            plan.rate = float(data["rate"])
        if "slow_seconds" in data:
            plan.slow_seconds = float(data["slow_seconds"])
        if "retry_after" in data:
            ra = data["retry_after"]
            plan.retry_after = None if ra is None else str(ra)
        if "kind" in data:
            plan.inject(Fault(data["kind"]), data.get("record_id"), int(data.get("count", 1)))
        return web.json_response({"ok": True})

    async def jobs(self, request: web.Request) -> web.Response:
        """Make a job (`{"job_name": N, "every": S}`) or start a build (`{"job_id": J}`)."""
        data = await request.json()
        world = self._world
        if "job_id" in data:
            plan = world.new_build(job_id=str(data["job_id"]))
            return web.json_response({"record_id": plan.record_id})
        job = world.add_job(data.get("job_name"), every=float(data.get("every", 0)))
        return web.json_response(
            {"job_id": job.job_id, "job_name": job.job_name, "project_id": job.build_project_id}
        )

    async def clock(self, request: web.Request) -> web.Response:
        data = await request.json()
        self._world.clock.advance(float(data.get("advance", 0)))
        return web.json_response({"now": self._world.clock.now()})

    async def expire_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"expired": self._gateway.expire_tokens()})
