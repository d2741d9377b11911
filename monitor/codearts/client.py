"""The CodeArts Build API client: one pooled aiohttp session, typed answers, mapped errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import anyio
from anyio.abc import TaskStatus
from pydantic import ValidationError

from monitor.codearts.auth.base import Auth, RefreshingAuth
from monitor.codearts.errors import (
    ApiError,
    AuthenticationError,
    AuthFailed,
    CodeArtsError,
    Forbidden,
    MalformedResponse,
    NotFound,
    RequestTimeout,
    ServerError,
    Throttled,
    TransportError,
    describe_validation_error,
)
from monitor.codearts.messages import (
    ApiRequest,
    ApiResponse,
    clip_message,
    error_fields,
    response_error,
)
from monitor.codearts.models import FullStagesResponse, to_snapshot
from monitor.domain import RecordSnapshot
from monitor.logging import get_logger

THROTTLE_CODES = frozenset({"APIGW.0308", "CB.00060211"})


class RequestObserver(Protocol):
    """Told about every HTTP exchange; the monitor's own metrics implement it."""

    def observe_request(self, code: str, seconds: float) -> None: ...


class RequestGate(Protocol):
    """Admits requests (a process-wide rate budget) and hears about throttling."""

    async def acquire(self) -> None: ...

    def throttled(self, retry_after: float | None) -> None: ...


class AuthObserver(Protocol):
    """Told whether each exchange got past authentication (the daemon's auth health)."""

    def auth_failed(self, error: AuthFailed) -> None: ...

    def auth_ok(self) -> None: ...


class _NullObserver:
    def observe_request(self, code: str, seconds: float) -> None:
        return None

    def auth_failed(self, error: AuthFailed) -> None:
        return None

    def auth_ok(self) -> None:
        return None


class IncompatibleAiohttp(RuntimeError):
    """The installed aiohttp lacks what the client relies on; the message says what."""


def disable_hidden_retry(session: object) -> None:
    """Stop aiohttp from re-sending a request, behind our back, when a connection drops.

    That second request would bypass the rate gate and hide the failure from the
    scheduler's backoff, so we retry only through our own policy. The switch is a private
    attribute of aiohttp's ClientSession: if a release renames it, setting it would
    silently create a new attribute and change nothing, so refuse to start instead.
    """
    if not hasattr(session, "_retry_connection"):
        raise IncompatibleAiohttp(
            f"aiohttp {aiohttp.__version__} has no ClientSession._retry_connection, which "
            "the monitor sets so that a dropped connection is not silently re-sent; "
            "install an aiohttp release that has it (3.10 to 3.14 have it)"
        )
    session._retry_connection = False


class CodeArtsClient:
    """Polls the API. Create inside a running event loop; close with `aclose()`."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        timeout: float = 10.0,
        max_connections: int = 16,
        observer: RequestObserver | None = None,
        gate: RequestGate | None = None,
        user_agent: str = "codearts-stage-monitor",
        auth_observer: AuthObserver | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._observer = observer or _NullObserver()
        self._auth_observer = auth_observer or _NullObserver()
        self._gate = gate
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            # The auth flow owns every header; never let a redirect carry them elsewhere.
            auto_decompress=True,
        )
        disable_hidden_retry(self._session)

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> CodeArtsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the one call the poller makes ------------------------------------------------

    async def full_stages(self, record_id: str) -> RecordSnapshot:
        """Every stage of a record. Raises a CodeArtsError subclass on any failure."""
        req = ApiRequest("GET", self._base_url, f"/v1/record/{record_id}/full-stages")
        resp = await self.execute(req)
        fetched_at = time.time()
        if resp.status != 200:
            raise self._throttle_aware(error_from_response(resp))
        try:
            body = FullStagesResponse.model_validate_json(resp.body)
        except ValidationError as exc:
            raise MalformedResponse(describe_validation_error(exc), status=resp.status) from None
        if body.error_code or (body.status or "").lower() == "fail":
            raise self._throttle_aware(
                _error_in_ok_body(
                    {
                        "error_code": body.error_code,
                        "error_msg": body.error_msg,
                        "error": body.error,
                    },
                    resp.status,
                )
            )
        if body.result is None or body.result.build_stages is None:
            raise MalformedResponse("answer has no result.build_stages", status=resp.status)
        return to_snapshot(record_id, body, fetched_at)

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        """GET any API path and return its JSON, mapping errors as for full-stages."""
        return self._json_of(
            await self.execute(ApiRequest("GET", self._base_url, path, query or []))
        )

    async def post_json(
        self, path: str, payload: Any, query: list[tuple[str, str]] | None = None
    ) -> Any:
        """POST a JSON body to any API path and return its JSON, errors mapped as for GET."""
        req = ApiRequest(
            "POST",
            self._base_url,
            path,
            query or [],
            {"Content-Type": "application/json;charset=UTF-8"},
            json.dumps(payload, separators=(",", ":")).encode(),
        )
        return self._json_of(await self.execute(req))

    def _json_of(self, resp: ApiResponse) -> Any:
        """The JSON of an answer; a non-200, non-JSON or 200-with-error answer raises."""
        if resp.status != 200:
            raise self._throttle_aware(error_from_response(resp))
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise MalformedResponse("answer is not JSON", status=resp.status) from None
        if isinstance(data, dict) and (
            data.get("error_code") or str(data.get("status", "")).lower() == "fail"
        ):
            raise self._throttle_aware(_error_in_ok_body(data, resp.status))
        return data

    # --- plumbing ------------------------------------------------------------------------

    def _throttle_aware(self, error: CodeArtsError) -> CodeArtsError:
        # A 429 was reported to the gate when it arrived (see _send); CB.00060211 comes
        # as 400, 500 or a 200 body, and slows the whole process down just the same.
        if self._gate is not None and isinstance(error, Throttled) and error.status != 429:
            self._gate.throttled(error.retry_after)
        return error

    async def execute(self, request: ApiRequest) -> ApiResponse:
        """Send a request through the auth flow; the final response is returned as is.

        Raises AuthFailed when the flow gives up on authentication.
        """
        try:
            response = await self._flow(request)
        except AuthFailed as exc:
            self._auth_observer.auth_failed(exc)
            raise
        if response.status == 401:
            self._auth_observer.auth_failed(
                AuthFailed(str(error_from_response(response)), reason="rejected", status=401)
            )
        else:
            self._auth_observer.auth_ok()
        return response

    async def _flow(self, request: ApiRequest) -> ApiResponse:
        flow = self._auth.auth_flow(request)
        try:
            # Through the rate gate first, then let the flow pick its credential: a token
            # chosen before a wait at the gate could expire while it waits.
            if self._gate is not None:
                await self._gate.acquire()
            outgoing = await flow.__anext__()
            gated = True
            while True:
                response = await self._send(outgoing, gated=gated)
                gated = False
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def keep_auth_fresh(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew an expiring credential ahead of time, until cancelled (no-op for others)."""
        task_status.started()
        auth = self._auth
        if not isinstance(auth, RefreshingAuth):
            return
        log = get_logger("monitor.auth")
        while True:
            await anyio.sleep(auth.refresh_in())
            try:
                await self._drive(auth.refresh_flow())
            except AuthFailed as exc:
                # The scheme backs off (refresh_in grows); polls use the old token meanwhile.
                log.warning("iam_token_refresh_failed", reason=exc.reason, error=str(exc))
            except TransportError as exc:
                log.warning("iam_token_refresh_failed", reason="iam_unavailable", error=str(exc))

    async def _drive(self, flow: AsyncGenerator[ApiRequest, ApiResponse]) -> None:
        """Send what a flow yields until it ends (a flow may also end without a request)."""
        try:
            try:
                outgoing = await flow.__anext__()
            except StopAsyncIteration:
                return
            while True:
                response = await self._send(outgoing)
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
        finally:
            await flow.aclose()

    async def _send(self, request: ApiRequest, *, gated: bool = False) -> ApiResponse:
        if self._gate is not None and not gated:
            await self._gate.acquire()
        started = time.perf_counter()
        code = "error"
        try:
            async with self._session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body or None,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                code = str(resp.status)
                result = ApiResponse(resp.status, _plain_headers(resp.headers), body)
        except TimeoutError:
            code = "timeout"
            raise RequestTimeout("request timed out") from None
        except aiohttp.ClientPayloadError:
            code = "truncated"
            raise TransportError("answer body was cut short") from None
        except aiohttp.ClientError as exc:
            code = "connection_error"
            raise TransportError(f"connection failed: {type(exc).__name__}") from None
        finally:
            self._observer.observe_request(code, time.perf_counter() - started)
        if self._gate is not None and (
            result.status == 429 or (result.status >= 400 and "retry-after" in result.headers)
        ):
            # "Too many requests", or any refusal that says when to come back (a 503
            # with Retry-After): the whole process waits, not just this record.
            self._gate.throttled(retry_after_seconds(result.headers))
        return result


def _plain_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items():
        out[k.lower()] = v
    return out


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); None if unusable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = max(0.0, when.timestamp() - time.time())
    return seconds if seconds >= 0 else None


def _error_in_ok_body(data: Mapping[str, Any], status: int) -> ApiError:
    """The error a 200 answer carries (`"status": "fail"`, or `error_code` / `error_msg`)."""
    code, msg = error_fields(data)
    text = clip_message(f"API answered 200 with an error: {msg or 'status fail'}")
    if code in THROTTLE_CODES:
        return Throttled(text, status=status, error_code=code)
    return ApiError(text, status=status, error_code=code)


def error_from_response(resp: ApiResponse) -> CodeArtsError:
    """Map a non-200 answer to the error tree, reading the CodeArts/APIGW/IAM error body."""
    code_s, text = response_error(resp)
    s = resp.status
    if s == 401:
        return AuthenticationError(text, status=s, error_code=code_s)
    if s == 403:
        return Forbidden(text, status=s, error_code=code_s)
    if s == 404:
        return NotFound(text, status=s, error_code=code_s)
    if s == 429 or code_s in THROTTLE_CODES:
        return Throttled(
            text, status=s, error_code=code_s, retry_after=retry_after_seconds(resp.headers)
        )
    if s >= 500:
        return ServerError(text, status=s, error_code=code_s)
    return ApiError(text, status=s, error_code=code_s)


__all__ = [
    "AuthObserver",
    "CodeArtsClient",
    "RequestGate",
    "RequestObserver",
    "error_from_response",
]
