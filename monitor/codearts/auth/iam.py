"""IAM password tokens: fetched from `POST {iam}/v3/auth/tokens`, cached, refreshed early.

One token serves every request. It is refreshed when a fixed share of its life
is left, and when the gateway refuses it (APIGW.0301, "token expires"): the
request is then retried once with the new token. However many polls find the
token stale at once, exactly one of them asks IAM; the others wait for its
answer. A refused password is not retried at once: IAM locks users after
repeated failures, so retries back off.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from monitor.codearts.auth.base import AUTH_TOKEN_HEADER
from monitor.codearts.errors import AuthFailed
from monitor.codearts.messages import ApiRequest, ApiResponse, response_error
from monitor.domain.backoff import exponential_backoff
from monitor.logging import get_logger

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 (a path)
SUBJECT_TOKEN_HEADER = "x-subject-token"  # noqa: S105 (a header name, as the client lower-cases it)
# Refresh when this much of the token's life is left (tokens live 24 h): well before expiry,
# so a slow or failing IAM has an hour of retries before any poll notices.
REFRESH_BEFORE = 3600.0
# Never use a token in its last seconds: the request could arrive after it expired.
EXPIRY_SAFETY = 30.0


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float  # on our own (monotonic) clock
    expires_at: float


class IamPasswordAuth:
    """A project-scoped IAM user token, obtained with a user name and password."""

    def __init__(
        self,
        *,
        iam_url: str,
        username: str,
        password: Callable[[], str],
        domain: str,
        project_name: str | None = None,
        project_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_min: float = 5.0,
        retry_max: float = 300.0,
        on_token: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        if not project_name and not project_id:
            raise ValueError("a project name or id is needed: IAM tokens must be project-scoped")
        self._iam_url = iam_url.rstrip("/")
        self._username = username
        self._password = password
        self._domain = domain
        self._project: dict[str, str] = (
            {"id": project_id} if project_id else {"name": project_name or ""}
        )
        self._clock = clock
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._on_token = on_token
        self._token: _Token | None = None
        self._refreshing: anyio.Event | None = None
        self._failure: AuthFailed | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.tokens_fetched = 0
        self._log: Any = get_logger("monitor.auth")

    def secrets(self) -> list[str]:
        out = []
        with contextlib.suppress(OSError):
            out.append(self._password())
        if self._token is not None:
            out.append(self._token.value)
        return out

    async def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        refused: str | None = None  # the token the gateway refused on the first try
        for attempt in (1, 2):
            # Wait for a usable token, becoming the one refresher when there is none.
            while True:
                now = self._clock()
                if self._refreshing is not None:
                    # Someone is asking IAM: use the old token while it lasts, else wait.
                    token = self._still_valid(now, refused)
                    if token is not None:
                        break
                    await self._refreshing.wait()
                    continue
                token = self._usable(now, refused)
                if token is not None:
                    break
                done = anyio.Event()
                self._refreshing = done
                answered = False
                try:
                    answer = yield self._token_request()
                    answered = True
                    try:
                        self._take(answer, self._clock())
                    except AuthFailed as exc:
                        # An early refresh failed: carry on with the old token while it lasts.
                        token = self._still_valid(self._clock(), refused)
                        if token is None:
                            raise
                        assert self._token is not None
                        self._log.warning(
                            "iam_token_refresh_failed",
                            reason=exc.reason,
                            error=str(exc),
                            expires_in_seconds=round(self._token.expires_at - self._clock()),
                        )
                        break
                finally:
                    if not answered:
                        # The IAM request itself failed (transport, timeout, cancelled).
                        self._failed(
                            AuthFailed(
                                f"no answer from IAM at {self._iam_url}",
                                reason="iam_unavailable",
                            ),
                            self._clock(),
                        )
                    self._refreshing = None
                    done.set()
            response = yield request.with_header_map({AUTH_TOKEN_HEADER: token})
            if response.status != 401:
                self._failures = 0
                return
            if attempt == 2:
                code, msg = response_error(response)
                error = AuthFailed(
                    "the API refused a freshly issued IAM token: " + msg,
                    reason="token_rejected",
                    status=401,
                    error_code=code,
                )
                self._failed(error, self._clock())
                raise error
            refused = token

    def _still_valid(self, now: float, refused: str | None) -> str | None:
        tok = self._token
        if tok is not None and tok.value != refused and now < tok.expires_at:
            return tok.value
        return None

    def _usable(self, now: float, refused: str | None) -> str | None:
        """The token to send now, None to refresh it; raises the last failure while backing off."""
        tok = self._token
        backing_off = now < self._retry_at
        if self._still_valid(now, refused) is not None:
            assert tok is not None
            if now < tok.refresh_at or backing_off:
                return tok.value
            return None
        if backing_off and self._failure is not None:
            raise self._failure.again()
        return None

    def _token_request(self) -> ApiRequest:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._username,
                            "password": self._password(),
                            "domain": {"name": self._domain},
                        }
                    },
                },
                "scope": {"project": self._project},
            }
        }
        return ApiRequest(
            "POST",
            self._iam_url,
            TOKEN_PATH,
            [("nocatalog", "true")],
            {"Content-Type": "application/json;charset=utf8"},
            json.dumps(body).encode("utf-8"),
        )

    def _take(self, response: ApiResponse, now: float) -> None:
        """Keep the token IAM answered with, or record and raise why there is none."""
        if response.status in (400, 401, 403):
            where = f"user {self._username!r} of domain {self._domain!r}"
            raise self._failed(
                AuthFailed(
                    f"IAM refused the credentials of {where}: {response_error(response)[1]}",
                    reason="iam_rejected",
                    status=response.status,
                ),
                now,
            )
        value = response.headers.get(SUBJECT_TOKEN_HEADER, "")
        lifetime = _lifetime(response.body) if response.status == 201 else None
        if response.status != 201 or not value or lifetime is None:
            detail = response_error(response)[1] if response.status != 201 else "no usable token"
            raise self._failed(
                AuthFailed(
                    f"IAM did not issue a token (HTTP {response.status}): {detail}",
                    reason="iam_unavailable",
                    status=response.status,
                ),
                now,
            )
        if self._on_token is not None:
            self._on_token([value])
        before = min(REFRESH_BEFORE, lifetime / 4)
        safety = min(EXPIRY_SAFETY, lifetime / 10)  # a short-lived token stays usable a while
        self._token = _Token(value, now + lifetime - before, now + lifetime - safety)
        self._failure = None
        self._retry_at = 0.0
        self.tokens_fetched += 1

    def _failed(self, error: AuthFailed, now: float) -> AuthFailed:
        self._failure = error
        self._failures += 1
        self._retry_at = now + exponential_backoff(self._failures, self._retry_min, self._retry_max)
        return error


def _lifetime(body: bytes) -> float | None:
    """Seconds the token lives, from `issued_at`/`expires_at` (immune to our clock's offset)."""
    try:
        token = json.loads(body)["token"]
        expires = _parse_time(token["expires_at"])
        issued = _parse_time(token["issued_at"]) if token.get("issued_at") else None
    except (ValueError, KeyError, TypeError):
        return None
    # Without issued_at (only expires_at is documented as certain), trust our wall clock.
    seconds = expires - (time.time() if issued is None else issued)
    return seconds if seconds > 0 else None


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
