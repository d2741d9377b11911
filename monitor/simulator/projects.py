"""Simulated CodeArts projects of many jobs, and the APIs that list them.

Routes, in the shapes of ../shared/reference/api-definitions/:
- ListProjectJobs `GET /v1/job/{project_id}/list` and ShowJobListByProjectId
  `GET /v3/{project_id}/jobs`: `{"jobs": [...], "total": N}` (the definitions'
  shape; `job_list_shape = "result.job_list"` serves the one Huawei's Terraform
  provider reads instead), `page_index` from 0, `page_size` 1..100,
  `last_build_time` in milliseconds (null for a job never built).
- ListBriefRecord `POST /v1/record/brief?limit=N`, a JSON list of build project ids.
- ShowBuildRecord `GET /v1/record/{record_id}/info`.
ShowJobInfo and ListRecords are served by the server module from the same jobs.

INVENTED where no source says: the order of the job list (creation order), the
error bodies of a refused project (403/404), what the brief call does with an id it
does not know (leaves it out), the brief `create_time` shape "2024-08-31 10:58:02"
(the definition's example) in UTC+8, and whether `last_build_time` moves when a
build starts or ends (`last_build_time_at`, "start" by default; "end" is as possible).

Bad input on purpose, for tests: `refused` (project -> 403/404), `omit_signal`
(job ids whose entries lack last_build_time and is_finished), `brief_omit` (build
project ids the brief answer leaves out), `brief_status` (answer the brief call with
400/404), and faults queued with keys `job-list:{project_id}`, `brief` and
`record-info:{record_id}` (see FaultPlan.pick_keyed).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from monitor.simulator import faults
from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.requestlog import RequestLog
from monitor.simulator.scenario import RecordPlan, build_record, record_status
from monitor.simulator.world import SimJob, World

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_PAGE = 100  # "page_size小于等于100", "limit小于等于100"
_CST = timezone(timedelta(hours=8))
SHAPE_JOBS = "jobs"
SHAPE_RESULT_JOB_LIST = "result.job_list"


def _error(code: str, msg: str, status: int) -> web.Response:
    return web.json_response({"error_code": code, "error_msg": msg}, status=status)


@dataclass(slots=True)
class SimProject:
    project_id: str  # 32 characters of [0-9a-z]
    job_ids: list[str] = field(default_factory=list)


class ProjectWorld:
    """The projects of one Simulator, and the routes that serve them."""

    def __init__(self, *, world: World, faults: FaultPlan, log: RequestLog, seed: int = 0) -> None:
        self.world = world
        self._faults = faults
        self._log_request = log
        self.rng = random.Random(seed ^ 0x5EED)
        self._fault_rng = random.Random(seed ^ 0xFA17)
        self.projects: dict[str, SimProject] = {}
        self.disabled: set[str] = set()  # job ids
        self.refused: dict[str, int] = {}  # project id -> 403 or 404
        self.omit_signal: set[str] = set()  # job ids
        self.omit_is_finished: set[str] = set()  # job ids: last_build_time is the only signal
        self.brief_omit: set[str] = set()  # build project ids
        self.brief_status: int | None = None
        self.job_list_shape = SHAPE_JOBS
        self.include_build_project_id = False  # in the Job schema, not in its example
        self.last_build_time_at = "start"
        self.names: dict[str, str] = {}  # job id -> name as the list gives it (may be odd)

    # --- the world ---------------------------------------------------------------------

    def add_project(
        self,
        jobs: int = 0,
        *,
        names: Iterable[str] | None = None,
        every: float = 0.0,
        duration_scale: float = 1.0,
    ) -> SimProject:
        """A project of `jobs` jobs; with `every` > 0 each builds every `every` seconds,
        the first builds spread evenly over the first interval."""
        project = SimProject(uuid.UUID(int=self.rng.getrandbits(128)).hex)
        self.projects[project.project_id] = project
        given = list(names or [])
        count = max(jobs, len(given))
        for i in range(count):
            name = given[i] if i < len(given) else f"{project.project_id[:4]}-job-{i + 1:03d}"
            first = every * (i + 1) / count if every > 0 else None
            self.add_job(
                project.project_id, name, every=every, first_in=first, duration_scale=duration_scale
            )
        return project

    def add_job(
        self,
        project_id: str,
        name: str,
        *,
        every: float = 0.0,
        first_in: float | None = None,
        duration_scale: float = 1.0,
    ) -> SimJob:
        job = self.world.add_job(
            name or "unnamed", every=every, first_in=first_in, duration_scale=duration_scale
        )
        self.names[job.job_id] = name
        self.projects[project_id].job_ids.append(job.job_id)
        return job

    def delete_job(self, job_id: str) -> None:
        """The job is gone from its project; its builds stay readable by record id."""
        for project in self.projects.values():
            if job_id in project.job_ids:
                project.job_ids.remove(job_id)
        job = self.world.jobs.pop(job_id, None)
        if job is not None:
            job.every = 0.0

    def jobs_of(self, project_id: str) -> list[SimJob]:
        return [
            self.world.jobs[j] for j in self.projects[project_id].job_ids if j in self.world.jobs
        ]

    def watched_truth(self, job_ids: Iterable[str]) -> list[RecordPlan]:
        wanted = set(job_ids)
        return [p for p in self.world.plans.values() if p.job_id in wanted]

    # --- routes ------------------------------------------------------------------------

    def routes(self, gate: Callable[[Handler], Handler]) -> list[web.RouteDef]:
        """The routes, each behind the gateway's `gate` (authentication)."""
        return [
            web.get("/v1/job/{project_id}/list", gate(self._job_list)),
            web.get("/v3/{project_id}/jobs", gate(self._job_list)),
            web.post("/v1/record/brief", gate(self._brief)),
            web.get("/v1/record/{record_id}/info", gate(self._record_info)),
        ]

    def _log(self, request: web.Request, status: int, fault: Fault | None = None) -> None:
        self._log_request(request, None, status, fault)

    async def _gate(self, request: web.Request, key: str) -> web.StreamResponse | None:
        """The answer for a faulted request; None to go on."""
        fault = self._faults.pick_keyed(key, self._fault_rng)
        if fault is not None:
            self._log(request, fault.http_status, fault)
            return await faults.answer(request, fault, self._faults, lambda: {"jobs": []})
        if self.world.jobs:
            self.world.start_due_builds()
        return None

    async def _job_list(self, request: web.Request) -> web.StreamResponse:
        project_id = request.match_info["project_id"]
        early = await self._gate(request, f"job-list:{project_id}")
        if early is not None:
            return early
        try:
            page = int(request.query.get("page_index", "0"))
            size = int(request.query.get("page_size", "10"))
        except ValueError:
            page, size = -1, -1
        if page < 0 or not 1 <= size <= MAX_PAGE or len(project_id) != 32:
            self._log(request, 400)
            return _error("CB.00060200", "Invalid param", 400)
        refused = self.refused.get(project_id)
        if refused is not None or project_id not in self.projects:
            status = refused or 404
            self._log(request, status)
            if status == 403:  # INVENTED body
                return _error("CB.00060403", "No permission to access the project", 403)
            return _error("CB.00060214", "The project does not exist", 404)  # INVENTED
        jobs = self.jobs_of(project_id)
        newest = self._newest_builds()
        now = self.world.clock.now()
        entries = [
            self._entry(j, newest.get(j.job_id), now) for j in jobs[page * size : (page + 1) * size]
        ]
        self._log(request, 200)
        if self.job_list_shape == SHAPE_RESULT_JOB_LIST:
            body: dict[str, Any] = {
                "error": None,
                "result": {"job_list": entries, "total": len(jobs)},
                "status": "success",
            }
        else:
            body = {"jobs": entries, "total": len(jobs)}
        return web.json_response(body)

    def _newest_builds(self) -> dict[str, RecordPlan]:
        out: dict[str, RecordPlan] = {}
        for plan in self.world.plans.values():
            best = out.get(plan.job_id)
            if best is None or (plan.created, plan.build_number) > (
                best.created,
                best.build_number,
            ):
                out[plan.job_id] = plan
        return out

    def _entry(self, job: SimJob, newest: RecordPlan | None, now: float) -> dict[str, Any]:
        running = newest is not None and record_status(newest, now) == "RUNNING"
        last_ms: int | None = None
        if newest is not None:
            if self.last_build_time_at == "end":
                ended = [
                    p
                    for p in self.world.builds_of(job.job_id)
                    if record_status(p, now) != "RUNNING"
                ]
                last_ms = int(max(p.end_time() for p in ended) * 1000) if ended else None
            else:
                last_ms = int(newest.created * 1000)
        status = None
        if newest is not None:
            status = "blue" if running or record_status(newest, now) == "SUCCESS" else "red"
        entry: dict[str, Any] = {
            "disabled": job.job_id in self.disabled,
            "favorite": False,
            "health_score": 100,
            "id": job.job_id,
            "is_copy": True,
            "is_delete": True,
            "is_execute": True,
            "is_finished": not running,
            "is_forbidden": True,
            "is_modify": True,
            "is_view": True,
            "job_creator": "ae22fd035f354cfa8d82a3f1c8940446",
            "job_name": self.names.get(job.job_id, job.job_name),
            "last_build_status": status,
            "last_build_time": last_ms,
            "last_build_user": None,
            "source_code": "codehub",
            "user_name": "simulator",
        }
        if self.include_build_project_id:
            entry["build_project_id"] = job.build_project_id
        if job.job_id in self.omit_is_finished:
            del entry["is_finished"]
        if job.job_id in self.omit_signal:
            del entry["last_build_time"], entry["is_finished"]
        return entry

    async def _brief(self, request: web.Request) -> web.StreamResponse:
        early = await self._gate(request, "brief")
        if early is not None:
            return early
        if self.brief_status is not None:
            self._log(request, self.brief_status)
            if self.brief_status == 404:
                return _error("CB.00060214", "URL not found", 404)
            return _error("CB.00060200", "Invalid param", self.brief_status)
        try:
            limit = int(request.query.get("limit", "10"))
            ids = json.loads(await request.read())
        except ValueError:
            limit, ids = -1, None
        if (
            not 1 <= limit <= MAX_PAGE
            or not isinstance(ids, list)
            or not all(isinstance(i, str) for i in ids)
        ):
            self._log(request, 400)
            return _error("CB.00060200", "Invalid param", 400)
        by_project = {j.build_project_id: j for j in self.world.jobs.values()}
        now = self.world.clock.now()
        result = []
        for bpid in dict.fromkeys(ids):
            job = by_project.get(bpid)
            if job is None or bpid in self.brief_omit:
                continue
            dtos = [_brief_dto(p, now, job) for p in self.world.builds_of(job.job_id)[:limit]]
            result.append({"brief_build_record_dtos": dtos, "project_id": bpid})
        self._log(request, 200)
        return web.json_response({"error": {}, "result": result, "status": "success"})

    async def _record_info(self, request: web.Request) -> web.StreamResponse:
        record_id = request.match_info["record_id"]
        early = await self._gate(request, f"record-info:{record_id}")
        if early is not None:
            return early
        plan = self.world.plans.get(record_id)
        job = self.world.jobs.get(plan.job_id) if plan is not None else None
        if plan is None or job is None:
            # Builds made by `populate()` belong to no simulated job: INVENTED 404, so a
            # record whose job is unknown shows the failure path (labels stay empty).
            self._log(request, 404)
            return _error("DEVCB.00031006", "build task not found", 404)
        record = build_record(
            plan,
            self.world.clock.now(),
            job_name=job.job_name,
            build_project_id=job.build_project_id,
        )
        record["build_record_type"] = {
            "is_rerun": False,
            "record_type": "JOB",
            "rerun": False,
            "trigger_type": "MANUAL",
        }
        self._log(request, 200)
        return web.json_response({"error": None, "result": record, "status": "success"})


def _brief_dto(plan: RecordPlan, now: float, job: SimJob) -> dict[str, Any]:
    rec = build_record(plan, now, job_name=job.job_name, build_project_id=job.build_project_id)
    dto = {
        k: rec[k]
        for k in (
            "branch",
            "build_duration",
            "daily_build_number",
            "duration",
            "finish_time",
            "id",
            "pending_duration",
            "project_id",
            "queued_time",
            "revision",
            "schedule_time",
            "start_time",
            "status",
            "trigger_name",
        )
    }
    dto["build_no"] = plan.build_number  # an integer here, a string in ListRecords
    dto["create_time"] = datetime.fromtimestamp(plan.created, _CST).strftime("%Y-%m-%d %H:%M:%S")
    return dto


__all__ = ["ProjectWorld", "SimProject"]
