"""Every refusal under /api/v1 as a JSON body, and nothing escaping as a bare 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from monitor.logging import get_logger
from monitor.server.admin.models import Error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_log = get_logger("monitor.admin")


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
        return error_response(
            self.status, self.code, self.message, self.problems or None, self.headers
        )


def error_response(
    status: int,
    code: str,
    message: str,
    problems: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = Error(error=code, message=message, problems=problems).model_dump(exclude_none=True)
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin sub-app's middleware: it sees only requests under its prefix."""
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
        return error_response(exc.status, code, message, headers=headers)
    except Exception as exc:
        _log.error("admin_request_failed", path=request.path[:200], error=type(exc).__name__)
        return error_response(500, "internal_error", "the request failed; see the daemon's log")
