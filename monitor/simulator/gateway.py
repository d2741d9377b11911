"""The API Gateway in front of CodeArts Build: which requests get through, and the one 401.

A request authenticates with an IAM token (`X-Auth-Token`: a fixed token given to
the simulator, or one IAM issued and not yet expired) or with an AK/SK signature
(`Authorization: SDK-HMAC-SHA256 ...`, checked by `signature.verify`, with 15
minutes of clock skew allowed). More than AK_LOCK_AFTER refused signatures in a row
lock the AK. Every refusal goes through `refuse`, worded for the scheme refused.

Auth times use `wall` (real time by default), not the build clock: the gateway
checks X-Sdk-Date against its own real clock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.simulator import signature
from monitor.simulator.errors import apigw_body
from monitor.simulator.requestlog import RequestLog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

APIGW_TOKEN_MSG = "Incorrect IAM authentication information: token expires or invalid"  # noqa: S105
APIGW_AKSK_MSG = "Incorrect IAM authentication information: verify aksk signature fail"
# INVENTED: the reference does not say how the gateway words a refused X-Sdk-Date.
APIGW_DATE_MSG = (
    "Incorrect IAM authentication information: verify aksk signature fail, x-sdk-date expired"
)
# INVENTED wording and duration: the reference says only that an AK is locked after
# more than 5 refused signatures in a row.
APIGW_AK_LOCKED_MSG = "Incorrect IAM authentication information: AK is locked"
AK_LOCK_AFTER = 5
AK_LOCK_SECONDS = 300.0
ALLOWED_SKEW = 15 * 60.0  # the gateway's tolerance for X-Sdk-Date

_REFUSAL_MSG = {
    signature.Refusal.SIGNATURE: APIGW_AKSK_MSG,
    signature.Refusal.DATE: APIGW_DATE_MSG,
}


class Gateway:
    """Tokens, AK/SK pairs and lock-outs; `guard` puts a handler behind them."""

    def __init__(
        self,
        *,
        tokens: set[str],
        aksk: dict[str, str] | None,
        log: RequestLog,
        wall: Callable[[], float] = time.time,
        accept_any_auth: bool = False,
    ) -> None:
        self.tokens = tokens
        self.aksk: dict[str, str] = dict(aksk or {})
        self.wall = wall
        # FOR BENCHMARKS ONLY: accept any request that carries an `Authorization` or
        # `X-Auth-Token` header without checking it, so the official SDK (which signs
        # with AK/SK) can be measured against the simulator. Never the real API's behaviour.
        self.accept_any_auth = accept_any_auth
        self.issued: dict[str, float] = {}  # IAM token -> expiry (wall time)
        self.aksk_refusals: Counter[str] = Counter()  # refused signatures in a row, per AK
        self.aksk_locked_until: dict[str, float] = {}
        self._log = log

    def guard(self, handler: Handler) -> Handler:
        """`handler` behind the gateway: it runs only for an authenticated request."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            problem = await self.problem(request)
            if problem is not None:
                self._log(request, request.match_info.get("record_id"), 401)
                return refuse(problem)
            return await handler(request)

        return guarded

    async def problem(self, request: web.Request) -> str | None:
        """None when the gateway lets `request` through, else the message it refuses it with."""
        authorization = request.headers.get("Authorization")
        if self.accept_any_auth:  # benchmarks only: any credential header passes
            if authorization is not None or "X-Auth-Token" in request.headers:
                return None
            return APIGW_TOKEN_MSG
        if authorization is not None:
            return await self._signature_problem(request, authorization)
        return self.token_problem(request.headers.get("X-Auth-Token", ""))

    def token_problem(self, token: str) -> str | None:
        if token and token in self.tokens:
            return None
        expiry = self.issued.get(token) if token else None
        if expiry is not None and self.wall() < expiry:
            return None
        return APIGW_TOKEN_MSG

    def expire_tokens(self) -> int:
        """Make every IAM token issued so far expired, as 24 hours would; returns how many."""
        now = self.wall()
        for token in self.issued:
            self.issued[token] = min(self.issued[token], now)
        return len(self.issued)

    async def _signature_problem(self, request: web.Request, authorization: str) -> str | None:
        """More than AK_LOCK_AFTER refusals in a row lock the AK, correct signatures included."""
        claim = signature.parse_claim(authorization)
        if claim is None or claim.access not in self.aksk:
            return APIGW_AKSK_MSG
        ak = claim.access
        if self.wall() < self.aksk_locked_until.get(ak, 0.0):
            return APIGW_AK_LOCKED_MSG
        refusal = signature.verify(
            claim,
            sk=self.aksk[ak],
            method=request.method,
            raw_path=request.rel_url.raw_path,
            raw_query=request.rel_url.raw_query_string,
            headers=signature.lower_headers(request.headers.items()),
            body=await request.read(),
            now=self.wall(),
            allowed_skew=ALLOWED_SKEW,
        )
        if refusal is None:
            self.aksk_refusals[ak] = 0
            return None
        self.aksk_refusals[ak] += 1
        if self.aksk_refusals[ak] > AK_LOCK_AFTER:
            self.aksk_locked_until[ak] = self.wall() + AK_LOCK_SECONDS
        return _REFUSAL_MSG[refusal]


def refuse(message: str) -> web.Response:
    """The gateway's 401 (APIGW.0301), worded for the credential it refused."""
    return web.json_response(apigw_body("APIGW.0301", message), status=401)
