"""The served openapi.json states the rules the admin API enforces, from their one home.

Every rule is read from the document a client downloads and checked two ways: it equals
the rule in monitor.domain, and a request breaking it (or sitting exactly at it) gets the
answer the document promises.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # via schemathesis
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.domain.ids import JOB_ID_RE, RECORD_ID_RE
from monitor.domain.labels import (
    LABEL_NAME_RE,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    RESERVED_LABELS,
    RESERVED_PREFIX,
)
from tests.support.loopback import SimServer, make_settings, running

ADMIN = "openapi-admin-token-Mf7qP2zL9w"
RECORDS = "/api/v1/records"
GOOD_ID = "0f4c8a2e-5b7d-4e19-9a3c-6d2b1e8f7a50"


async def request(
    port: int, method: str, path: str, body: Any = None, token: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers
        ) as resp,
    ):
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw else None


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["components"]["schemas"])


def list_param(doc: dict[str, Any], name: str) -> dict[str, Any]:
    params = doc["paths"][RECORDS]["get"]["parameters"]
    return dict(next(p for p in params if p["name"] == name)["schema"])


async def test_the_document_states_the_domain_rules(sim: SimServer) -> None:
    async with running(Daemon(make_settings(sim.url, admin_token=SecretStr(ADMIN)))) as d:
        status, doc = await request(d.port or 0, "GET", "/api/v1/openapi.json", token=None)
    assert status == 200
    s = schemas(doc)
    by_id, by_build = s["RecordById"], s["RecordByBuild"]
    path_param = doc["paths"][RECORDS + "/{record_id}"]["get"]["parameters"][0]["schema"]
    for record_id in (by_id["properties"]["record_id"], list_param(doc, "cursor"), path_param):
        assert record_id["pattern"] == RECORD_ID_RE.pattern
    assert by_build["properties"]["job_id"]["pattern"] == JOB_ID_RE.pattern
    build_number = by_build["properties"]["build_number"]
    assert (build_number["type"], build_number["minimum"]) == ("integer", 1)
    assert build_number["maximum"] == 2_147_483_647
    limit = list_param(doc, "limit")
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 1000)
    for model in (by_id, by_build):
        assert model["additionalProperties"] is False
        labels = model["properties"]["labels"]
        assert labels["maxProperties"] == MAX_LABELS
        assert labels["additionalProperties"]["maxLength"] == MAX_LABEL_VALUE
        assert labels["propertyNames"]["pattern"] == LABEL_NAME_RE.pattern
        reserved = labels["propertyNames"]["not"]["anyOf"]
        assert reserved == [{"enum": sorted(RESERVED_LABELS)}, {"pattern": f"^{RESERVED_PREFIX}"}]
    assert {r["$ref"] for r in s["RecordRequest"]["anyOf"]} == {
        "#/components/schemas/RecordById",
        "#/components/schemas/RecordByBuild",
    }


async def test_requests_breaking_a_documented_rule_get_the_json_error(sim: SimServer) -> None:
    async with running(Daemon(make_settings(sim.url, admin_token=SecretStr(ADMIN)))) as d:
        port = d.port or 0
        _, doc = await request(port, "GET", "/api/v1/openapi.json", token=None)
        labels = schemas(doc)["RecordById"]["properties"]["labels"]
        most, longest = labels["maxProperties"], labels["additionalProperties"]["maxLength"]
        wrong_id = GOOD_ID.upper()
        assert RECORD_ID_RE.fullmatch(wrong_id) is None

        status, err = await request(port, "POST", RECORDS, {"record_id": wrong_id})
        assert (status, err["error"]) == (422, "invalid_record")
        assert f"record_id {wrong_id!r} is not a record id" in err["message"]
        assert err["problems"] == [err["message"]]
        status, err = await request(port, "GET", f"{RECORDS}/{wrong_id}", token=None)
        assert (status, err["error"]) == (400, "invalid_record_id")
        status, err = await request(port, "GET", f"{RECORDS}?cursor={wrong_id}", token=None)
        assert (status, err["error"]) == (400, "invalid_query")
        maximum = list_param(doc, "limit")["maximum"]
        status, err = await request(port, "GET", f"{RECORDS}?limit={maximum + 1}", token=None)
        assert (status, err["error"]) == (400, "invalid_query")
        status, page = await request(port, "GET", f"{RECORDS}?limit={maximum}", token=None)
        assert (status, page["total"]) == (200, 0)

        too_many = {f"l{i}": "v" for i in range(most + 1)}
        too_long = {"team": "v" * (longest + 1)}
        for bad, expected in (
            (too_many, f"at most {most} labels"),
            (too_long, f"longer than {longest} characters"),
            *(
                ({name: "v"}, "is reserved")
                for name in labels["propertyNames"]["not"]["anyOf"][0]["enum"]
            ),
        ):
            status, err = await request(
                port, "POST", RECORDS, {"record_id": GOOD_ID, "labels": bad}
            )
            assert (status, err["error"]) == (422, "invalid_record"), bad
            assert expected in err["message"]
        assert d.watchlist.records == {}
        at_limits = {f"l{i}": "v" * longest for i in range(most)}
        status, rec = await request(
            port, "POST", RECORDS, {"record_id": GOOD_ID, "labels": at_limits}
        )
        assert (status, rec["labels"]) == (201, at_limits)


BODIES: list[Any] = [
    {"record_id": GOOD_ID},
    {"record_id": GOOD_ID, "labels": {"team": "a", "_x": "b"}},
    {"record_id": GOOD_ID[:-1]},
    {"record_id": GOOD_ID, "labels": {"Team-1": "a"}},
    {"record_id": GOOD_ID, "labels": {"__x": "a"}},
    {"record_id": GOOD_ID, "labels": {"le": "a"}},
    {"record_id": GOOD_ID, "labels": {"t": 1}},
    {"record_id": GOOD_ID, "job_id": "a" * 32},
    {"record_id": GOOD_ID, "unknown": True},
    {"job_id": "a" * 32},
    {"job_id": "a" * 31, "build_number": 1},
    {"job_id": "a" * 32, "build_number": 0},
    {"job_id": "a" * 32, "build_number": "1"},
    {"labels": {}},
    [],
]


@pytest.mark.parametrize("body", BODIES, ids=[json.dumps(b)[:60] for b in BODIES])
async def test_the_document_accepts_exactly_what_the_api_accepts(sim: SimServer, body: Any) -> None:
    async with running(Daemon(make_settings(sim.url, admin_token=SecretStr(ADMIN)))) as d:
        _, doc = await request(d.port or 0, "GET", "/api/v1/openapi.json", token=None)
        status, _ = await request(d.port or 0, "POST", RECORDS, body)
    validator = Draft202012Validator({**doc, "$ref": "#/components/schemas/RecordRequest"})
    if not validator.is_valid(body):
        assert status == 422
    elif "record_id" in body:
        assert status == 201
    else:  # looked up by job and build: the simulator knows no such job
        assert status == 404


async def test_a_build_lookup_without_a_running_client_is_a_503_that_says_so(
    sim: SimServer,
) -> None:
    daemon = Daemon(make_settings(sim.url, admin_token=SecretStr(ADMIN)))
    async with TestServer(daemon.app, host="127.0.0.1") as server:  # run() never started
        assert server.port is not None
        status, err = await request(
            server.port, "POST", RECORDS, {"job_id": "a" * 32, "build_number": 1}
        )
    assert (status, err["error"]) == (503, "not_ready")
    assert "not connected to CodeArts Build" in err["message"]
    assert "client is not running" in err["message"]
    assert daemon.watchlist.records == {}
