"""The three auth schemes against the simulator's IAM and gateway, one client at a time."""

from __future__ import annotations

import io
import json
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from monitor.codearts.auth import Auth, StaticTokenAuth
from monitor.codearts.auth.aksk import AkSkAuth
from monitor.codearts.auth.iam import IamPasswordAuth
from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import AuthFailed, NotFound, TransportError
from monitor.codearts.messages import ApiRequest, ApiResponse
from tests.support.loopback import TOKEN, FakeClock, SimServer, log_events

DOMAIN, USER, PASSWORD = "acme", "monitor-bot", "pw-Sx9!kQ2#zL7vB4"
AK, SK = "AKSIMEXAMPLE00000001", "SKsim0example0secret0key0value0000000001"


@pytest.fixture
def iam(sim: SimServer) -> SimServer:
    sim.sim.iam_users[(DOMAIN, USER)] = PASSWORD
    sim.sim.aksk[AK] = SK
    return sim


def password_auth(
    url: str, password: str = PASSWORD, clock: Callable[[], float] = time.monotonic
) -> IamPasswordAuth:
    return IamPasswordAuth(
        iam_url=url,
        username=USER,
        password=lambda: password,
        domain=DOMAIN,
        project_name="cn-north-4",
        clock=clock,
        retry_min=10.0,
    )


async def client_for(url: str, auth: Auth) -> CodeArtsClient:
    return CodeArtsClient(url, auth, timeout=2.0)


@pytest.fixture
def records(iam: SimServer) -> list[str]:
    return [p.record_id for p in iam.sim.populate(60)]


def statuses(sim: SimServer) -> list[int]:
    return [r.status for r in sim.sim.requests]


async def test_iam_token_is_fetched_once_and_reused(iam: SimServer, records: list[str]) -> None:
    auth = password_auth(iam.url)
    async with await client_for(iam.url, auth) as client:
        for record_id in records[:10]:
            snap = await client.full_stages(record_id)
            assert snap.record_id == record_id
    assert iam.sim.token_requests == 1
    assert iam.sim.token_scopes == [{"project": {"name": "cn-north-4"}}]
    assert 401 not in statuses(iam)


async def test_expired_token_concurrent_polls_share_one_refresh(
    iam: SimServer, records: list[str]
) -> None:
    auth = password_auth(iam.url)
    async with await client_for(iam.url, auth) as client:
        await client.full_stages(records[0])
        assert iam.sim.expire_tokens() == 1
        got: dict[str, str] = {}

        async def poll(record_id: str) -> None:
            got[record_id] = (await client.full_stages(record_id)).record_id

        async with anyio.create_task_group() as tg:
            for record_id in records:
                tg.start_soon(poll, record_id)
    assert got == {r: r for r in records}  # every poll succeeded, after one retry at most
    assert iam.sim.token_requests == 2  # the first token, and exactly one refresh
    refused = statuses(iam).count(401)
    assert 1 <= refused <= len(records)


async def test_token_is_refreshed_well_before_it_expires(
    iam: SimServer, records: list[str]
) -> None:
    clock = FakeClock(1000.0)
    iam.sim.token_lifetime = 8 * 3600.0
    auth = password_auth(iam.url, clock=clock)
    async with await client_for(iam.url, auth) as client:
        await client.full_stages(records[0])
        clock.advance(8 * 3600.0 - 2 * 3600.0)  # 2 h left: not yet
        await client.full_stages(records[0])
        assert iam.sim.token_requests == 1
        clock.advance(3600.0 + 1)  # under 1 h (a quarter of 8 h is more) left: refresh
        await client.full_stages(records[0])
        assert iam.sim.token_requests == 2
    assert 401 not in statuses(iam)  # refreshed ahead: the gateway never refused a token


async def test_wrong_password_is_refused_and_not_retried_at_once(
    iam: SimServer, records: list[str]
) -> None:
    clock = FakeClock(1000.0)
    wrong = "not-the-password-Q7w"
    auth = password_auth(iam.url, password=wrong, clock=clock)
    async with await client_for(iam.url, auth) as client:
        with pytest.raises(AuthFailed) as first:
            await client.full_stages(records[0])
        assert first.value.reason == "iam_rejected"
        assert "The username or password is wrong." in str(first.value)
        assert USER in str(first.value)
        assert wrong not in str(first.value)
        with pytest.raises(AuthFailed):
            await client.full_stages(records[1])
        assert iam.sim.token_requests == 1  # backing off: IAM locks users that keep failing
        clock.advance(11.0)
        with pytest.raises(AuthFailed):
            await client.full_stages(records[1])
        assert iam.sim.token_requests == 2


async def test_password_file_rotation_recovers(
    iam: SimServer, records: list[str], tmp_path: Path
) -> None:
    from monitor.files import FileSecret

    clock = FakeClock(1000.0)
    secret = tmp_path / "password"
    secret.write_text("wrong-password-1\n")
    auth = IamPasswordAuth(
        iam_url=iam.url,
        username=USER,
        password=FileSecret(secret),
        domain=DOMAIN,
        project_id="0123456789abcdef0123456789abcdef",
        clock=clock,
    )
    async with await client_for(iam.url, auth) as client:
        with pytest.raises(AuthFailed):
            await client.full_stages(records[0])
        secret.write_text(PASSWORD + "\n")
        clock.advance(301.0)
        assert (await client.full_stages(records[0])).record_id == records[0]
    assert iam.sim.token_scopes[-1] == {"project": {"id": "0123456789abcdef0123456789abcdef"}}


async def test_unreachable_iam_is_reported_and_backed_off(
    iam: SimServer, records: list[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = password_auth(f"http://127.0.0.1:{port}")
    async with await client_for(iam.url, auth) as client:
        with pytest.raises(TransportError):
            await client.full_stages(records[0])
        with pytest.raises(AuthFailed) as second:
            await client.full_stages(records[0])
    assert second.value.reason == "iam_unavailable"


async def test_static_token_refused_reports_token_rejected(
    iam: SimServer, records: list[str]
) -> None:
    async with await client_for(iam.url, StaticTokenAuth.from_value("stale-token-0000")) as c:
        with pytest.raises(AuthFailed) as exc:
            await c.full_stages(records[0])
    assert exc.value.reason == "token_rejected"
    assert exc.value.error_code == "APIGW.0301"
    async with await client_for(iam.url, StaticTokenAuth.from_value(TOKEN)) as c:
        assert (await c.full_stages(records[0])).record_id == records[0]


async def test_aksk_signed_requests_pass_the_gateway(iam: SimServer, records: list[str]) -> None:
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: SK, project_id="p" * 32)
    async with await client_for(iam.url, auth) as client:
        assert (await client.full_stages(records[0])).record_id == records[0]
        # Reserved and non-ASCII characters in path and query: the gateway recomputes the
        # same signature (404: authenticated, no such route), not 401.
        with pytest.raises(NotFound):
            await client.get_json(
                "/v1/récord/a b:c@d/中文", [("q", "x y&z"), ("a", "1"), ("a", "0")]
            )


async def test_aksk_wrong_sk_is_signature_rejected(iam: SimServer, records: list[str]) -> None:
    wrong = "SKwrong0secret0key0value00000000000000000"
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: wrong)
    async with await client_for(iam.url, auth) as client:
        with pytest.raises(AuthFailed) as exc:
            await client.full_stages(records[0])
    assert exc.value.reason == "signature_rejected"
    assert "verify aksk signature fail" in str(exc.value)
    assert wrong not in str(exc.value)


async def test_aksk_concurrent_requests_probe_a_doubtful_key_once(
    iam: SimServer, records: list[str]
) -> None:
    wrong = "SKwrong0secret0key0value00000000000000000"
    clock = FakeClock(1000.0)
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: wrong, monotonic=clock, retry_min=5.0)
    outcomes: list[str] = []

    async def poll(record_id: str) -> None:
        try:
            await client.full_stages(record_id)
            outcomes.append("ok")
        except AuthFailed as exc:
            outcomes.append(exc.reason)

    async with await client_for(iam.url, auth) as client:
        async with anyio.create_task_group() as tg:
            for record_id in records[:20]:
                tg.start_soon(poll, record_id)
        assert outcomes == ["signature_rejected"] * 20
        assert iam.sim.aksk_refusals[AK] == 1  # one probe reached the gateway, not 20
        clock.advance(5.1)  # after the backoff, one more probe
        await poll(records[0])
    assert iam.sim.aksk_refusals[AK] == 2


@pytest.mark.parametrize("offset", [-20 * 60.0, 20 * 60.0])
async def test_aksk_clock_skew_is_named(iam: SimServer, records: list[str], offset: float) -> None:
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: SK, clock=lambda: time.time() + offset)
    async with await client_for(iam.url, auth) as client:
        with pytest.raises(AuthFailed) as exc:
            await client.full_stages(records[0])
    assert exc.value.reason == "clock_skew"
    shown = re.search(r"clock is ([+-]\d+) s off", str(exc.value))
    assert shown is not None
    assert abs(float(shown.group(1)) - offset) <= 2  # the Date header has 1 s resolution


async def test_aksk_small_skew_is_accepted(iam: SimServer, records: list[str]) -> None:
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: SK, clock=lambda: time.time() - 10 * 60.0)
    async with await client_for(iam.url, auth) as client:
        assert (await client.full_stages(records[0])).record_id == records[0]


async def test_aksk_flow_adds_date_host_and_project_headers() -> None:
    auth = AkSkAuth(ak=lambda: AK, sk=lambda: SK, project_id="proj-1", clock=lambda: 1_735_689_600)
    flow = auth.auth_flow(ApiRequest("GET", "https://cloudbuild-ext.example.com:8443", "/v1/x"))
    sent = await flow.__anext__()
    await flow.aclose()
    assert sent.headers["X-Sdk-Date"] == "20250101T000000Z"
    assert sent.headers["Host"] == "cloudbuild-ext.example.com:8443"
    assert sent.headers["X-Project-Id"] == "proj-1"
    assert sent.headers["Authorization"].startswith(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-project-id;x-sdk-date, Signature="
    )


def token_answer(token: str, lifetime: float) -> ApiResponse:
    body = {
        "token": {
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "expires_at": datetime.fromtimestamp(
                datetime(2026, 1, 1, tzinfo=UTC).timestamp() + lifetime, UTC
            ).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    }
    return ApiResponse(201, {"x-subject-token": token}, json.dumps(body).encode())


async def test_polls_use_the_old_token_while_a_refresh_is_in_flight() -> None:
    clock = FakeClock(1000.0)
    auth = password_auth("http://iam.invalid", clock=clock)
    request = ApiRequest("GET", "http://api.invalid", "/v1/record/x/full-stages")
    first = auth.auth_flow(request)
    assert (await first.__anext__()).path == "/v3/auth/tokens"
    sent = await first.asend(token_answer("TOKEN-1-abcdef", 8 * 3600.0))
    assert sent.headers["X-Auth-Token"] == "TOKEN-1-abcdef"
    with pytest.raises(StopAsyncIteration):
        await first.asend(ApiResponse(200, {}, b"{}"))

    clock.advance(7.5 * 3600.0)  # inside the refresh window, not expired
    refresher = auth.auth_flow(request)
    assert (await refresher.__anext__()).path == "/v3/auth/tokens"  # IAM is slow to answer
    other = auth.auth_flow(request)
    with anyio.fail_after(1):
        assert (await other.__anext__()).headers["X-Auth-Token"] == "TOKEN-1-abcdef"
    sent = await refresher.asend(token_answer("TOKEN-2-ghijkl", 8 * 3600.0))
    assert sent.headers["X-Auth-Token"] == "TOKEN-2-ghijkl"
    for flow in (refresher, other):
        with pytest.raises(StopAsyncIteration):
            await flow.asend(ApiResponse(200, {}, b"{}"))
    assert auth.tokens_fetched == 2


async def test_failed_early_refresh_keeps_the_old_token(log_stream: io.StringIO) -> None:
    clock = FakeClock(1000.0)
    auth = password_auth("http://iam.invalid", clock=clock)
    request = ApiRequest("GET", "http://api.invalid", "/v1/record/x/full-stages")
    flow = auth.auth_flow(request)
    await flow.__anext__()
    await flow.asend(token_answer("TOKEN-1-abcdef", 8 * 3600.0))
    with pytest.raises(StopAsyncIteration):
        await flow.asend(ApiResponse(200, {}, b"{}"))

    clock.advance(7.5 * 3600.0)
    flow = auth.auth_flow(request)
    assert (await flow.__anext__()).path == "/v3/auth/tokens"
    busy = ApiResponse(503, {}, b'{"error": {"code": 503, "message": "busy", "title": "x"}}')
    sent = await flow.asend(busy)
    assert sent.headers["X-Auth-Token"] == "TOKEN-1-abcdef"  # the poll is not lost
    with pytest.raises(StopAsyncIteration):
        await flow.asend(ApiResponse(200, {}, b"{}"))
    (warning,) = log_events(log_stream, "iam_token_refresh_failed")
    assert warning["reason"] == "iam_unavailable"
    assert 0 < warning["expires_in_seconds"] <= 1800
    # Backing off: the next poll does not ask IAM again, it uses the old token.
    flow = auth.auth_flow(request)
    assert (await flow.__anext__()).headers["X-Auth-Token"] == "TOKEN-1-abcdef"
    await flow.aclose()
