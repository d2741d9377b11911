"""The one interface every authentication scheme implements, after httpx's `auth_flow`.

An auth flow is an async generator: it yields the request to send, receives the
response, and may yield a second request (for example after refreshing a token).
The client never needs to know which scheme it holds. A flow that gives up on
authentication raises `AuthFailed` with a bounded reason.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from monitor.codearts.messages import ApiRequest, ApiResponse

AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 (a header name)


class Auth(Protocol):
    """How requests are authenticated."""

    def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        """Yield requests to send; each `asend` delivers the answer to the last one."""
        ...

    def secrets(self) -> list[str]:
        """Secret values this scheme holds, so logging can redact them."""
        ...


@runtime_checkable
class RefreshingAuth(Protocol):
    """A scheme whose credential expires and is renewed ahead of time by a background task."""

    def refresh_in(self) -> float:
        """Seconds until the credential should be renewed (0: now)."""
        ...

    def refresh_flow(self) -> AsyncGenerator[ApiRequest, ApiResponse]:
        """Renew now: yields the renewal request(s); raises AuthFailed if refused."""
        ...
