"""The admin HTTP API under /api/v1/: list, read, add and remove watched records.

Changes need `Authorization: Bearer <MONITOR_ADMIN_TOKEN>`; with no admin token
configured they are refused with 403 and a message saying how to enable them.
Reads are open unless MONITOR_ADMIN_READ_PROTECTED is set. Every refusal and
every invalid request gets a JSON body `{"error": CODE, "message": TEXT}`
(plus `problems`, one line per rule broken), and nothing is applied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.codearts.errors import CodeArtsError, NotFound
from monitor.domain import RecordSnapshot, RecordState, ms_to_seconds
from monitor.domain.ids import JOB_ID_RE, RECORD_ID_RE, is_valid_record_id
from monitor.domain.labels import (
    LABEL_NAME_RE,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    RESERVED_LABELS,
    label_errors,
)
from monitor.logging import get_logger
from monitor.store.base import Tombstone
from monitor.tracking.watchlist import WatchedRecord, Watchlist

PREFIX = "/api/v1"
API_SOURCE = "api"
MAX_BODY = 64 * 1024
DEFAULT_PAGE = 100
MAX_PAGE = 1000
REQUEST_FIELDS = ("record_id", "job_id", "build_number", "labels")
MAX_BUILD_NUMBER = 2_147_483_647  # as the API definitions bound build_no
ENABLE_HINT = (
    "changes through the admin API are disabled because no admin token is configured: "
    "set MONITOR_ADMIN_TOKEN or MONITOR_ADMIN_TOKEN_FILE (at least 16 characters) and send it as "
    "'Authorization: Bearer <token>'"
)
_log = get_logger("monitor.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (job_id, build_number) -> record id, through the daemon's API client
Resolver = Callable[[str, int], Awaitable[str]]


class ApiProblem(Exception):
    """A request refused with a JSON error; raised by helpers, turned into a response once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.problems:
            body["problems"] = self.problems
        return web.json_response(body, status=self.status, headers=self.headers)


# --- validation (pure) ------------------------------------------------------------------


def _shown(value: str, limit: int = 48) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def record_id_problem(value: object, field: str = "record_id") -> str | None:
    """Why `value` is not a record id, or None when it is one."""
    if not isinstance(value, str):
        return f"{field} must be a string"
    if is_valid_record_id(value):
        return None
    return (
        f"{field} {_shown(value)} is not a record id: it must be exactly 36 characters "
        f"of digits, lowercase letters and '-' (got {len(value)} characters)"
    )


@dataclass(frozen=True, slots=True)
class RecordRequest:
    """A valid POST body: a record id, or the job id and build number to look it up by."""

    record_id: str | None
    job_id: str | None
    build_number: int | None
    labels: dict[str, str]


def validate_record_request(data: object) -> tuple[RecordRequest | None, list[str]]:
    """The request a POST body makes, or every problem with it."""
    if not isinstance(data, dict):
        return None, [
            'the body must be a JSON object like {"record_id": "<36 characters>", '
            '"labels": {"team": "payments"}}'
        ]
    problems = [
        f"unknown field {_shown(str(k))} (allowed: {', '.join(REQUEST_FIELDS)})"
        for k in data
        if k not in REQUEST_FIELDS
    ]
    record_id = data.get("record_id")
    job_id = data.get("job_id")
    build_number = data.get("build_number")
    if isinstance(build_number, float) and build_number.is_integer():
        build_number = int(build_number)  # 42.0 is an integer to JSON Schema too
    if record_id is not None:
        if job_id is not None or build_number is not None:
            problems.append("give either record_id, or job_id and build_number, not both")
        problem = record_id_problem(record_id)
        if problem:
            problems.append(problem)
    elif job_id is None and build_number is None:
        problems.append(
            "record_id is required (or job_id and build_number, for a build registering itself)"
        )
    else:
        if job_id is None:
            problems.append("job_id is required with build_number")
        elif not isinstance(job_id, str) or JOB_ID_RE.fullmatch(job_id) is None:
            shown = _shown(job_id) if isinstance(job_id, str) else "of that type"
            problems.append(
                f"job_id {shown} is not a job id: it must be exactly 32 characters of digits "
                "and lowercase letters"
            )
        if build_number is None:
            problems.append("build_number is required with job_id")
        elif (
            not isinstance(build_number, int)
            or isinstance(build_number, bool)
            or not 1 <= build_number <= MAX_BUILD_NUMBER
        ):
            problems.append(
                f"build_number must be a whole number from 1 to {MAX_BUILD_NUMBER}, without quotes"
            )
    raw_labels = data.get("labels", {})
    labels: dict[str, str] = {}
    if not isinstance(raw_labels, dict):
        problems.append('labels must be an object of name/value strings, like {"team": "payments"}')
    else:
        problems.extend(label_errors(raw_labels))
        labels = {str(k): v for k, v in raw_labels.items() if isinstance(v, str)}
    if problems:
        return None, problems
    return (
        RecordRequest(
            record_id if isinstance(record_id, str) else None,
            job_id if isinstance(job_id, str) else None,
            build_number if isinstance(build_number, int) else None,
            labels,
        ),
        [],
    )


# --- representation --------------------------------------------------------------------


def stage_summary(snapshot: RecordSnapshot | None, terminal: frozenset[str]) -> dict[str, Any]:
    """How many stages, by status, and the first one not finished yet."""
    if snapshot is None:
        return {"total": 0, "by_status": {}, "current": None, "fetched_at": None}
    by_status: dict[str, int] = {}
    current = None
    for s in snapshot.stages:
        by_status[s.status] = by_status.get(s.status, 0) + 1
        if current is None and s.status not in terminal:
            current = {"build_stage": s.key, "display_name": s.display_name, "status": s.status}
    return {
        "total": len(snapshot.stages),
        "by_status": by_status,
        "current": current,
        "fetched_at": snapshot.fetched_at,
    }


def record_json(
    rec: WatchedRecord | Tombstone, terminal: frozenset[str], *, detail: bool
) -> dict[str, Any]:
    if isinstance(rec, Tombstone):
        # A retired record: its final word only, no stages (they were not kept).
        return {
            "record_id": rec.record_id,
            "state": rec.state.value,
            "source": rec.source,
            "finished_at": rec.finished_at,
            "result": rec.result,
            "retired": True,
        }
    out: dict[str, Any] = {
        "record_id": rec.record_id,
        "state": rec.state.value,
        "source": rec.source,
        "labels": dict(rec.labels),
        "added_at": rec.added_at,
        "finished_at": rec.finished_at,
        "result": rec.result,
        "error": rec.error,
        "stage_summary": stage_summary(rec.snapshot, terminal),
    }
    if detail:
        stages = rec.snapshot.stages if rec.snapshot is not None else ()
        out["stages"] = [
            {
                "build_stage": s.key,
                "display_name": s.display_name,
                "status": s.status,
                "status_code": s.status_code,
                "sequence": s.sequence,
                "duration_seconds": ms_to_seconds(s.duration_ms),
                "build_duration_seconds": ms_to_seconds(s.build_duration_ms),
                "pending_seconds": ms_to_seconds(s.pending_duration_ms),
                "start_time": s.start_time,
                "finish_time": s.finish_time,
            }
            for s in stages
        ]
    return out


# --- HTTP -------------------------------------------------------------------------------


class AdminApi:
    """The /api/v1 handlers over one watchlist."""

    def __init__(
        self,
        watchlist: Watchlist,
        *,
        token: str | Callable[[], str] | None,
        read_protected: bool,
        terminal_statuses: frozenset[str],
    ) -> None:
        self._watchlist = watchlist
        # A callable is a token file, re-read when it changes (a rotated Secret).
        self._token: Callable[[], str] | None = None
        if isinstance(token, str):
            if token:
                value = token
                self._token = lambda: value
        elif token is not None:
            self._token = token
        self._read_protected = read_protected
        self._terminal = terminal_statuses
        self.resolver: Resolver | None = None  # set by the daemon while its client is open

    # --- auth ---

    @property
    def _token_digest(self) -> bytes | None:
        if self._token is None:
            return None
        try:
            token = self._token()
        except OSError:
            return None  # an unreadable token file refuses every change
        return hashlib.sha256(token.encode()).digest() if token else None

    def _check_token(self, request: web.Request) -> None:
        expected = self._token_digest
        if expected is None:
            self._refused(request, "admin token not readable")
            raise ApiProblem(403, "admin_disabled", ENABLE_HINT)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="stage-monitor"'}
        if scheme.lower() != "bearer" or not given.strip():
            self._refused(request, "no bearer token")
            raise ApiProblem(
                401,
                "unauthorized",
                "this needs 'Authorization: Bearer <MONITOR_ADMIN_TOKEN>'",
                headers=challenge,
            )
        # Hashing first makes the comparison constant-time in the token's length too.
        digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(digest, expected):
            self._refused(request, "wrong bearer token")
            raise ApiProblem(
                401,
                "unauthorized",
                "the bearer token is not the admin token",
                headers={"WWW-Authenticate": 'Bearer realm="stage-monitor", error="invalid_token"'},
            )

    def _may_change(self, request: web.Request) -> None:
        if self._token is None:
            self._refused(request, "admin token not configured")
            raise ApiProblem(403, "admin_disabled", ENABLE_HINT)
        self._check_token(request)

    def _may_read(self, request: web.Request) -> None:
        if self._read_protected and self._token is not None:
            self._check_token(request)

    @staticmethod
    def _refused(request: web.Request, reason: str) -> None:
        _log.warning(
            "admin_request_refused",
            method=request.method,
            path=request.path[:200],
            reason=reason,
            remote=request.remote,
        )

    # --- helpers ---

    def _lookup(self, request: web.Request) -> WatchedRecord:
        record_id = request.match_info["record_id"]
        rec = self._watchlist.records.get(record_id)
        if rec is not None:
            return rec
        problem = record_id_problem(record_id, "the record id in the path")
        if problem:
            raise ApiProblem(400, "invalid_record_id", problem)
        raise ApiProblem(404, "not_found", f"record {record_id} is not watched")

    @staticmethod
    async def _read_json(request: web.Request) -> object:
        if "Content-Type" in request.headers:
            ctype = request.content_type
            if ctype != "application/json" and not ctype.endswith("+json"):
                raise ApiProblem(
                    415,
                    "unsupported_media_type",
                    f"send the body as JSON with 'Content-Type: application/json' "
                    f"(got {_shown(ctype)})",
                )
        too_large = ApiProblem(
            413,
            "body_too_large",
            f"the body must be at most {MAX_BODY} bytes ({MAX_BODY // 1024} KiB)",
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

    # --- handlers ---

    async def list_records(self, request: web.Request) -> web.Response:
        self._may_read(request)
        problems = []
        limit = DEFAULT_PAGE
        raw_limit = request.query.get("limit")
        if raw_limit is not None:
            try:
                limit = int(raw_limit)
            except ValueError:
                limit = -1
            if not 1 <= limit <= MAX_PAGE:
                problems.append(f"limit must be a whole number from 1 to {MAX_PAGE}")
        cursor = request.query.get("cursor")
        if cursor is not None:
            problem = record_id_problem(cursor, "cursor")
            if problem:
                problems.append(problem + " (pass the next_cursor of the previous page)")
        state = request.query.get("state")
        states = [s.value for s in RecordState]
        if state is not None and state not in states:
            problems.append(f"state {_shown(state)} is not one of {', '.join(states)}")
        if problems:
            raise ApiProblem(400, "invalid_query", "; ".join(problems), problems)
        chosen = sorted(
            (
                r
                for r in self._watchlist.records.values()
                if state is None or r.state.value == state
            ),
            key=lambda r: r.record_id,
        )
        total = len(chosen)
        if cursor is not None:
            chosen = [r for r in chosen if r.record_id > cursor]
        page = chosen[:limit]
        more = len(chosen) > limit
        return web.json_response(
            {
                "records": [record_json(r, self._terminal, detail=False) for r in page],
                "total": total,
                "next_cursor": page[-1].record_id if more and page else None,
            }
        )

    async def get_record(self, request: web.Request) -> web.Response:
        self._may_read(request)
        tombstone = self._watchlist.tombstones.get(request.match_info["record_id"])
        rec = tombstone if tombstone is not None else self._lookup(request)
        return web.json_response(record_json(rec, self._terminal, detail=True))

    async def add_record(self, request: web.Request) -> web.Response:
        self._may_change(request)
        data = await self._read_json(request)
        req, problems = validate_record_request(data)
        if req is None:
            raise ApiProblem(422, "invalid_record", "; ".join(problems), problems)
        record_id = req.record_id or await self._resolve(req)
        rec, created = await self._watchlist.add(record_id, req.labels, source=API_SOURCE)
        return web.json_response(
            record_json(rec, self._terminal, detail=False),
            status=201 if created else 200,
            headers={"Location": f"{PREFIX}/records/{record_id}"},
        )

    async def _resolve(self, req: RecordRequest) -> str:
        assert req.job_id is not None
        assert req.build_number is not None
        what = f"build {req.build_number} of job {req.job_id}"
        if self.resolver is None:
            raise ApiProblem(503, "not_ready", "the daemon is not connected to CodeArts Build yet")
        try:
            record_id = await self.resolver(req.job_id, req.build_number)
        except NotFound:
            raise ApiProblem(404, "unknown_build", f"CodeArts Build knows no {what}") from None
        except CodeArtsError as exc:
            raise ApiProblem(
                502,
                "upstream_error",
                f"could not ask CodeArts Build for the record id of {what}: {exc}",
            ) from None
        if not is_valid_record_id(record_id):
            raise ApiProblem(
                502,
                "upstream_error",
                f"CodeArts Build answered {_shown(record_id)} as the record id of {what}",
            )
        return record_id

    async def delete_record(self, request: web.Request) -> web.Response:
        self._may_change(request)
        rec = self._lookup(request)
        await self._watchlist.remove(rec.record_id)
        return web.Response(status=204)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/, every error is JSON, and no exception escapes as a bare 500."""
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return await handler(request)
    try:
        return await handler(request)
    except ApiProblem as problem:
        return problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        code = (exc.reason or "error").lower().replace(" ", "_")
        message = f"{exc.status} {exc.reason}"
        if exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path[:200]}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed here (allowed: {headers.get('Allow', '')})"
        return web.json_response(
            {"error": code, "message": message}, status=exc.status, headers=headers
        )
    except Exception as exc:
        _log.error("admin_request_failed", path=request.path[:200], error=type(exc).__name__)
        return web.json_response(
            {"error": "internal_error", "message": "the request failed; see the daemon's log"},
            status=500,
        )


def add_admin_routes(
    app: web.Application,
    watchlist: Watchlist,
    *,
    token: str | Callable[[], str] | None,
    read_protected: bool,
    terminal_statuses: frozenset[str],
) -> AdminApi:
    """Mount the admin API on the daemon's application (before it starts)."""
    api = AdminApi(
        watchlist, token=token, read_protected=read_protected, terminal_statuses=terminal_statuses
    )
    app.middlewares.append(_json_errors)
    app.router.add_get(f"{PREFIX}/records", api.list_records)
    app.router.add_post(f"{PREFIX}/records", api.add_record)
    app.router.add_get(f"{PREFIX}/records/{{record_id}}", api.get_record)
    app.router.add_delete(f"{PREFIX}/records/{{record_id}}", api.delete_record)
    app.router.add_get(f"{PREFIX}/openapi.json", api.openapi)
    return api


# --- the OpenAPI document -----------------------------------------------------------------


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of /api/v1 (served at /api/v1/openapi.json)."""
    record_id = {
        "type": "string",
        "pattern": RECORD_ID_RE.pattern,
        "minLength": 36,
        "maxLength": 36,
    }
    nullable_number = {"type": ["number", "null"]}
    nullable_string = {"type": ["string", "null"]}
    stage_ref = {"$ref": "#/components/schemas/StageSummary"}
    labels_ref = {"$ref": "#/components/schemas/Labels"}
    bad_token = _error_response("No bearer token, or not the admin token")
    record_param = {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": record_id,
        "description": "The build record id (36 characters of [0-9a-z-]).",
    }
    read_errors = {"401": bad_token}  # only when MONITOR_ADMIN_READ_PROTECTED=true
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codearts-stage-monitor admin API",
            "version": "1",
            "description": (
                "Which build records the monitor watches. Changes need "
                "'Authorization: Bearer <MONITOR_ADMIN_TOKEN>'; reads are open unless "
                "MONITOR_ADMIN_READ_PROTECTED=true (then 401 without the token). Errors are "
                '{"error": CODE, "message": TEXT, "problems": [TEXT, ...]}.'
            ),
        },
        "paths": {
            f"{PREFIX}/records": {
                "get": {
                    "operationId": "listRecords",
                    "summary": "Watched records, ordered by record id, a page at a time",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                            "description": f"Records per page (default {DEFAULT_PAGE}).",
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": record_id,
                            "description": "The next_cursor of the previous page.",
                        },
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {"type": "string", "enum": [s.value for s in RecordState]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "One page",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/RecordPage"}
                                }
                            },
                        },
                        "400": _error_response("A query parameter is not valid"),
                        **read_errors,
                    },
                },
                "post": {
                    "operationId": "addRecord",
                    "summary": "Watch a record (idempotent: a watched id answers 200)",
                    "description": (
                        "201 when the record is new, 200 when it was already watched. Labels "
                        "given for a watched record replace its labels; omitted or empty "
                        "labels leave them as they are."
                    ),
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RecordRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _record_response("Already watched"),
                        "201": _record_response("Now watched"),
                        "400": _error_response("The body is not JSON"),
                        "401": bad_token,
                        "403": _error_response("Changes are disabled: no admin token configured"),
                        "413": _error_response(f"The body is larger than {MAX_BODY} bytes"),
                        "415": _error_response("The body is not sent as application/json"),
                        "404": _error_response("CodeArts Build knows no such job and build"),
                        "422": _error_response("The record id or a label is not valid"),
                        "502": _error_response("CodeArts Build could not be asked for the build"),
                        "503": _error_response("The daemon is still starting"),
                    },
                },
            },
            f"{PREFIX}/records/{{record_id}}": {
                "get": {
                    "operationId": "getRecord",
                    "summary": "One record with its current stage snapshot",
                    "parameters": [record_param],
                    "responses": {
                        "200": {
                            "description": "The record",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/RecordDetail"}
                                }
                            },
                        },
                        "400": _error_response("Not a record id"),
                        "404": _error_response("Not watched"),
                        **read_errors,
                    },
                },
                "delete": {
                    "operationId": "deleteRecord",
                    "summary": "Stop watching a record; its series vanish at the next scrape",
                    "security": [{"bearer": []}],
                    "parameters": [record_param],
                    "responses": {
                        "204": {"description": "No longer watched"},
                        "400": _error_response("Not a record id"),
                        "401": bad_token,
                        "403": _error_response("Changes are disabled: no admin token configured"),
                        "404": _error_response("Not watched"),
                    },
                },
            },
            f"{PREFIX}/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "RecordRequest": {
                    "oneOf": [
                        {
                            "type": "object",
                            "title": "By record id",
                            "additionalProperties": False,
                            "required": ["record_id"],
                            "properties": {"record_id": record_id, "labels": labels_ref},
                        },
                        {
                            "type": "object",
                            "title": "By job id and build number",
                            "description": (
                                "The monitor looks the record id up in CodeArts Build "
                                "(GET /v1/record/{job_id}/{build_no}/record-info)."
                            ),
                            "additionalProperties": False,
                            "required": ["job_id", "build_number"],
                            "properties": {
                                "job_id": {"type": "string", "pattern": JOB_ID_RE.pattern},
                                "build_number": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": MAX_BUILD_NUMBER,
                                },
                                "labels": labels_ref,
                            },
                        },
                    ]
                },
                "Labels": {
                    "type": "object",
                    "maxProperties": MAX_LABELS,
                    "propertyNames": {
                        "pattern": LABEL_NAME_RE.pattern,
                        "not": {
                            "anyOf": [
                                {"enum": sorted(RESERVED_LABELS)},
                                {"pattern": "^__"},
                            ]
                        },
                    },
                    "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE},
                    "description": (
                        "Added to every series and log event of this record. Valid Prometheus "
                        "label names, none of the monitor's own nor job/instance."
                    ),
                },
                "StageSummary": {
                    "type": "object",
                    "required": ["total", "by_status", "current", "fetched_at"],
                    "properties": {
                        "total": {"type": "integer"},
                        "by_status": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                        "current": {
                            "type": ["object", "null"],
                            "description": "The first stage not in a terminal status.",
                        },
                        "fetched_at": nullable_number,
                    },
                },
                "Record": {
                    "type": "object",
                    "required": [
                        "record_id",
                        "state",
                        "source",
                        "labels",
                        "added_at",
                        "stage_summary",
                    ],
                    "properties": {
                        "record_id": {"type": "string"},
                        "state": {"type": "string", "enum": [s.value for s in RecordState]},
                        "source": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "added_at": {"type": "number", "description": "Unix seconds"},
                        "finished_at": nullable_number,
                        "result": nullable_string,
                        "error": nullable_string,
                        "stage_summary": stage_ref,
                    },
                },
                "RecordDetail": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Record"},
                        {
                            "type": "object",
                            "required": ["stages"],
                            "properties": {
                                "stages": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Stage"},
                                }
                            },
                        },
                    ]
                },
                "Stage": {
                    "type": "object",
                    "required": ["build_stage", "display_name", "status", "sequence"],
                    "properties": {
                        "build_stage": {"type": "string"},
                        "display_name": {"type": "string"},
                        "status": {"type": "string"},
                        "status_code": {"type": ["integer", "null"]},
                        "sequence": {"type": "integer"},
                        "duration_seconds": nullable_number,
                        "build_duration_seconds": nullable_number,
                        "pending_seconds": nullable_number,
                        "start_time": nullable_number,
                        "finish_time": nullable_number,
                    },
                },
                "RecordPage": {
                    "type": "object",
                    "required": ["records", "total", "next_cursor"],
                    "properties": {
                        "records": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Record"},
                        },
                        "total": {"type": "integer"},
                        "next_cursor": nullable_string,
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "problems": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }


def _record_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Record"}}},
    }
