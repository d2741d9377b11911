"""The /api/v1 handlers over one watchlist."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.codearts.errors import CodeArtsError, NotFound
from monitor.server.admin.access import Access
from monitor.server.admin.errors import ApiProblem
from monitor.server.admin.models import RecordByBuild
from monitor.server.admin.problems import (
    record_id_problem,
    shown,
    validate_list_query,
    validate_record_request,
)
from monitor.server.admin.views import record_json
from monitor.tracking.watchlist import WatchedRecord, Watchlist

API_SOURCE = "api"
MAX_BODY = 64 * 1024
RECORD_ROUTE = "record"
# (job_id, build_number) -> record id, through the daemon's API client
Resolver = Callable[[str, int], Awaitable[str]]


class LookupUnavailable(Exception):
    """Raised by a Resolver that cannot ask CodeArts Build now; its text says why."""


class AdminHandlers:
    """List, read, add and remove watched records."""

    def __init__(
        self,
        watchlist: Watchlist,
        access: Access,
        *,
        resolver: Resolver,
        terminal_statuses: frozenset[str],
    ) -> None:
        self._watchlist = watchlist
        self._access = access
        self._resolver = resolver
        self._terminal = terminal_statuses

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/records", self.list_records),
            web.post("/records", self.add_record),
            web.get("/records/{record_id}", self.get_record, name=RECORD_ROUTE),
            web.delete("/records/{record_id}", self.delete_record),
        ]

    async def list_records(self, request: web.Request) -> web.Response:
        self._access.may_read(request)
        query, problems = validate_list_query(request.query)
        if query is None:
            raise ApiProblem(400, "invalid_query", "; ".join(problems), problems)
        state, cursor, limit = query.state, query.cursor, query.limit
        chosen = sorted(
            (r for r in self._watchlist.records.values() if state is None or r.state is state),
            key=lambda r: r.record_id,
        )
        total = len(chosen)
        if cursor is not None:
            chosen = [r for r in chosen if r.record_id > cursor]
        page = chosen[:limit]
        more = len(chosen) > limit
        body = {  # a RecordPage
            "records": [record_json(r, self._terminal, detail=False) for r in page],
            "total": total,
            "next_cursor": page[-1].record_id if more and page else None,
        }
        return web.json_response(body)

    async def get_record(self, request: web.Request) -> web.Response:
        self._access.may_read(request)
        rec = self._lookup(request)
        return web.json_response(record_json(rec, self._terminal, detail=True))

    async def add_record(self, request: web.Request) -> web.Response:
        self._access.may_change(request)
        req, problems = validate_record_request(await read_json(request))
        if req is None:
            raise ApiProblem(422, "invalid_record", "; ".join(problems), problems)
        record_id = await self._resolve(req) if isinstance(req, RecordByBuild) else req.record_id
        rec, created = await self._watchlist.add(record_id, req.labels, source=API_SOURCE)
        location = request.app.router[RECORD_ROUTE].url_for(record_id=record_id)
        return web.json_response(
            record_json(rec, self._terminal, detail=False),
            status=201 if created else 200,
            headers={"Location": str(location)},
        )

    async def delete_record(self, request: web.Request) -> web.Response:
        self._access.may_change(request)
        rec = self._lookup(request)
        await self._watchlist.remove(rec.record_id)
        return web.Response(status=204)

    def _lookup(self, request: web.Request) -> WatchedRecord:
        record_id = request.match_info["record_id"]
        rec = self._watchlist.records.get(record_id)
        if rec is not None:
            return rec
        problem = record_id_problem(record_id, "the record id in the path")
        if problem:
            raise ApiProblem(400, "invalid_record_id", problem)
        raise ApiProblem(404, "not_found", f"record {record_id} is not watched")

    async def _resolve(self, req: RecordByBuild) -> str:
        what = f"build {req.build_number} of job {req.job_id}"
        try:
            record_id = await self._resolver(req.job_id, req.build_number)
        except LookupUnavailable as exc:
            raise ApiProblem(
                503, "not_ready", f"the daemon is not connected to CodeArts Build yet: {exc}"
            ) from None
        except NotFound:
            raise ApiProblem(404, "unknown_build", f"CodeArts Build knows no {what}") from None
        except CodeArtsError as exc:
            raise ApiProblem(
                502,
                "upstream_error",
                f"could not ask CodeArts Build for the record id of {what}: {exc}",
            ) from None
        if record_id_problem(record_id) is not None:
            raise ApiProblem(
                502,
                "upstream_error",
                f"CodeArts Build answered {shown(record_id)} as the record id of {what}",
            )
        return record_id


async def read_json(request: web.Request) -> object:
    """The body as JSON: at most MAX_BODY bytes, sent as JSON, UTF-8, well-formed."""
    if "Content-Type" in request.headers:
        ctype = request.content_type
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise ApiProblem(
                415,
                "unsupported_media_type",
                f"send the body as JSON with 'Content-Type: application/json' (got {shown(ctype)})",
            )
    too_large = ApiProblem(
        413, "body_too_large", f"the body must be at most {MAX_BODY} bytes ({MAX_BODY // 1024} KiB)"
    )
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiProblem(
            400, "invalid_json", 'the body is empty: send {"record_id": "...", "labels": {...}}'
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiProblem(400, "invalid_json", "the body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiProblem(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiProblem(400, "invalid_json", "the body's JSON is nested too deeply") from None
