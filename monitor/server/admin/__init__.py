"""The admin HTTP API under /api/v1/: list, read, add and remove watched records.

An aiohttp sub-application (mount it with `app.add_subapp(PREFIX, admin_app(...))`).
Changes need `Authorization: Bearer <MONITOR_ADMIN_TOKEN>`; with no admin token
configured they are refused with 403 and a message saying how to enable them.
Reads are open unless MONITOR_ADMIN_READ_PROTECTED is set. Every refusal and
every invalid request gets a JSON body `{"error": CODE, "message": TEXT}`
(plus `problems`, one line per rule broken), and nothing is applied.
The OpenAPI document at /api/v1/openapi.json is generated from models.py.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from monitor.server.admin.access import Access
from monitor.server.admin.errors import json_errors
from monitor.server.admin.handlers import AdminHandlers, LookupUnavailable, Resolver
from monitor.server.admin.openapi import openapi_document
from monitor.tracking.watchlist import Watchlist

PREFIX = "/api/v1"

__all__ = ["PREFIX", "LookupUnavailable", "Resolver", "admin_app", "openapi_document"]


def admin_app(
    watchlist: Watchlist,
    *,
    token: str | Callable[[], str] | None,
    read_protected: bool,
    terminal_statuses: frozenset[str],
    resolver: Resolver,
) -> web.Application:
    """The admin API as an application to mount at PREFIX.

    `token` is the admin token, or a callable re-reading it from a file (a rotated
    Secret); `resolver` turns a job id and build number into a record id and
    raises LookupUnavailable while it cannot ask CodeArts Build.
    """
    handlers = AdminHandlers(
        watchlist,
        Access(token, read_protected=read_protected),
        resolver=resolver,
        terminal_statuses=terminal_statuses,
    )
    document = openapi_document(PREFIX)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application(middlewares=[json_errors])
    app.add_routes(handlers.routes())
    app.router.add_get("/openapi.json", openapi)
    return app
