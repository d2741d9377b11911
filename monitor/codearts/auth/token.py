"""A token given directly, or read from a file (MONITOR_AUTH_TOKEN / _FILE)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from monitor.codearts.auth.base import AUTH_TOKEN_HEADER
from monitor.codearts.errors import AuthFailed
from monitor.codearts.messages import ApiRequest, ApiResponse, response_error
from monitor.files import FileSecret


class StaticTokenAuth:
    """A token given directly, or read from a file that is re-read when it changes."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    @classmethod
    def from_value(cls, value: str) -> StaticTokenAuth:
        return cls(lambda: value)

    @classmethod
    def from_file(cls, path: Path) -> StaticTokenAuth:
        return cls(FileSecret(path))

    async def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        response = yield request.with_header_map({AUTH_TOKEN_HEADER: self._token()})
        if response.status == 401:
            code, msg = response_error(response)
            raise AuthFailed(
                "the API refused the token: " + msg,
                reason="token_rejected",
                status=401,
                error_code=code,
            )

    def secrets(self) -> list[str]:
        try:
            return [self._token()]
        except OSError:
            return []
