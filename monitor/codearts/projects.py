"""The API calls project discovery makes, and the parts of their answers it reads.

- ListProjectJobs, `GET /v1/job/{project_id}/list?page_index&page_size`: every job of
  a CodeArts project, a page at a time (`page_index` from 0, `page_size` at most 100,
  until `total` is reached). The definitions answer `{"jobs": [...], "total": N}`;
  Huawei's Terraform provider reads `result.job_list` from the same path. Both are
  accepted (and `result.jobs`); the shape seen is reported so it can be logged.
  Read per job: `id`, `job_name`, `disabled`, and the two fields a cheap discovery
  round relies on, `last_build_time` (milliseconds) and `is_finished`.
- ListBriefRecord, `POST /v1/record/brief?limit=N` with a JSON list of build project
  ids: the newest `limit` builds of each (`id`, `status`, `build_no`, `branch`), many
  jobs in one request.
- ShowBuildRecord, `GET /v1/record/{record_id}/info`: one record's `display_name`
  (the job's name, as its example "APITest-maven" reads), `build_no`, `branch` and
  `project_id` (the build project id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import MalformedResponse
from monitor.domain.ids import is_valid_job_id

MAX_PAGE_SIZE = 100  # "小于等于100" for page_size, and for the brief call's limit
SHAPE_JOBS = "jobs"  # {"jobs": [...], "total": N}, as the API definitions answer
SHAPE_RESULT_JOB_LIST = "result.job_list"  # as Huawei's Terraform provider reads it
SHAPE_RESULT_JOBS = "result.jobs"


class _Job(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str | None = None
    job_name: str | None = None
    disabled: bool | None = None
    is_finished: bool | None = None
    last_build_time: float | None = None
    build_project_id: str | None = None


class _Brief(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str | None = None
    status: str | None = None
    build_no: str | None = None
    branch: str | None = None


class _BriefProject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project_id: str | None = None
    brief_build_record_dtos: list[_Brief] | None = None


class _BriefBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result: list[_BriefProject] | None = None


class _RecordInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    display_name: str | None = None
    build_no: str | None = None
    branch: str | None = None
    project_id: str | None = None


class _RecordInfoBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result: _RecordInfo | None = None


@dataclass(frozen=True, slots=True)
class ListedJob:
    """One job as the project's job list gives it."""

    job_id: str
    job_name: str  # as given (not clipped); "" when the list gave none
    disabled: bool
    is_finished: bool | None  # None: the list left it out
    last_build_time: float | None  # milliseconds, as given; None: left out
    build_project_id: str | None  # in the Job schema, not in its example


@dataclass(frozen=True, slots=True)
class JobListing:
    """A project's whole job list, and what was wrong with entries that were skipped."""

    jobs: list[ListedJob]
    total: int
    shape: str
    problems: list[str]


@dataclass(frozen=True, slots=True)
class BriefBuild:
    record_id: str
    status: str  # upper-cased; "" when the API gave none
    build_no: str | None
    branch: str | None


@dataclass(frozen=True, slots=True)
class RecordInfo:
    job_name: str
    build_no: str | None
    branch: str | None
    build_project_id: str | None


def _page_items(data: Any) -> tuple[list[Any], Any, str]:
    """The job entries, the `total` and the shape name of one job-list page."""
    if isinstance(data, dict):
        if isinstance(data.get("jobs"), list):
            return data["jobs"], data.get("total"), SHAPE_JOBS
        result = data.get("result")
        if isinstance(result, dict):
            for key, shape in (("job_list", SHAPE_RESULT_JOB_LIST), ("jobs", SHAPE_RESULT_JOBS)):
                if isinstance(result.get(key), list):
                    return result[key], result.get("total", data.get("total")), shape
    raise MalformedResponse(
        "job list answer has neither `jobs` nor `result.job_list` (a list of jobs)"
    )


def _job(item: Any) -> ListedJob | str:
    """A job of the list, or why the entry cannot be used."""
    try:
        job = _Job.model_validate(item)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"job entry does not match the documented shape: {where}: {first['msg']}"
    if not job.id or not is_valid_job_id(job.id):
        return f"job entry has no valid id (32 characters of [0-9a-z]): {str(job.id)[:40]!r}"
    return ListedJob(
        job_id=job.id,
        job_name=(job.job_name or "").strip(),
        disabled=bool(job.disabled),
        is_finished=job.is_finished,
        last_build_time=job.last_build_time,
        build_project_id=job.build_project_id or None,
    )


async def list_project_jobs(
    client: CodeArtsClient,
    project_id: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    on_request: Callable[[], None] | None = None,
) -> JobListing:
    """Every job of a project (ListProjectJobs), page by page until `total`.

    Raises MalformedResponse when a page is not a job list at all: a partial list
    would read as deleted jobs, so the caller keeps what it knew instead.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
    jobs: dict[str, ListedJob] = {}
    problems: list[str] = []
    shape = SHAPE_JOBS
    total = 0
    page = 0
    while True:
        if on_request is not None:
            on_request()
        data = await client.get_json(
            f"/v1/job/{project_id}/list",
            [("page_index", str(page)), ("page_size", str(page_size))],
        )
        items, raw_total, shape = _page_items(data)
        if not isinstance(raw_total, int) or isinstance(raw_total, bool) or raw_total < 0:
            raise MalformedResponse("job list answer has no `total` (a count of jobs)")
        total = raw_total
        for item in items:
            parsed = _job(item)
            if isinstance(parsed, str):
                problems.append(parsed)
            else:
                jobs.setdefault(parsed.job_id, parsed)
        page += 1
        # `total` ends the reading; an empty page ends it too, so a `total` that
        # overstates cannot keep us asking for ever.
        if page * page_size >= total or not items:
            break
    return JobListing(list(jobs.values()), total, shape, problems)


async def brief_records(
    client: CodeArtsClient, build_project_ids: Sequence[str], limit: int
) -> dict[str, list[BriefBuild]]:
    """The newest `limit` builds of each build project (ListBriefRecord), by project id.

    A project the answer leaves out is simply absent from the result.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}")
    data = await client.post_json(
        "/v1/record/brief", list(build_project_ids), [("limit", str(limit))]
    )
    try:
        body = _BriefBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MalformedResponse(
            f"brief records answer does not match the documented shape: {where}: {first['msg']}"
        ) from None
    if body.result is None:
        raise MalformedResponse("brief records answer has no result list")
    out: dict[str, list[BriefBuild]] = {}
    for project in body.result:
        if not project.project_id or project.brief_build_record_dtos is None:
            continue
        out[project.project_id] = [
            BriefBuild(b.id, (b.status or "").strip().upper(), b.build_no, b.branch)
            for b in project.brief_build_record_dtos
            if b.id
        ]
    return out


async def build_record_info(client: CodeArtsClient, record_id: str) -> RecordInfo:
    """A record's job name, build number, branch and build project (ShowBuildRecord)."""
    data = await client.get_json(f"/v1/record/{record_id}/info")
    try:
        body = _RecordInfoBody.model_validate(data)
    except ValidationError:
        raise MalformedResponse("record info answer does not match the documented shape") from None
    if body.result is None:
        raise MalformedResponse("record info answer has no result")
    r = body.result
    return RecordInfo(
        (r.display_name or "").strip(), r.build_no or None, r.branch or None, r.project_id or None
    )


__all__ = [
    "BriefBuild",
    "JobListing",
    "ListedJob",
    "RecordInfo",
    "brief_records",
    "build_record_info",
    "list_project_jobs",
]
