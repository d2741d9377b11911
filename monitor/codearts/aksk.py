"""AK/SK request signing as an auth flow: every request is signed just before it is sent."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from monitor.codearts.auth import gateway_code, gateway_message
from monitor.codearts.errors import AuthFailed
from monitor.codearts.messages import ApiRequest, ApiResponse
from monitor.codearts.signer import sign, signing_headers

# The gateway refuses an X-Sdk-Date more than 15 minutes off its own clock.
ALLOWED_SKEW = 15 * 60.0


class AkSkAuth:
    """Signs with an access key and secret key (`SDK-HMAC-SHA256`); no token, nothing to refresh."""

    def __init__(
        self,
        *,
        ak: Callable[[], str],
        sk: Callable[[], str],
        project_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._clock = clock

    def secrets(self) -> list[str]:
        try:
            return [self._sk()]
        except OSError:
            return []

    async def auth_flow(self, request: ApiRequest) -> AsyncGenerator[ApiRequest, ApiResponse]:
        base = urlsplit(request.base_url)
        now = self._clock()
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
        response = yield request.with_header_map(headers)
        if response.status != 401:
            return
        skew = clock_skew(response, now)
        if skew is not None and abs(skew) > ALLOWED_SKEW:
            raise AuthFailed(
                f"the API refused the signature and this host's clock is {skew:+.0f} s off the "
                f"gateway's (more than {ALLOWED_SKEW:.0f} s is refused): "
                + gateway_message(response),
                reason="clock_skew",
                status=401,
                error_code=gateway_code(response),
            )
        raise AuthFailed(
            "the API refused the AK/SK signature (wrong AK or SK?): " + gateway_message(response),
            reason="signature_rejected",
            status=401,
            error_code=gateway_code(response),
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
