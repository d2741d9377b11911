"""The CodeArts Build API handlers: ShowRecordFullStages, ShowJobInfo, ListRecords and
ShowJobBuildRecordDetail, answered from the build world.

They run behind the gateway (see `server.py`'s route table), so every request
that reaches them authenticated. Faults apply to full-stages answers.
"""

from __future__ import annotations

import json
import re
import uuid

from aiohttp import web

from monitor.simulator import faults
from monitor.simulator.errors import codearts_error, error_body
from monitor.simulator.faults import FaultPlan
from monitor.simulator.requestlog import RequestLog
from monitor.simulator.scenario import build_record, full_stages_body
from monitor.simulator.world import World

RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")
JOB_ID_RE = re.compile(r"^[0-9a-z]{32}$")
MAX_PAGE_LIMIT = 100  # "limit小于等于100" in the ListRecords definition


def _not_found() -> web.Response:
    return codearts_error(404, "DEVCB.00031006", "build task not found")


def _invalid_param() -> web.Response:
    return codearts_error(400, "CB.00060200", "Invalid param")


class Api:
    """The four CodeArts Build routes the monitor uses."""

    def __init__(self, *, world: World, faults: FaultPlan, log: RequestLog) -> None:
        self._world = world
        self._faults = faults
        self._log = log

    async def full_stages(self, request: web.Request) -> web.StreamResponse:
        record_id = request.match_info["record_id"]
        world = self._world
        fault = self._faults.pick(record_id)
        if fault is not None:
            # Logged on arrival (nothing above awaited), so the log is complete and in
            # arrival order even while a SLOW answer is pending.
            self._log(request, record_id, fault.http_status, fault)
            plan = world.plans.get(record_id)
            return await faults.answer(
                request,
                fault,
                self._faults,
                lambda: full_stages_body(plan, world.clock.now()) if plan else error_body("x", "y"),
            )
        if world.jobs:
            world.start_due_builds()
        if not RECORD_ID_RE.fullmatch(record_id):
            self._log(request, record_id, 400)
            return _invalid_param()
        plan = world.plans.get(record_id)
        if plan is None:
            self._log(request, record_id, 404)
            return _not_found()
        body = full_stages_body(plan, world.clock.now())
        world.answered[record_id] = body
        self._log(request, record_id, 200)
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/json", charset="UTF-8"
        )

    async def job_info(self, request: web.Request) -> web.Response:
        """ShowJobInfo. The definition has a schema but no example; values are INVENTED."""
        job_id = request.match_info["job_id"]
        world = self._world
        world.start_due_builds()
        if not JOB_ID_RE.fullmatch(job_id):
            self._log(request, None, 400)
            return codearts_error(400, "CB.00060201", "Invalid task id")
        job = world.jobs.get(job_id)
        if job is None:
            # INVENTED: no source says what an unknown job id gets.
            self._log(request, None, 404)
            return _not_found()
        builds = world.builds_of(job_id)
        now = world.clock.now()
        last_running = (
            bool(builds)
            and build_record(
                builds[0], now, job_name=job.job_name, build_project_id=job.build_project_id
            )["status"]
            == "RUNNING"
        )
        self._log(request, None, 200)
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

    async def list_records(self, request: web.Request) -> web.Response:
        """ListRecords: a build project's records, newest first.

        The order is INVENTED (no source documents it; the console lists newest
        first). `pagination.total` is -1, as in the documented example.
        """
        project = request.match_info["build_project_id"]
        world = self._world
        world.start_due_builds()
        try:
            page = int(request.query.get("page", "0"))
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            page, limit = -1, -1
        if not RECORD_ID_RE.fullmatch(project) or page < 0 or not 1 <= limit <= MAX_PAGE_LIMIT:
            self._log(request, None, 400)
            return _invalid_param()
        job = next((j for j in world.jobs.values() if j.build_project_id == project), None)
        if job is None:
            # INVENTED: no source says what an unknown build project gets.
            self._log(request, None, 404)
            return _not_found()
        now = world.clock.now()
        chosen = world.builds_of(job.job_id)[page * limit : (page + 1) * limit]
        data = [
            build_record(p, now, job_name=job.job_name, build_project_id=project) for p in chosen
        ]
        self._log(request, None, 200)
        return web.json_response(
            {
                "error": None,
                "result": {"data": data, "pagination": {"limit": limit, "page": page, "total": -1}},
                "status": "success",
            }
        )

    async def record_info(self, request: web.Request) -> web.Response:
        """ShowJobBuildRecordDetail: the record of a job's build number.

        Fields as on the documentation page (no example exists); values the
        monitor never reads are left out. Unknown job or build: INVENTED 404.
        """
        job_id = request.match_info["job_id"]
        world = self._world
        world.start_due_builds()
        try:
            build_no = int(request.match_info["build_no"])
        except ValueError:
            build_no = 0
        if not JOB_ID_RE.fullmatch(job_id) or build_no < 1:
            self._log(request, None, 400)
            return _invalid_param()
        job = world.jobs.get(job_id)
        plan = next((p for p in world.builds_of(job_id) if p.build_number == build_no), None)
        if job is None or plan is None:
            self._log(request, None, 404)
            return _not_found()
        record = build_record(
            plan, world.clock.now(), job_name=job.job_name, build_project_id=job.build_project_id
        )
        self._log(request, None, 200)
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
