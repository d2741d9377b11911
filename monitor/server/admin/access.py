"""Who may read and change the watchlist: the bearer token, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from aiohttp import web

from monitor.logging import get_logger
from monitor.server.admin.errors import ApiProblem

ENABLE_HINT = (
    "changes through the admin API are disabled because no admin token is configured: "
    "set MONITOR_ADMIN_TOKEN or MONITOR_ADMIN_TOKEN_FILE (at least 16 characters) and send it as "
    "'Authorization: Bearer <token>'"
)
REALM = 'Bearer realm="stage-monitor"'
_log = get_logger("monitor.admin")


class Access:
    """The admin token (a value, or a callable re-reading a rotated file) and read protection."""

    def __init__(self, token: str | Callable[[], str] | None, *, read_protected: bool) -> None:
        self._token: Callable[[], str] | None = None
        if isinstance(token, str):
            if token:
                value = token
                self._token = lambda: value
        elif token is not None:
            self._token = token
        self._read_protected = read_protected

    def may_change(self, request: web.Request) -> None:
        """Raise the refusal unless the request carries the admin token."""
        if self._token is None:
            refused(request, "admin token not configured")
            raise ApiProblem(403, "admin_disabled", ENABLE_HINT)
        self._check_token(request)

    def may_read(self, request: web.Request) -> None:
        """Raise the refusal when reads are protected and the request lacks the token."""
        if self._read_protected and self._token is not None:
            self._check_token(request)

    def _digest(self) -> bytes | None:
        if self._token is None:
            return None
        try:
            token = self._token()
        except OSError:
            return None  # an unreadable token file refuses every change
        return hashlib.sha256(token.encode()).digest() if token else None

    def _check_token(self, request: web.Request) -> None:
        expected = self._digest()
        if expected is None:
            refused(request, "admin token not readable")
            raise ApiProblem(403, "admin_disabled", ENABLE_HINT)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            refused(request, "no bearer token")
            raise ApiProblem(
                401,
                "unauthorized",
                "this needs 'Authorization: Bearer <MONITOR_ADMIN_TOKEN>'",
                headers={"WWW-Authenticate": REALM},
            )
        # Hashing first makes the comparison constant-time in the token's length too.
        digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(digest, expected):
            refused(request, "wrong bearer token")
            raise ApiProblem(
                401,
                "unauthorized",
                "the bearer token is not the admin token",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )


def refused(request: web.Request, reason: str) -> None:
    _log.warning(
        "admin_request_refused",
        method=request.method,
        path=request.path[:200],
        reason=reason,
        remote=request.remote,
    )
