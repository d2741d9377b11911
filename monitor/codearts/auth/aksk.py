"""AK/SK request signing as an auth flow: every request is signed just before it is sent."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import anyio

from monitor.codearts.auth.signer import sign, signing_headers
from monitor.codearts.errors import AuthFailed
from monitor.codearts.messages import ApiRequest, ApiResponse, response_error
from monitor.domain.backoff import exponential_backoff

# The gateway refuses an X-Sdk-Date more than 15 minutes off its own clock.
ALLOWED_SKEW = 15 * 60.0


class AkSkAuth:
    """Signs with an access key and secret key (`SDK-HMAC-SHA256`); no token, nothing to refresh.

    The gateway locks an AK after more than 5 refused signatures in a row, which would
    also lock out every other user of that key. So while the key is in doubt (at start,
    and after a refusal) one request at a time probes it and the others wait for its
    verdict; after a refusal, requests fail without being sent until a backoff passes.
    """

    def __init__(
        self,
        *,
        ak: Callable[[], str],
        sk: Callable[[], str],
        project_id: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        retry_min: float = 5.0,
        retry_max: float = 300.0,
    ) -> None:
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._clock = clock  # wall time, for X-Sdk-Date
        self._monotonic = monotonic  # for the backoff
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._trusted = False  # the gateway accepted our last signature
        self._probe: anyio.Event | None = None
        self._failure: AuthFailed | None = None
        self._failures = 0
        self._retry_at = 0.0

    def secrets(self) -> list[str]:
        try:
            return [self._sk()]
        except OSError:
            return []

    async def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        while self._probe is not None:
            await self._probe.wait()
        if self._failure is not None and self._monotonic() < self._retry_at:
            raise self._failure.again()
        probe = None if self._trusted else anyio.Event()
        self._probe = probe
        try:
            now = self._clock()
            response = yield self._signed(request, now)
            if response.status != 401:
                self._trusted = True
                self._failure = None
                self._failures = 0
                return
            self._trusted = False
            raise self._failed(_refusal(response, now))
        finally:
            if probe is not None:
                self._probe = None
                probe.set()

    def _signed(self, request: ApiRequest, now: float) -> ApiRequest:
        base = urlsplit(request.base_url)
        headers = signing_headers(
            host=base.netloc, now=now, headers=request.headers, project_id=self._project_id
        )
        signature = sign(
            method=request.method,
            path=base.path.rstrip("/") + request.path,
            query=request.query,
            headers=headers,
            body=request.body,
            ak=self._ak(),
            sk=self._sk(),
        )
        headers["Authorization"] = signature.authorization
        return request.with_header_map(headers)

    def _failed(self, error: AuthFailed) -> AuthFailed:
        now = self._monotonic()
        if self._failure is None or now >= self._retry_at:
            # Refusals of requests that were already in flight do not lengthen the backoff.
            self._failures += 1
            self._retry_at = now + exponential_backoff(
                self._failures, self._retry_min, self._retry_max
            )
        self._failure = error
        return error


def _refusal(response: ApiResponse, sent_at: float) -> AuthFailed:
    """Why the gateway refused a signature: our clock, or the key."""
    skew = clock_skew(response, sent_at)
    code, msg = response_error(response)
    if skew is not None and abs(skew) > ALLOWED_SKEW:
        return AuthFailed(
            f"the API refused the signature and this host's clock is {skew:+.0f} s off the "
            f"gateway's (more than {ALLOWED_SKEW:.0f} s is refused): " + msg,
            reason="clock_skew",
            status=401,
            error_code=code,
        )
    return AuthFailed(
        "the API refused the AK/SK signature (wrong AK or SK?): " + msg,
        reason="signature_rejected",
        status=401,
        error_code=code,
    )


def clock_skew(response: ApiResponse, sent_at: float) -> float | None:
    """Seconds our clock is behind (-) or ahead (+) of the server's `Date` header, if it has one."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        server = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return sent_at - server
