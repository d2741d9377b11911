"""The simulator's IAM and gateway answer as the reference says, to a plain HTTP client."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from monitor.codearts.auth.signer import sdk_date, sign
from tests.support.loopback import SimServer

DOMAIN, USER, PASSWORD = "acme", "monitor-bot", "pw-Sx9!kQ2#zL7vB4"
AK, SK = "AKSIMEXAMPLE00000001", "SKsim0example0secret0key0value0000000001"


def token_body(password: str, scope: dict[str, Any]) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": USER, "password": password, "domain": {"name": DOMAIN}}
                },
            },
            "scope": scope,
        }
    }


@pytest.fixture
def gw(sim: SimServer) -> SimServer:
    sim.sim.iam_users[(DOMAIN, USER)] = PASSWORD
    sim.sim.aksk[AK] = SK
    return sim


async def test_iam_issues_a_project_token_that_opens_the_api(gw: SimServer) -> None:
    rid = gw.sim.new_build().record_id
    async with aiohttp.ClientSession() as s:
        body = token_body(PASSWORD, {"project": {"name": "cn-north-4"}})
        async with s.post(f"{gw.url}/v3/auth/tokens", json=body) as resp:
            assert resp.status == 201
            token = resp.headers["X-Subject-Token"]
            data = await resp.json()
        assert data["token"]["project"]["name"] == "cn-north-4"
        assert data["token"]["expires_at"].endswith("Z")
        assert data["token"]["issued_at"] < data["token"]["expires_at"]
        url = f"{gw.url}/v1/record/{rid}/full-stages"
        async with s.get(url, headers={"X-Auth-Token": token}) as resp:
            assert resp.status == 200
        async with s.post(f"{gw.url}/_sim/expire-tokens") as resp:  # for out-of-process tests
            assert await resp.json() == {"expired": 1}
        async with s.get(url, headers={"X-Auth-Token": token}) as resp:
            assert resp.status == 401
            err = await resp.json()
    assert err["error_code"] == "APIGW.0301"
    assert "token expires or invalid" in err["error_msg"]


async def test_iam_refuses_a_wrong_password_with_a_keystone_error(gw: SimServer) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{gw.url}/v3/auth/tokens", json=token_body("nope", {"project": {"name": "x"}})
        ) as resp,
    ):
        assert resp.status == 401
        assert "X-Subject-Token" not in resp.headers
        assert await resp.json() == {
            "error": {
                "code": 401,
                "message": "The username or password is wrong.",
                "title": "Unauthorized",
            }
        }


async def test_global_tokens_do_not_open_the_api(gw: SimServer) -> None:
    rid = gw.sim.new_build().record_id
    async with aiohttp.ClientSession() as s:
        body = token_body(PASSWORD, {"domain": {"name": DOMAIN}})
        async with s.post(f"{gw.url}/v3/auth/tokens", json=body) as resp:
            assert resp.status == 201
            token = resp.headers["X-Subject-Token"]
        url = f"{gw.url}/v1/record/{rid}/full-stages"
        async with s.get(url, headers={"X-Auth-Token": token}) as resp:
            assert resp.status == 401


def signed_headers(rid: str, host: str, when: float, sk: str = SK) -> dict[str, str]:
    headers = {"Host": host, "X-Sdk-Date": sdk_date(when)}
    sig = sign(
        method="GET",
        path=f"/v1/record/{rid}/full-stages",
        query=[],
        headers=headers,
        body=b"",
        ak=AK,
        sk=sk,
    )
    return {**headers, "Authorization": sig.authorization}


@pytest.mark.parametrize(
    ("offset", "sk", "status", "message"),
    [
        (0.0, SK, 200, None),
        (14 * 60.0, SK, 200, None),
        (-16 * 60.0, SK, 401, "x-sdk-date expired"),
        (16 * 60.0, SK, 401, "x-sdk-date expired"),
        (0.0, "another-secret-key-000000000000000000000", 401, "verify aksk signature fail"),
    ],
)
async def test_gateway_verifies_signatures_and_dates(
    gw: SimServer, offset: float, sk: str, status: int, message: str | None
) -> None:
    rid = gw.sim.new_build().record_id
    host = gw.url.removeprefix("http://")
    headers = signed_headers(rid, host, time.time() + offset, sk)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{gw.url}/v1/record/{rid}/full-stages", headers=headers) as resp,
    ):
        assert resp.status == status
        if message is not None:
            err = await resp.json()
            assert err["error_code"] == "APIGW.0301"
            assert message in err["error_msg"]


async def test_gateway_locks_an_ak_after_more_than_five_refusals(gw: SimServer) -> None:
    rid = gw.sim.new_build().record_id
    host = gw.url.removeprefix("http://")
    url = f"{gw.url}/v1/record/{rid}/full-stages"
    wrong = "another-secret-key-000000000000000000000"
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.get(url, headers=signed_headers(rid, host, time.time(), wrong)) as r:
                assert r.status == 401
        async with s.get(url, headers=signed_headers(rid, host, time.time())) as r:
            assert r.status == 200  # five in a row: not yet locked, and a success resets
        for _ in range(6):
            async with s.get(url, headers=signed_headers(rid, host, time.time(), wrong)) as r:
                assert r.status == 401
        async with s.get(url, headers=signed_headers(rid, host, time.time())) as r:
            assert r.status == 401
            assert "AK is locked" in (await r.json())["error_msg"]


async def test_gateway_refuses_a_tampered_signed_header(gw: SimServer) -> None:
    rid = gw.sim.new_build().record_id
    host = gw.url.removeprefix("http://")
    headers = signed_headers(rid, host, time.time())
    headers["X-Sdk-Date"] = sdk_date(time.time() - 60)  # still in the window, but not signed
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{gw.url}/v1/record/{rid}/full-stages", headers=headers) as resp,
    ):
        assert resp.status == 401


def test_header_name_case_does_not_change_the_signature() -> None:
    # The gateway looks headers up by the lower-case names in SignedHeaders.
    def signature(headers: dict[str, str]) -> str:
        return sign(
            method="GET",
            path="/v1/record/94baa8ec-fd3f-4cae-81af-b24385a7220f/full-stages",
            query=[("cascade", "true")],
            headers=headers,
            body=b"",
            ak="AKEXAMPLE000000000",
            sk="SKEXAMPLEsecretKEY0000000000000000000000",
        ).signature

    host = "cloudbuild-ext.cn-north-4.myhuaweicloud.com"
    lower = signature({"host": host, "x-sdk-date": "20250101T000000Z"})
    assert lower == signature({"Host": host, "X-Sdk-Date": "20250101T000000Z"})
    assert lower == "b7864702478907f657fdfc6f658f023f32ce756166bc8615a82f16934b7a530e"


def _job_routes(sim: SimServer) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every API route, as (path, query): full-stages and the three job routes."""
    job = sim.sim.add_job("auth")
    plan = sim.sim.new_build(job_id=job.job_id)
    return [
        (f"/v1/record/{plan.record_id}/full-stages", []),
        (f"/v1/job/{job.job_id}/info", []),
        (f"/v1/record/{job.build_project_id}/records", [("limit", "10"), ("page", "0")]),
        (f"/v1/record/{job.job_id}/{plan.build_number}/record-info", []),
    ]


def _signed(url: str, path: str, query: list[tuple[str, str]], sk: str) -> dict[str, str]:
    host = url.removeprefix("http://")
    headers = {"Host": host, "X-Sdk-Date": sdk_date(time.time())}
    sig = sign(method="GET", path=path, query=query, headers=headers, body=b"", ak=AK, sk=sk)
    return {**headers, "Authorization": sig.authorization}


async def test_every_route_refuses_in_the_words_of_the_scheme_refused(gw: SimServer) -> None:
    wrong_sk = "another-secret-key-000000000000000000000"
    async with aiohttp.ClientSession() as s:
        for path, query in _job_routes(gw):
            url = f"{gw.url}{path}" + (
                "?" + "&".join(f"{k}={v}" for k, v in query) if query else ""
            )
            async with s.get(url, headers=_signed(gw.url, path, query, SK)) as resp:
                assert resp.status == 200, path  # a good signature opens every route
            async with s.get(url, headers=_signed(gw.url, path, query, wrong_sk)) as resp:
                assert resp.status == 401, path
                err = await resp.json()
            assert err["error_code"] == "APIGW.0301"
            assert "verify aksk signature fail" in err["error_msg"], path
            assert "token" not in err["error_msg"], path
            async with s.get(url, headers={"X-Auth-Token": "not-a-token"}) as resp:
                assert resp.status == 401, path
                err = await resp.json()
            assert err["error_code"] == "APIGW.0301"
            assert "token expires or invalid" in err["error_msg"], path
            assert "aksk" not in err["error_msg"], path
