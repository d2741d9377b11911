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
import hashlib
import hmac
import json
import random
import re
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from monitor.codearts.auth.signer import (
    DATE_HEADER,
    AuthorizationHeader,
    parse_authorization,
    parse_sdk_date,
    sign,
)
from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.projects import ProjectWorld
from monitor.simulator.scenario import RecordPlan, build_record, full_stages_body, make_plan

RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")
JOB_ID_RE = re.compile(r"^[0-9a-z]{32}$")
MAX_PAGE_LIMIT = 100  # "limit小于等于100" in the ListRecords definition
APIGW_TOKEN_MSG = "Incorrect IAM authentication information: token expires or invalid"  # noqa: S105
APIGW_AKSK_MSG = "Incorrect IAM authentication information: verify aksk signature fail"
# INVENTED: the reference does not say how the gateway words a refused X-Sdk-Date.
APIGW_DATE_MSG = (
    "Incorrect IAM authentication information: verify aksk signature fail, x-sdk-date expired"
)
# INVENTED wording and duration: the reference says only that an AK is locked after
# more than 5 refused signatures in a row.
APIGW_AK_LOCKED_MSG = "Incorrect IAM authentication information: AK is locked"
AK_LOCK_AFTER = 5
AK_LOCK_SECONDS = 300.0
ALLOWED_SKEW = 15 * 60.0  # the gateway's tolerance for X-Sdk-Date
TOKEN_LIFETIME = 24 * 3600.0
# None when the request authenticated, else why it did not.
_AUTH_PROBLEM = web.RequestKey[str | None]("sim_auth_problem")


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
    at: float  # time.monotonic() when the request arrived (handlers log before awaiting)
    method: str
    path: str
    record_id: str | None
    status: int
    fault: str | None


@dataclass(slots=True)
class SimJob:
    """A build job: its id (32 characters), name and build project id (a UUID).

    `every` > 0 starts a new build every `every` simulated seconds from `next_at`;
    builds are started lazily, when a request arrives, each at its scheduled time,
    so the answers stay a pure function of the simulated time.
    """

    job_id: str
    job_name: str
    build_project_id: str
    next_build_number: int = 1
    every: float = 0.0
    next_at: float = 0.0
    duration_scale: float = 1.0


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
        iam_users: dict[tuple[str, str], str] | None = None,
        aksk: dict[str, str] | None = None,
        wall: Callable[[], float] = time.time,
        token_lifetime: float = TOKEN_LIFETIME,
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
        self.jobs: dict[str, SimJob] = {}
        self.requests: deque[LoggedRequest] = deque(maxlen=200_000)
        self.requests_by_record: Counter[str] = Counter()
        self.answered: dict[str, dict[str, Any]] = {}  # last 200 body per record: the truth
        # IAM and the gateway. Auth times use `wall` (real time by default), not the build
        # clock: the gateway checks X-Sdk-Date against its own real clock.
        self.iam_users: dict[tuple[str, str], str] = dict(iam_users or {})  # (domain, user)
        self.aksk: dict[str, str] = dict(aksk or {})
        self.wall = wall
        self.token_lifetime = token_lifetime
        self.issued: dict[str, float] = {}  # IAM token -> expiry (wall time)
        self.aksk_refusals: Counter[str] = Counter()  # refused signatures in a row, per AK
        self.aksk_locked_until: dict[str, float] = {}
        self.token_requests = 0  # POST /v3/auth/tokens answered, successful or not
        self.token_scopes: list[Any] = []  # the `scope` of each token request, for tests
        self.app = self._build_app()
        # Projects of many jobs and their list/brief/record-info routes live in their own module.
        self.projects = ProjectWorld(self, seed)
        self.projects.add_routes(self.app.router)

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
        build_number: int | None = None,
    ) -> RecordPlan:
        """Start a build `started_ago` simulated seconds before now.

        A build of a job made with `add_job` gets that job's next build number.
        """
        job = self.jobs.get(job_id)
        if build_number is None:
            build_number = job.next_build_number if job is not None else 1
        if job is not None:
            job.next_build_number = max(job.next_build_number, build_number + 1)
        plan = make_plan(
            self.rng,
            self.clock.now() - started_ago,
            job_id=job_id,
            build_number=build_number,
            speed_scale=duration_scale,
            fate=fate,
        )
        return self.add_plan(plan)

    def add_job(
        self,
        job_name: str | None = None,
        *,
        every: float = 0.0,
        first_in: float | None = None,
        duration_scale: float = 1.0,
    ) -> SimJob:
        """A new build job; with `every` > 0 it starts a build every `every` simulated seconds."""
        n = len(self.jobs) + 1
        job = SimJob(
            job_id=uuid.UUID(int=self.rng.getrandbits(128)).hex,
            job_name=job_name or f"sim-job-{n}",
            build_project_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            every=every,
            next_at=self.clock.now() + (every if first_in is None else first_in),
            duration_scale=duration_scale,
        )
        self.jobs[job.job_id] = job
        return job

    def start_due_builds(self) -> list[RecordPlan]:
        """Start every scheduled build whose time has come, each at its own start time."""
        now = self.clock.now()
        started = []
        for job in self.jobs.values():
            while job.every > 0 and job.next_at <= now:
                ago = now - job.next_at
                job.next_at += job.every
                started.append(
                    self.new_build(
                        started_ago=ago, duration_scale=job.duration_scale, job_id=job.job_id
                    )
                )
        return started

    def builds_of(self, job_id: str) -> list[RecordPlan]:
        """A job's builds, newest first."""
        plans = [p for p in self.plans.values() if p.job_id == job_id]
        plans.sort(key=lambda p: (p.created, p.build_number), reverse=True)
        return plans

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

    def expire_tokens(self) -> int:
        """Make every IAM token issued so far expired, as 24 hours would; returns how many."""
        now = self.wall()
        for token in self.issued:
            self.issued[token] = min(self.issued[token], now)
        return len(self.issued)

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_post("/v3/auth/tokens", self._iam_tokens)
        app.router.add_post("/_sim/expire-tokens", self._sim_expire_tokens)
        app.router.add_get("/v1/record/{record_id}/full-stages", self._full_stages)
        app.router.add_get("/v1/job/{job_id}/info", self._job_info)
        app.router.add_get("/v1/record/{build_project_id}/records", self._list_records)
        app.router.add_get("/v1/record/{job_id}/{build_no}/record-info", self._record_info)
        app.router.add_get("/_sim/records", self._sim_records)
        app.router.add_post("/_sim/jobs", self._sim_jobs)
        app.router.add_post("/_sim/faults", self._sim_faults)
        app.router.add_post("/_sim/clock", self._sim_clock)
        return app

    def authorized(self, request: web.Request) -> bool:
        """Whether the gateway would let this request through (decided by `_authenticate`)."""
        if self.accept_any_auth:  # benchmarks only: any credential header passes
            return "Authorization" in request.headers or "X-Auth-Token" in request.headers
        if _AUTH_PROBLEM in request:
            return request[_AUTH_PROBLEM] is None
        return self._token_problem(request.headers.get("X-Auth-Token", "")) is None

    def unauthorized(self, request: web.Request) -> web.Response:
        """The gateway's 401 for this request, with the reason it would give."""
        msg = request.get(_AUTH_PROBLEM) or APIGW_TOKEN_MSG
        return web.json_response(apigw_body("APIGW.0301", msg), status=401)

    # --- the gateway's authentication ----------------------------------------------------

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Decide, as the API Gateway would, whether an API request is authenticated.

        IAM and the `/_sim/` control routes are not behind the gateway. Handlers ask
        `authorized(request)` and answer `unauthorized(request)`.
        """
        if not self.accept_any_auth and not request.path.startswith(("/_sim/", "/v3/auth/")):
            authorization = request.headers.get("Authorization")
            if authorization is not None:
                request[_AUTH_PROBLEM] = await self._signature_problem(request, authorization)
            else:
                request[_AUTH_PROBLEM] = self._token_problem(
                    request.headers.get("X-Auth-Token", "")
                )
        return await handler(request)

    def _token_problem(self, token: str) -> str | None:
        if token and token in self.tokens:
            return None
        expiry = self.issued.get(token) if token else None
        if expiry is not None and self.wall() < expiry:
            return None
        return APIGW_TOKEN_MSG

    async def _signature_problem(self, request: web.Request, authorization: str) -> str | None:
        """Recompute the signature from the request and its SignedHeaders; None when it matches.

        More than AK_LOCK_AFTER refusals in a row lock the AK, correct signatures included.
        """
        parsed = parse_authorization(authorization)
        if parsed is None or parsed.access not in self.aksk:
            return APIGW_AKSK_MSG
        ak = parsed.access
        if self.wall() < self.aksk_locked_until.get(ak, 0.0):
            return APIGW_AK_LOCKED_MSG
        problem = await self._verify(request, parsed)
        if problem is None:
            self.aksk_refusals[ak] = 0
            return None
        self.aksk_refusals[ak] += 1
        if self.aksk_refusals[ak] > AK_LOCK_AFTER:
            self.aksk_locked_until[ak] = self.wall() + AK_LOCK_SECONDS
        return problem

    async def _verify(self, request: web.Request, parsed: AuthorizationHeader) -> str | None:
        date = request.headers.get(DATE_HEADER, "")
        try:
            skew = abs(self.wall() - parse_sdk_date(date))
        except ValueError:
            return APIGW_DATE_MSG
        if skew > ALLOWED_SKEW or DATE_HEADER.lower() not in parsed.signed_headers:
            return APIGW_DATE_MSG
        headers: dict[str, str] = {}
        for name in parsed.signed_headers:
            value = request.headers.get(name)
            if value is None:
                return APIGW_AKSK_MSG
            headers[name] = value
        expected = sign(
            method=request.method,
            path=request.path,
            query=parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True),
            headers=headers,
            body=await request.read(),
            ak=parsed.access,
            sk=self.aksk[parsed.access],
        )
        if expected.signed_headers != ";".join(parsed.signed_headers):
            return APIGW_AKSK_MSG  # SignedHeaders not in the canonical (sorted, lower) form
        if not hmac.compare_digest(expected.signature, parsed.signature):
            return APIGW_AKSK_MSG
        return None

    # --- IAM --------------------------------------------------------------------------------

    async def _iam_tokens(self, request: web.Request) -> web.Response:
        """`POST /v3/auth/tokens` with a password: 201, the token in `X-Subject-Token`."""
        self.token_requests += 1
        try:
            auth = (await request.json())["auth"]
            user = auth["identity"]["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            scope = auth["scope"]
            if "password" not in auth["identity"]["methods"]:
                raise KeyError("methods")
        except (ValueError, KeyError, TypeError):
            self._log(request, None, 400, None)
            return _keystone_error(400, "The request body is invalid", "Bad Request")
        self.token_scopes.append(scope)
        if self.iam_users.get((domain, name)) != password:
            self._log(request, None, 401, None)
            return _keystone_error(401, "The username or password is wrong.", "Unauthorized")
        now = self.wall()
        token = "MIIsim" + secrets.token_urlsafe(48)  # INVENTED shape; real ones are PKI blobs
        domain_ref = {"id": _stable_id("domain", domain), "name": domain}
        body: dict[str, Any] = {
            "catalog": [],
            "expires_at": _iam_time(now + self.token_lifetime),
            "issued_at": _iam_time(now),
            "methods": ["password"],
            "roles": [{"id": "0", "name": "te_admin"}],
            "user": {
                "domain": domain_ref,
                "id": _stable_id("user", domain, name),
                "name": name,
                "password_expires_at": "",
            },
        }
        project = scope.get("project") if isinstance(scope, dict) else None
        if isinstance(project, dict) and (project.get("name") or project.get("id")):
            pname = project.get("name") or f"project-{project['id'][:8]}"
            body["project"] = {
                "domain": domain_ref,
                "id": project.get("id") or _stable_id("project", pname),
                "name": pname,
            }
            # Only project-scoped tokens open CodeArts Build; global ones are refused.
            self.issued[token] = now + self.token_lifetime
        else:
            body["domain"] = domain_ref
        self._log(request, None, 201, None)
        return web.json_response({"token": body}, status=201, headers={"X-Subject-Token": token})

    async def _sim_expire_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"expired": self.expire_tokens()})

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
            return self.unauthorized(request)
        fault = self.faults.pick(record_id)
        if fault is not None:
            return await self._faulty(request, record_id, fault)
        if self.jobs:
            self.start_due_builds()
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

    async def _job_info(self, request: web.Request) -> web.Response:
        """ShowJobInfo. The definition has a schema but no example; values are INVENTED."""
        job_id = request.match_info["job_id"]
        if not self.authorized(request):
            self._log(request, None, 401, None)
            return web.json_response(apigw_body("APIGW.0301", APIGW_TOKEN_MSG), status=401)
        self.start_due_builds()
        if not JOB_ID_RE.fullmatch(job_id):
            self._log(request, None, 400, None)
            return web.json_response(error_body("CB.00060201", "Invalid task id"), status=400)
        job = self.jobs.get(job_id)
        if job is None:
            # INVENTED: no source says what an unknown job id gets.
            self._log(request, None, 404, None)
            return web.json_response(
                error_body("DEVCB.00031006", "build task not found"), status=404
            )
        builds = self.builds_of(job_id)
        now = self.clock.now()
        last_running = (
            bool(builds)
            and build_record(
                builds[0], now, job_name=job.job_name, build_project_id=job.build_project_id
            )["status"]
            == "RUNNING"
        )
        self._log(request, None, 200, None)
        return web.json_response(
            {
                "error": None,
                "result": {
                    "build_time": "0",
                    "charge_time": "0",
                    "create_time": 1717574458000,
                    "disabled": False,
                    "favorite": False,
                    "health_score": 100,
                    "id": job.job_id,
                    "is_copy": True,
                    "is_delete": True,
                    "is_execute": True,
                    "is_forbidden": True,
                    "is_manager": True,
                    "is_modify": True,
                    "is_view": True,
                    "job_name": job.job_name,
                    "last_build_status": "running" if last_running else "success",
                    "last_build_time": int(builds[0].created * 1000) if builds else None,
                    "new_build": False,
                    "project_id": job.build_project_id,
                    "project_permission_switch": False,
                    "running_status": "Running" if last_running else "Finished",
                    "source_code": "codehub",
                },
                "status": "success",
            }
        )

    async def _list_records(self, request: web.Request) -> web.Response:
        """ListRecords: a build project's records, newest first.

        The order is INVENTED (no source documents it; the console lists newest
        first). `pagination.total` is -1, as in the documented example.
        """
        project = request.match_info["build_project_id"]
        if not self.authorized(request):
            self._log(request, None, 401, None)
            return web.json_response(apigw_body("APIGW.0301", APIGW_TOKEN_MSG), status=401)
        self.start_due_builds()
        try:
            page = int(request.query.get("page", "0"))
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            page, limit = -1, -1
        if not RECORD_ID_RE.fullmatch(project) or page < 0 or not 1 <= limit <= MAX_PAGE_LIMIT:
            self._log(request, None, 400, None)
            return web.json_response(error_body("CB.00060200", "Invalid param"), status=400)
        job = next((j for j in self.jobs.values() if j.build_project_id == project), None)
        if job is None:
            # INVENTED: no source says what an unknown build project gets.
            self._log(request, None, 404, None)
            return web.json_response(
                error_body("DEVCB.00031006", "build task not found"), status=404
            )
        now = self.clock.now()
        chosen = self.builds_of(job.job_id)[page * limit : (page + 1) * limit]
        data = [
            build_record(p, now, job_name=job.job_name, build_project_id=project) for p in chosen
        ]
        self._log(request, None, 200, None)
        return web.json_response(
            {
                "error": None,
                "result": {"data": data, "pagination": {"limit": limit, "page": page, "total": -1}},
                "status": "success",
            }
        )

    async def _record_info(self, request: web.Request) -> web.Response:
        """ShowJobBuildRecordDetail: the record of a job's build number.

        Fields as on the documentation page (no example exists); values the
        monitor never reads are left out. Unknown job or build: INVENTED 404.
        """
        job_id = request.match_info["job_id"]
        if not self.authorized(request):
            self._log(request, None, 401, None)
            return web.json_response(apigw_body("APIGW.0301", APIGW_TOKEN_MSG), status=401)
        self.start_due_builds()
        try:
            build_no = int(request.match_info["build_no"])
        except ValueError:
            build_no = 0
        if not JOB_ID_RE.fullmatch(job_id) or build_no < 1:
            self._log(request, None, 400, None)
            return web.json_response(error_body("CB.00060200", "Invalid param"), status=400)
        job = self.jobs.get(job_id)
        plan = next((p for p in self.builds_of(job_id) if p.build_number == build_no), None)
        if job is None or plan is None:
            self._log(request, None, 404, None)
            return web.json_response(
                error_body("DEVCB.00031006", "build task not found"), status=404
            )
        record = build_record(
            plan, self.clock.now(), job_name=job.job_name, build_project_id=job.build_project_id
        )
        self._log(request, None, 200, None)
        return web.json_response(
            {
                "status": "success",
                "error": None,
                "result": {
                    "id": uuid.uuid5(uuid.NAMESPACE_OID, plan.record_id).hex,
                    "build_project_id": job.build_project_id,
                    "build_record_id": plan.record_id,
                    "codeci_job_id": job_id,
                    "build_no": build_no,
                    "daily_build_num": record["daily_build_number"].split(".")[-1],
                    "execution_id": plan.execution_id,
                    "status": record["status"],
                    "create_time": record["create_time"],
                    "start_time": record["start_time"],
                    "finish_time": record["finish_time"],
                },
            }
        )

    async def _faulty(
        self, request: web.Request, record_id: str, fault: Fault
    ) -> web.StreamResponse:
        # Logged on arrival (nothing above awaited), so the log is complete and in
        # arrival order even while a SLOW answer is pending.
        self._log(request, record_id, fault.http_status, fault)
        if fault is Fault.THROTTLE:
            return web.json_response(
                apigw_body("APIGW.0308", "The throttling threshold has been reached"),
                status=429,
                headers={"Retry-After": self.faults.retry_after},
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
            await asyncio.sleep(self.faults.slow_seconds)
            return web.json_response(error_body("CB.00060100", "Network busy."), status=500)
        if fault is Fault.RESET:
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

    async def _sim_records(self, request: web.Request) -> web.Response:
        self.start_due_builds()
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
        if "slow_seconds" in data:
            self.faults.slow_seconds = float(data["slow_seconds"])
        if "retry_after" in data:
            self.faults.retry_after = str(data["retry_after"])
        if "kind" in data:
            self.faults.inject(
                Fault(data["kind"]), data.get("record_id"), int(data.get("count", 1))
            )
        return web.json_response({"ok": True})

    async def _sim_jobs(self, request: web.Request) -> web.Response:
        """Make a job (`{"job_name": N, "every": S}`) or start a build (`{"job_id": J}`)."""
        data = await request.json()
        if "job_id" in data:
            plan = self.new_build(job_id=str(data["job_id"]))
            return web.json_response({"record_id": plan.record_id})
        job = self.add_job(data.get("job_name"), every=float(data.get("every", 0)))
        return web.json_response(
            {"job_id": job.job_id, "job_name": job.job_name, "project_id": job.build_project_id}
        )

    async def _sim_clock(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.clock.advance(float(data.get("advance", 0)))
        return web.json_response({"now": self.clock.now()})


def _keystone_error(code: int, message: str, title: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "title": title}}, status=code
    )


def _iam_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def _reanchor(plan: RecordPlan, created: float) -> RecordPlan:
    fields = {f: getattr(plan, f) for f in RecordPlan.__slots__}
    shift = created - plan.created
    fields["created"] = created
    if plan.stop_at is not None:
        fields["stop_at"] = plan.stop_at + shift
    return RecordPlan(**fields)


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
