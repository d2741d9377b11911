"""Authentication schemes behind one small interface, after httpx's `auth_flow`.

An auth flow is an async generator: it yields the request to send, receives the
response, and may yield a second request (for example after refreshing a token).
The client never needs to know which scheme it holds.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Protocol

from monitor.codearts.messages import ApiRequest, ApiResponse
from monitor.settings import Settings

AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 (a header name)


class Auth(Protocol):
    """How requests are authenticated."""

    def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        """Yield requests to send; each `asend` delivers the answer to the last one."""
        ...

    def secrets(self) -> list[str]:
        """Secret values this scheme holds, so logging can redact them."""
        ...


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
        yield request.with_header_map({AUTH_TOKEN_HEADER: self._token()})

    def secrets(self) -> list[str]:
        try:
            return [self._token()]
        except OSError:
            return []


class FileSecret:
    """A secret kept in a file (a mounted Kubernetes Secret); re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""

    def __call__(self) -> str:
        st = os.stat(self._path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._value = self._path.read_text(encoding="utf-8").strip()
            self._stamp = stamp
        return self._value


def auth_from_settings(settings: Settings) -> Auth:
    """The auth scheme the settings choose."""
    if settings.auth_token_file is not None:
        return StaticTokenAuth.from_file(settings.auth_token_file)
    if settings.auth_token is not None:
        return StaticTokenAuth.from_value(settings.auth_token.get_secret_value())
    raise ValueError("no credentials configured")
