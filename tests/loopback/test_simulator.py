"""The simulator answers as the reference documents: shapes, nulls, error bodies."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from monitor.simulator.scenario import STATUS_CODES
from tests.support.loopback import TOKEN, SimServer

UTC_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
OFFSET_0800 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0800$")
FIELDS = {
    "id",
    "status",
    "status_code",
    "log_status",
    "create_time",
    "schedule_time",
    "queued_time",
    "start_time",
    "finish_time",
    "duration",
    "build_duration",
    "pending_duration",
    "build_record_id",
    "execution_id",
    "execution_stage_name",
    "display_name",
    "node_id",
    "sequence",
}


async def _get(url: str, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"X-Auth-Token": token} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_full_stages_shape_matches_the_reference(sim: SimServer) -> None:
    shapes = set()
    for _ in range(12):
        plan = sim.sim.new_build(started_ago=50)
        status, body = await _get(f"{sim.url}/v1/record/{plan.record_id}/full-stages")
        assert status == 200
        assert set(body) == {"result", "error", "status"}
        assert body["status"] == "success" and body["error"] is None
        assert body["result"]["check_stages"] is None
        stages = body["result"]["build_stages"]
        keys = list(stages)
        assert keys[0] == "initial" and keys[-1] == "final"
        for key, st in stages.items():
            assert set(st) == FIELDS
            assert st["build_record_id"] == plan.record_id
            assert st["execution_stage_name"] == key
            assert st["status_code"] == STATUS_CODES[st["status"]]
            for f in ("create_time", "start_time", "finish_time"):
                if st[f] is not None:
                    shapes.add(
                        "utc"
                        if UTC_MILLIS.match(st[f])
                        else "cst"
                        if OFFSET_0800.match(st[f])
                        else st[f]
                    )
            if st["status"] == "INIT":  # not started: times and durations are null
                assert st["start_time"] is None and st["duration"] is None
            if st["status"] in ("SUCCESS", "FAILURE"):
                assert st["duration"] == st["build_duration"] + st["pending_duration"]
    assert shapes == {"utc", "cst"}


async def test_error_bodies(sim: SimServer) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    status, body = await _get(f"{sim.url}/v1/record/{unknown}/full-stages")
    assert status == 404 and body["error_code"] == "DEVCB.00031006" and "error_msg" in body
    status, body = await _get(f"{sim.url}/v1/record/short/full-stages")
    assert status == 400 and body["error_code"] == "CB.00060200"
    plan = sim.sim.new_build()
    for token in (None, "wrong-token"):
        status, body = await _get(f"{sim.url}/v1/record/{plan.record_id}/full-stages", token)
        assert status == 401 and body["error_code"] == "APIGW.0301"
