"""The simulated CodeArts Build API, served by aiohttp on loopback.

Answers follow ../shared/reference/: field names, millisecond durations, both
timestamp shapes, nulls on stages that have not started, `check_stages: null`,
and the documented error bodies (CodeArts `error_code`/`error_msg`, API Gateway
APIGW.0301 for bad credentials and APIGW.0308 for throttling).

`Simulator` assembles the rooms (world, gateway, IAM, API, control) behind one
aiohttp application; `routes` is the one place a route is added.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from monitor.simulator.api import Api
from monitor.simulator.control import Control
from monitor.simulator.faults import FaultPlan
from monitor.simulator.gateway import Gateway
from monitor.simulator.iam import TOKEN_LIFETIME, Iam
from monitor.simulator.projects import ProjectWorld
from monitor.simulator.requestlog import LoggedRequest, RequestLog
from monitor.simulator.scenario import RecordPlan
from monitor.simulator.world import SimClock, SimJob, World

__all__ = ["LoggedRequest", "SimClock", "SimJob", "Simulator", "serve"]


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
        iam_users: dict[tuple[str, str], str] | None = None,
        aksk: dict[str, str] | None = None,
        wall: Callable[[], float] = time.time,
        token_lifetime: float = TOKEN_LIFETIME,
        accept_any_auth: bool = False,
    ) -> None:
        self.world = World(seed=seed, clock=clock or SimClock(speed))
        self.faults = faults or FaultPlan(seed=seed)
        self.log = RequestLog()
        self.gateway = Gateway(
            tokens=set(tokens) if tokens is not None else {secrets.token_urlsafe(24)},
            aksk=aksk,
            log=self.log,
            wall=wall,
            accept_any_auth=accept_any_auth,
        )
        self.iam = Iam(
            gateway=self.gateway, log=self.log, users=iam_users, token_lifetime=token_lifetime
        )
        self.api = Api(world=self.world, faults=self.faults, log=self.log)
        self.control = Control(world=self.world, faults=self.faults, gateway=self.gateway)
        # Projects of many jobs: the job lists, brief records and ShowBuildRecord.
        self.projects = ProjectWorld(world=self.world, faults=self.faults, log=self.log, seed=seed)
        self.app = web.Application()
        self.app.router.add_routes(self.routes())

    def routes(self) -> list[web.RouteDef]:
        """Every route the simulator answers. API routes pass the gateway (`gate`) first."""
        gate, api, control = self.gateway.guard, self.api, self.control
        return [
            # IAM is not behind the API Gateway.
            web.post("/v3/auth/tokens", self.iam.tokens),
            # CodeArts Build.
            web.get("/v1/record/{record_id}/full-stages", gate(api.full_stages)),
            web.get("/v1/job/{job_id}/info", gate(api.job_info)),
            web.get("/v1/record/{build_project_id}/records", gate(api.list_records)),
            web.get("/v1/record/{job_id}/{build_no}/record-info", gate(api.record_info)),
            *self.projects.routes(gate),
            # The simulator's controls, for tests in other processes.
            web.get("/_sim/records", control.records),
            web.post("/_sim/jobs", control.jobs),
            web.post("/_sim/faults", control.faults),
            web.post("/_sim/clock", control.clock),
            web.post("/_sim/expire-tokens", control.expire_tokens),
        ]

    # --- the build world -------------------------------------------------------------

    @property
    def rng(self) -> random.Random:
        return self.world.rng

    @property
    def clock(self) -> SimClock:
        return self.world.clock

    @property
    def plans(self) -> dict[str, RecordPlan]:
        return self.world.plans

    @property
    def jobs(self) -> dict[str, SimJob]:
        return self.world.jobs

    @property
    def answered(self) -> dict[str, dict[str, Any]]:
        """The last 200 body per record: what the daemon was told."""
        return self.world.answered

    def add_plan(self, plan: RecordPlan) -> RecordPlan:
        return self.world.add_plan(plan)

    def new_build(
        self,
        *,
        started_ago: float = 0.0,
        duration_scale: float = 1.0,
        fate: str | None = None,
        job_id: str = "",
        build_number: int | None = None,
    ) -> RecordPlan:
        """Start a build `started_ago` simulated seconds before now (see `World.new_build`)."""
        return self.world.new_build(
            started_ago=started_ago,
            duration_scale=duration_scale,
            fate=fate,
            job_id=job_id,
            build_number=build_number,
        )

    def add_job(
        self,
        job_name: str | None = None,
        *,
        every: float = 0.0,
        first_in: float | None = None,
        duration_scale: float = 1.0,
    ) -> SimJob:
        """A new build job; with `every` > 0 it starts a build every `every` simulated seconds."""
        return self.world.add_job(
            job_name, every=every, first_in=first_in, duration_scale=duration_scale
        )

    def start_due_builds(self) -> list[RecordPlan]:
        return self.world.start_due_builds()

    def builds_of(self, job_id: str) -> list[RecordPlan]:
        return self.world.builds_of(job_id)

    def populate(self, count: int, duration_scale: float = 1.0) -> list[RecordPlan]:
        return self.world.populate(count, duration_scale)

    def truth(self, record_id: str) -> dict[str, Any]:
        """What the API would answer for this record right now."""
        return self.world.truth(record_id)

    # --- the request log ---------------------------------------------------------------

    @property
    def requests(self) -> deque[LoggedRequest]:
        return self.log.requests

    @requests.setter
    def requests(self, value: deque[LoggedRequest]) -> None:
        self.log.requests = value

    @property
    def requests_by_record(self) -> Counter[str]:
        return self.log.by_record

    def request_count(self, record_id: str) -> int:
        return self.log.by_record[record_id]

    # --- the gateway and IAM -------------------------------------------------------------

    @property
    def tokens(self) -> set[str]:
        """Fixed tokens the gateway accepts (besides those IAM issued)."""
        return self.gateway.tokens

    @tokens.setter
    def tokens(self, value: set[str]) -> None:
        self.gateway.tokens = value

    @property
    def aksk(self) -> dict[str, str]:
        return self.gateway.aksk

    @property
    def issued(self) -> dict[str, float]:
        return self.gateway.issued

    @property
    def aksk_refusals(self) -> Counter[str]:
        return self.gateway.aksk_refusals

    @property
    def aksk_locked_until(self) -> dict[str, float]:
        return self.gateway.aksk_locked_until

    @property
    def accept_any_auth(self) -> bool:
        return self.gateway.accept_any_auth

    @property
    def wall(self) -> Callable[[], float]:
        return self.gateway.wall

    def expire_tokens(self) -> int:
        """Make every IAM token issued so far expired, as 24 hours would; returns how many."""
        return self.gateway.expire_tokens()

    @property
    def iam_users(self) -> dict[tuple[str, str], str]:
        return self.iam.users

    @property
    def token_lifetime(self) -> float:
        return self.iam.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, value: float) -> None:
        self.iam.token_lifetime = value

    @property
    def token_requests(self) -> int:
        return self.iam.token_requests

    @property
    def token_scopes(self) -> list[Any]:
        return self.iam.token_scopes


async def serve(sim: Simulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the simulator's server; returns the runner and the bound port."""
    runner = web.AppRunner(sim.app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    bound = port
    for address in runner.addresses:  # the real port when 0 was asked for
        bound = int(address[1])
        break
    return runner, bound
