"""The simulator's job APIs answer in the documented shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from monitor.simulator.scenario import STATUS_CODES
from tests.support.loopback import TOKEN, SimServer

DATA = Path(__file__).parent.parent / "data"
EXAMPLE = json.loads((DATA / "list_records_example.json").read_text())
JOB_INFO_FIELDS = {
    "build_time", "charge_time", "create_time", "disabled", "favorite", "health_score", "id",
    "is_copy", "is_delete", "is_execute", "is_forbidden", "is_manager", "is_modify", "is_view",
    "job_name", "last_build_status", "last_build_time", "new_build", "project_id",
    "project_permission_switch", "running_status", "source_code",
}  # fmt: skip
RECORD_INFO_FIELDS = {  # as on the ShowJobBuildRecordDetail page
    "id", "build_project_id", "build_record_id", "parent_record_id", "devcloud_project_id",
    "codeci_job_id", "user_id", "build_no", "daily_build_num", "execution_id", "status",
    "create_time", "start_time", "finish_time", "duration", "branch", "commit",
}  # fmt: skip


async def _get(url: str, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"X-Auth-Token": token} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_list_records_matches_the_documented_example(sim: SimServer) -> None:
    job = sim.sim.add_job("shape")
    done = sim.sim.new_build(job_id=job.job_id, started_ago=90_000)
    running = sim.sim.new_build(job_id=job.job_id, started_ago=5)
    url = f"{sim.url}/v1/record/{job.build_project_id}/records?page=0&limit=10"
    status, body = await _get(url)
    assert status == 200
    assert set(body) == set(EXAMPLE)
    assert set(body["result"]) == set(EXAMPLE["result"])
    assert set(body["result"]["pagination"]) == set(EXAMPLE["result"]["pagination"])
    items = body["result"]["data"]
    assert [i["id"] for i in items] == [running.record_id, done.record_id]  # newest first
    for item in items:
        assert set(item) == set(EXAMPLE["result"]["data"][0])
        assert item["project_id"] == job.build_project_id
        assert item["status_code"] == STATUS_CODES[item["status"]]
    assert items[0]["status"] == "RUNNING"
    assert items[1]["status"] != "RUNNING"
    assert [i["build_no"] for i in items] == ["2", "1"]

    status, page = await _get(f"{sim.url}/v1/record/{job.build_project_id}/records?page=1&limit=1")
    assert [i["id"] for i in page["result"]["data"]] == [done.record_id]
    for bad in ("?limit=0", "?limit=101", "?page=-1", "?limit=x"):
        status, err = await _get(f"{sim.url}/v1/record/{job.build_project_id}/records{bad}")
        assert (status, err["error_code"]) == (400, "CB.00060200")
    status, err = await _get(url, token="wrong")
    assert (status, err["error_code"]) == (401, "APIGW.0301")


async def test_job_info_and_record_info(sim: SimServer) -> None:
    job = sim.sim.add_job("info")
    plan = sim.sim.new_build(job_id=job.job_id)
    status, body = await _get(f"{sim.url}/v1/job/{job.job_id}/info")
    assert status == 200
    assert set(body) == {"error", "result", "status"}
    assert set(body["result"]) <= JOB_INFO_FIELDS
    assert (body["result"]["job_name"], body["result"]["project_id"]) == (
        "info",
        job.build_project_id,
    )
    status, body = await _get(f"{sim.url}/v1/record/{job.job_id}/1/record-info")
    assert status == 200
    assert set(body["result"]) <= RECORD_INFO_FIELDS
    assert body["result"]["build_record_id"] == plan.record_id
    unknown = "0" * 32
    status, err = await _get(f"{sim.url}/v1/job/{unknown}/info")
    assert (status, err["error_code"]) == (404, "DEVCB.00031006")
    status, err = await _get(f"{sim.url}/v1/job/NOT-A-JOB/info")
    assert (status, err["error_code"]) == (400, "CB.00060201")
    status, err = await _get(f"{sim.url}/v1/record/{job.job_id}/2/record-info")
    assert status == 404
