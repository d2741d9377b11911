"""Authentication schemes behind one small interface, after httpx's `auth_flow`.

An auth flow is an async generator: it yields the request to send, receives the
response, and may yield a second request (for example after refreshing a token).
The client never needs to know which scheme it holds.

Three schemes: `StaticTokenAuth` (here), `IamPasswordAuth` (iam.py: tokens from
IAM, refreshed) and `AkSkAuth` (aksk.py: SDK-HMAC-SHA256 signing, signer.py).
A flow that gives up on authentication raises `AuthFailed` with a bounded reason.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Iterable
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from monitor.codearts.errors import AUTH_FAILURE_REASONS, AuthFailed
from monitor.codearts.messages import ApiRequest, ApiResponse, response_error
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


class FileSecret:
    """A secret kept in a file (a mounted Kubernetes Secret); re-read when the file changes."""

    def __init__(
        self, path: Path, on_change: Callable[[Iterable[str]], None] | None = None
    ) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""
        self._on_change = on_change

    def __call__(self) -> str:
        st = os.stat(self._path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._value = self._path.read_text(encoding="utf-8").strip()
            self._stamp = stamp
            if self._on_change is not None:  # a rotated secret must be redacted too
                self._on_change([self._value])
        return self._value


def auth_from_settings(
    settings: Settings, register_secret: Callable[[Iterable[str]], None] | None = None
) -> Auth:
    """The auth scheme the settings choose; `register_secret` hears every secret read later."""
    from monitor.codearts.aksk import AkSkAuth
    from monitor.codearts.iam import IamPasswordAuth

    def secret(value: SecretStr | str | None, path: Path | None) -> Callable[[], str]:
        if path is not None:
            return FileSecret(path, register_secret)
        assert value is not None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return lambda: text

    s = settings
    if s.auth_mode == "password":
        assert s.iam_username is not None
        assert s.iam_domain is not None
        return IamPasswordAuth(
            iam_url=s.iam_endpoint_url,
            username=s.iam_username,
            password=secret(s.iam_password, s.iam_password_file),
            domain=s.iam_domain,
            project_name=None if s.iam_project_id else (s.iam_project or s.region),
            project_id=s.iam_project_id,
            on_token=register_secret,
        )
    if s.auth_mode == "aksk":
        return AkSkAuth(
            ak=secret(s.ak, s.ak_file),
            sk=secret(s.sk, s.sk_file),
            project_id=s.project_id,
        )
    if s.auth_token_file is not None:
        return StaticTokenAuth(FileSecret(s.auth_token_file, register_secret))
    if s.auth_token is not None:
        return StaticTokenAuth.from_value(s.auth_token.get_secret_value())
    raise ValueError("no credentials configured")


__all__ = [
    "AUTH_FAILURE_REASONS",
    "AUTH_TOKEN_HEADER",
    "Auth",
    "FileSecret",
    "StaticTokenAuth",
    "auth_from_settings",
]
