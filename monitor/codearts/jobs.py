"""The two API calls job discovery makes, and the parts of their answers it reads.

Why these two and not `/v3/jobs/{job_id}/history` (see docs/api-notes.md):
- ListRecords (`GET /v1/record/{build_project_id}/records`) gives each build's
  `id`, the 36-character record id that full-stages takes (its example is a
  UUID), and its `status`/`status_code` in the same vocabulary as the stages,
  so "unfinished" is decided by MONITOR_TERMINAL_STATUSES like everything else.
- ShowListHistory's only example gives `record_id: "20201230.1"`, a daily build
  number and not a record id, and nothing documents what `result` holds while
  a build runs. Relying on either would be assuming what no source says.
- ListRecords wants the build project id, not the job id: ShowJobInfo
  (`GET /v1/job/{job_id}/info`) gives it as `result.project_id` ("构建工程ID,
  唯一对应codeci_job_id") together with `job_name`, which the history API
  lacks. It is asked once per job and remembered.

The admin API turns a job id and build number (what a running build knows
about itself: CodeArts Build's predefined parameters include INCREASENUM but
no record id) into a record id with ShowJobBuildRecordDetail,
`GET /v1/record/{job_id}/{build_no}/record-info` -> `result.build_record_id`
(fields as on its documentation page; the API definitions have no example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import MalformedResponse, describe_validation_error

MAX_PAGE_SIZE = 100  # "limit小于等于100"


class _JobInfoResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    job_name: str | None = None
    project_id: str | None = None


class _JobInfoBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result: _JobInfoResult | None = None


class _BuildRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str | None = None
    status: str | None = None
    status_code: int | None = None
    build_no: str | None = None


class _RecordsResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[_BuildRecord] | None = None


class _RecordsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result: _RecordsResult | None = None


class _RecordInfoResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    build_record_id: str | None = None


class _RecordInfoBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result: _RecordInfoResult | None = None


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: str
    job_name: str
    build_project_id: str


@dataclass(frozen=True, slots=True)
class BuildSummary:
    """One build of a job as the list gives it."""

    record_id: str
    status: str  # upper-cased; "" when the API gave none
    build_no: str | None


def _parse(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedResponse(describe_validation_error(exc, f"{what} answer")) from None


async def job_info(client: CodeArtsClient, job_id: str) -> JobInfo:
    """The job's name and build project id (ShowJobInfo)."""
    body = _parse(_JobInfoBody, await client.get_json(f"/v1/job/{job_id}/info"), "job info")
    result = body.result
    if result is None or not result.project_id:
        raise MalformedResponse("job info answer has no result.project_id")
    return JobInfo(job_id, (result.job_name or "").strip(), result.project_id)


async def recent_builds(
    client: CodeArtsClient, build_project_id: str, limit: int = 20
) -> list[BuildSummary]:
    """The first page of a build project's records (ListRecords)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}")
    data = await client.get_json(
        f"/v1/record/{build_project_id}/records", [("page", "0"), ("limit", str(limit))]
    )
    body = _parse(_RecordsBody, data, "records")
    if body.result is None or body.result.data is None:
        raise MalformedResponse("records answer has no result.data")
    return [
        BuildSummary(item.id, (item.status or "").strip().upper(), item.build_no)
        for item in body.result.data
        if item.id
    ]


async def record_id_of_build(client: CodeArtsClient, job_id: str, build_no: int) -> str:
    """The record id of a job's build number (ShowJobBuildRecordDetail)."""
    data = await client.get_json(f"/v1/record/{job_id}/{build_no}/record-info")
    body = _parse(_RecordInfoBody, data, "record info")
    if body.result is None or not body.result.build_record_id:
        raise MalformedResponse("record info answer has no result.build_record_id")
    return str(body.result.build_record_id)


__all__ = ["BuildSummary", "JobInfo", "job_info", "recent_builds", "record_id_of_build"]
