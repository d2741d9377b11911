"""The admin HTTP API: what a client sees on /api/v1, talking to a real daemon on loopback."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.cli import main as cli_main
from monitor.domain import RecordState
from monitor.logging import get_logger
from monitor.settings import ConfigError, load_settings
from tests.support.loopback import SimServer, log_events, make_settings, running, scrape, wait_until
from tests.support.samples import series, value

ADMIN = "admin-token-Hq3mV8pL2xR7sK4n"
RECORDS = "/api/v1/records"


async def call(
    daemon: Daemon,
    method: str,
    path: str,
    *,
    body: Any = None,
    data: bytes | str | None = None,
    token: str | None = ADMIN,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; returns status, headers and the JSON body (None when there is none)."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"http://127.0.0.1:{daemon.port}{path}", data=data, headers=hdrs
        ) as resp,
    ):
        raw = await resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None


def admin_daemon(sim: SimServer, **overrides: Any) -> Daemon:
    overrides.setdefault("admin_token", SecretStr(ADMIN))
    return Daemon(make_settings(sim.url, **overrides))


async def test_openapi_document_describes_every_endpoint(sim: SimServer) -> None:
    async with running(admin_daemon(sim, admin_read_protected=True)) as d:
        status, headers, doc = await call(d, "GET", "/api/v1/openapi.json", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert doc["openapi"] == "3.1.0"
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert ops == {
        ("/api/v1/records", "get"),
        ("/api/v1/records", "post"),
        ("/api/v1/records/{record_id}", "get"),
        ("/api/v1/records/{record_id}", "delete"),
        ("/api/v1/openapi.json", "get"),
    }


async def test_add_read_list_and_delete_a_record(sim: SimServer, log_stream: io.StringIO) -> None:
    plan = sim.sim.new_build(started_ago=60)
    async with running(admin_daemon(sim)) as d:
        status, headers, rec = await call(
            d, "POST", RECORDS, body={"record_id": plan.record_id, "labels": {"team": "payments"}}
        )
        assert status == 201
        assert headers["Location"] == f"{RECORDS}/{plan.record_id}"
        assert rec["record_id"] == plan.record_id
        assert rec["state"] == "active"
        assert rec["source"] == "api"
        assert rec["labels"] == {"team": "payments"}

        await wait_until(d, lambda: d.watchlist.records[plan.record_id].snapshot is not None)
        status, _, detail = await call(d, "GET", f"{RECORDS}/{plan.record_id}", token=None)
        assert status == 200
        truth = sim.sim.answered[plan.record_id]["result"]["build_stages"]
        assert [s["build_stage"] for s in detail["stages"]] == sorted(
            truth, key=lambda k: truth[k]["sequence"]
        )
        for stage in detail["stages"]:
            assert stage["status"] == truth[stage["build_stage"]]["status"]
            assert stage["display_name"] == truth[stage["build_stage"]]["display_name"]
        assert detail["stage_summary"]["total"] == len(truth)
        assert sum(detail["stage_summary"]["by_status"].values()) == len(truth)

        status, _, page = await call(d, "GET", RECORDS, token=None)
        assert status == 200
        assert page["total"] == 1
        assert page["next_cursor"] is None
        assert [r["record_id"] for r in page["records"]] == [plan.record_id]
        assert page["records"][0]["labels"] == {"team": "payments"}

        # The record's label is on its series.
        samples = await scrape(d)
        complete = series(samples, "codearts_build_record_complete", record_id=plan.record_id)
        assert [dict(k)["team"] for k in complete] == ["payments"]

        status, _, body = await call(d, "DELETE", f"{RECORDS}/{plan.record_id}")
        assert (status, body) == (204, None)
        status, _, err = await call(d, "GET", f"{RECORDS}/{plan.record_id}", token=None)
        assert status == 404
        assert err["error"] == "not_found"
        assert plan.record_id in err["message"]
        status, _, err = await call(d, "DELETE", f"{RECORDS}/{plan.record_id}")
        assert status == 404
        samples = await scrape(d)
        assert not series(samples, "codearts_build_record_complete", record_id=plan.record_id)
    added = log_events(log_stream, "record_added")
    assert [(e["record_id"], e["source"], e["labels"]) for e in added] == [
        (plan.record_id, "api", {"team": "payments"})
    ]
    assert [e["record_id"] for e in log_events(log_stream, "record_removed")] == [plan.record_id]


async def test_post_is_idempotent(sim: SimServer, log_stream: io.StringIO) -> None:
    plan = sim.sim.new_build()
    body = {"record_id": plan.record_id, "labels": {"team": "a"}}
    async with running(admin_daemon(sim)) as d:
        first = await call(d, "POST", RECORDS, body=body)
        second = await call(d, "POST", RECORDS, body=body)
        assert (first[0], second[0]) == (201, 200)
        assert first[2]["labels"] == second[2]["labels"] == {"team": "a"}
        # Labels omitted leave them; labels given replace them.
        status, _, rec = await call(d, "POST", RECORDS, body={"record_id": plan.record_id})
        assert (status, rec["labels"]) == (200, {"team": "a"})
        status, _, rec = await call(
            d, "POST", RECORDS, body={"record_id": plan.record_id, "labels": {"team": "b"}}
        )
        assert (status, rec["labels"]) == (200, {"team": "b"})
        samples = await scrape(d)
        assert value(samples, "stage_monitor_records", state="active") == 1
    assert len(log_events(log_stream, "record_added")) == 1


async def test_concurrent_posts_of_one_id_create_one_record(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build()
    async with running(admin_daemon(sim)) as d:
        results = await asyncio.gather(
            *(
                call(d, "POST", RECORDS, body={"record_id": plan.record_id, "labels": {"n": "1"}})
                for _ in range(25)
            )
        )
        statuses = sorted(r[0] for r in results)
        assert statuses == [200] * 24 + [201]
        assert list(d.watchlist.records) == [plan.record_id]
        samples = await scrape(d)
        assert value(samples, "stage_monitor_records", state="active") == 1
    assert len(log_events(log_stream, "record_added")) == 1


async def test_changes_are_disabled_without_an_admin_token(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build()
    async with running(Daemon(make_settings(sim.url, records=[plan.record_id]))) as d:
        status, _, err = await call(d, "POST", RECORDS, body={"record_id": "a" * 36}, token=None)
        assert status == 403
        assert err["error"] == "admin_disabled"
        assert "MONITOR_ADMIN_TOKEN" in err["message"]
        assert "Authorization: Bearer" in err["message"]
        status, _, err = await call(d, "DELETE", f"{RECORDS}/{plan.record_id}", token="anything")
        assert (status, err["error"]) == (403, "admin_disabled")
        assert list(d.watchlist.records) == [plan.record_id]
        status, _, page = await call(d, "GET", RECORDS, token=None)  # reads stay open
        assert status == 200
        assert page["total"] == 1
    refused = log_events(log_stream, "admin_request_refused")
    assert [e["reason"] for e in refused] == ["admin token not configured"] * 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Bearer not-the-admin-token-at-all"}, "not the admin token"),
        ({"Authorization": f"Bearer {ADMIN}x"}, "not the admin token"),
        ({"Authorization": f"Basic {ADMIN}"}, "Authorization: Bearer"),
        ({"Authorization": "Bearer "}, "Authorization: Bearer"),
    ],
)
async def test_changes_are_refused_without_the_right_token(
    sim: SimServer, log_stream: io.StringIO, headers: dict[str, str], message: str
) -> None:
    plan = sim.sim.new_build()
    async with running(admin_daemon(sim, records=[plan.record_id])) as d:
        status, hdrs, err = await call(
            d, "POST", RECORDS, body={"record_id": "b" * 36}, token=None, headers=headers
        )
        assert status == 401
        assert hdrs["WWW-Authenticate"].startswith("Bearer")
        assert err["error"] == "unauthorized"
        assert message in err["message"]
        status, _, _ = await call(
            d, "DELETE", f"{RECORDS}/{plan.record_id}", token=None, headers=headers
        )
        assert status == 401
        assert list(d.watchlist.records) == [plan.record_id]
    assert ADMIN not in log_stream.getvalue()


async def test_reads_can_be_protected(sim: SimServer) -> None:
    plan = sim.sim.new_build()
    async with running(admin_daemon(sim, records=[plan.record_id], admin_read_protected=True)) as d:
        for path in (RECORDS, f"{RECORDS}/{plan.record_id}"):
            status, _, err = await call(d, "GET", path, token=None)
            assert (status, err["error"]) == (401, "unauthorized")
            status, _, _ = await call(d, "GET", path, token="wrong-token-wrong-token")
            assert status == 401
            status, _, _ = await call(d, "GET", path)
            assert status == 200
        status, _, _ = await call(d, "GET", "/api/v1/openapi.json", token=None)
        assert status == 200


GOOD_ID = "0f4c8a2e-5b7d-4e19-9a3c-6d2b1e8f7a50"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "body is empty"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (b"[" * 60_000, 400, "nested too deeply"),
        ([GOOD_ID], 422, "must be a JSON object"),
        ({}, 422, "record_id is required"),
        ({"record_id": 42}, 422, "record_id must be a string"),
        ({"record_id": "short"}, 422, "exactly 36 characters"),
        ({"record_id": GOOD_ID.upper()}, 422, "lowercase letters"),
        ({"record_id": GOOD_ID + "0"}, 422, "got 37 characters"),
        ({"record_id": GOOD_ID, "label": {}}, 422, "unknown field 'label'"),
        ({"record_id": GOOD_ID, "labels": ["team"]}, 422, "labels must be an object"),
        (
            {"record_id": GOOD_ID, "labels": {f"l{i}": "v" for i in range(9)}},
            422,
            "at most 8 labels, got 9",
        ),
        ({"record_id": GOOD_ID, "labels": {"1team": "x"}}, 422, "not a valid Prometheus label"),
        ({"record_id": GOOD_ID, "labels": {"team-a": "x"}}, 422, "not a valid Prometheus label"),
        ({"record_id": GOOD_ID, "labels": {"__name": "x"}}, 422, "not a valid Prometheus label"),
        ({"record_id": GOOD_ID, "labels": {"job": "x"}}, 422, "'job' is reserved"),
        ({"record_id": GOOD_ID, "labels": {"instance": "x"}}, 422, "'instance' is reserved"),
        ({"record_id": GOOD_ID, "labels": {"record_id": "x"}}, 422, "'record_id' is reserved"),
        ({"record_id": GOOD_ID, "labels": {"build_stage": "x"}}, 422, "is reserved"),
        ({"record_id": GOOD_ID, "labels": {"status": "x"}}, 422, "'status' is reserved"),
        ({"record_id": GOOD_ID, "labels": {"t": "x" * 129}}, 422, "longer than 128"),
        ({"record_id": GOOD_ID, "labels": {"t": 5}}, 422, "value must be a string"),
    ],
)
async def test_each_validation_rule_is_explained_and_nothing_is_applied(
    sim: SimServer, body: Any, status: int, expected: str
) -> None:
    async with running(admin_daemon(sim)) as d:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        got, hdrs, err = await call(
            d, "POST", RECORDS, data=raw, headers={"Content-Type": "application/json"}
        )
        assert got == status, err
        assert hdrs["Content-Type"].startswith("application/json")
        assert expected in err["message"], err
        assert d.watchlist.records == {}


async def test_every_problem_is_listed_at_once(sim: SimServer) -> None:
    async with running(admin_daemon(sim)) as d:
        status, _, err = await call(
            d,
            "POST",
            RECORDS,
            body={"record_id": "x", "labels": {"job": "a", "ok": "y" * 200}, "extra": 1},
        )
    assert status == 422
    assert err["error"] == "invalid_record"
    assert len(err["problems"]) == 4
    assert "; ".join(err["problems"]) == err["message"]


async def test_labels_at_the_limits_are_accepted(sim: SimServer) -> None:
    labels = {f"l{i}": "v" * 128 for i in range(8)}
    async with running(admin_daemon(sim)) as d:
        status, _, rec = await call(
            d, "POST", RECORDS, body={"record_id": GOOD_ID, "labels": labels}
        )
    assert status == 201
    assert rec["labels"] == labels


async def test_body_limit_and_content_type(sim: SimServer) -> None:
    padding = "x" * (64 * 1024)
    async with running(admin_daemon(sim)) as d:
        status, _, err = await call(
            d, "POST", RECORDS, body={"record_id": GOOD_ID, "labels": {"t": padding}}
        )
        assert (status, err["error"]) == (413, "body_too_large")
        assert "64 KiB" in err["message"]

        async def chunks() -> Any:  # no Content-Length: the limit still holds
            yield b'{"record_id": "' + GOOD_ID.encode() + b'", "labels": {"t": "'
            for _ in range(70):
                yield b"x" * 1024
            yield b'"}}'

        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{d.port}{RECORDS}",
                data=chunks(),
                headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
            ) as resp,
        ):
            assert resp.status == 413
        status, _, err = await call(
            d,
            "POST",
            RECORDS,
            data=f"record_id={GOOD_ID}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (status, err["error"]) == (415, "unsupported_media_type")
        assert "Content-Type: application/json" in err["message"]
        assert d.watchlist.records == {}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=many", "limit must be a whole number"),
        ("limit=1001", "limit must be"),
        ("cursor=zzz", "cursor 'zzz' is not a record id"),
        ("state=running", "state 'running' is not one of active, complete"),
    ],
)
async def test_list_query_problems(sim: SimServer, query: str, expected: str) -> None:
    async with running(admin_daemon(sim)) as d:
        status, _, err = await call(d, "GET", f"{RECORDS}?{query}", token=None)
    assert status == 400
    assert err["error"] == "invalid_query"
    assert expected in err["message"]


async def test_path_ids_and_unknown_routes(sim: SimServer) -> None:
    async with running(admin_daemon(sim)) as d:
        status, _, err = await call(d, "GET", f"{RECORDS}/Not-An-Id", token=None)
        assert (status, err["error"]) == (400, "invalid_record_id")
        assert "36 characters" in err["message"]
        status, _, err = await call(d, "DELETE", f"{RECORDS}/Not-An-Id")
        assert status == 400
        status, _, err = await call(d, "GET", f"{RECORDS}/{GOOD_ID}", token=None)
        assert status == 404
        status, _, err = await call(d, "GET", "/api/v1/nothing", token=None)
        assert status == 404
        assert "no such endpoint" in err["message"]
        status, hdrs, err = await call(d, "PUT", RECORDS, body={})
        assert status == 405
        assert "POST" in hdrs["Allow"]
        assert "not allowed" in err["message"]


async def test_list_pages_through_every_record(sim: SimServer) -> None:
    plans = [sim.sim.new_build() for _ in range(7)]
    async with running(admin_daemon(sim, records=[p.record_id for p in plans])) as d:
        d.watchlist.records[plans[0].record_id].state = RecordState.EXPIRED
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            status, _, page = await call(d, "GET", RECORDS + query, token=None)
            assert status == 200
            assert page["total"] == 7
            seen += [r["record_id"] for r in page["records"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert seen == sorted(p.record_id for p in plans)
        status, _, page = await call(d, "GET", f"{RECORDS}?state=expired", token=None)
        assert [r["record_id"] for r in page["records"]] == [plans[0].record_id]
        assert page["total"] == 1


async def test_records_added_through_the_api_survive_a_restart(
    sim: SimServer, tmp_path: Path
) -> None:
    """Two daemon processes' worth of Daemon objects on one SQLite state file."""
    state = tmp_path / "monitor.db"
    keep, drop = sim.sim.new_build(), sim.sim.new_build()
    async with running(_with_state(sim, state)) as d:
        for plan in (keep, drop):
            status, _, _ = await call(
                d, "POST", RECORDS, body={"record_id": plan.record_id, "labels": {"team": "x"}}
            )
            assert status == 201
        status, _, _ = await call(d, "DELETE", f"{RECORDS}/{drop.record_id}")
        assert status == 204
    sim.sim.clock.advance(100_000)  # the build finishes while no daemon runs
    async with running(_with_state(sim, state)) as d:
        status, _, page = await call(d, "GET", RECORDS, token=None)
        assert [(r["record_id"], r["source"], r["labels"]) for r in page["records"]] == [
            (keep.record_id, "api", {"team": "x"})
        ]
        await wait_until(d, lambda: d.watchlist.records[keep.record_id].state.finished)
        assert d.watchlist.records[keep.record_id].state is RecordState.COMPLETE
        samples = await scrape(d)
        complete = "codearts_build_record_complete"
        assert value(samples, complete, record_id=keep.record_id, team="x") == 1


def _with_state(sim: SimServer, state: Path) -> Daemon:
    return Daemon(make_settings(sim.url, admin_token=SecretStr(ADMIN), state_path=str(state)))


async def test_the_admin_token_is_a_secret(
    sim: SimServer, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    async with running(admin_daemon(sim)) as d:
        await call(d, "POST", RECORDS, body={"record_id": GOOD_ID})
        get_logger("test").info("oops", detail=f"token is {ADMIN}")
    assert ADMIN not in log_stream.getvalue()
    assert log_events(log_stream, "oops")[0]["detail"] == "token is ***"

    monkeypatch.setenv("MONITOR_AUTH_TOKEN", "api-token-value-123456")
    monkeypatch.setenv("MONITOR_ADMIN_TOKEN", ADMIN)
    assert cli_main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert ADMIN not in out
    assert json.loads(out)["admin_token"] == "********"
    monkeypatch.setenv("MONITOR_ADMIN_TOKEN", "short")
    assert cli_main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "MONITOR_ADMIN_TOKEN must be at least 16 characters" in err
    assert "short" not in err.replace("MONITOR_ADMIN_TOKEN must be at least", "")
    monkeypatch.delenv("MONITOR_ADMIN_TOKEN")
    monkeypatch.setenv("MONITOR_ADMIN_READ_PROTECTED", "true")
    assert cli_main(["check-config"]) == 2
    assert "MONITOR_ADMIN_READ_PROTECTED=true needs MONITOR_ADMIN_TOKEN" in capsys.readouterr().err


async def test_a_build_registers_itself_by_job_id_and_build_number(sim: SimServer) -> None:
    job = sim.sim.add_job("payments-api")
    sim.sim.new_build(job_id=job.job_id, started_ago=9_000)
    plan = sim.sim.new_build(job_id=job.job_id)
    assert plan.build_number == 2
    body = {
        "job_id": job.job_id,
        "build_number": 2,
        "labels": {"job_id": job.job_id, "job_name": "payments-api"},
    }
    async with running(admin_daemon(sim)) as d:
        status, headers, rec = await call(d, "POST", RECORDS, body=body)
        assert status == 201
        assert rec["record_id"] == plan.record_id
        assert headers["Location"] == f"{RECORDS}/{plan.record_id}"
        assert rec["labels"] == body["labels"]
        status, _, rec = await call(d, "POST", RECORDS, body=body)
        assert (status, rec["record_id"]) == (200, plan.record_id)
        await wait_until(d, lambda: d.watchlist.records[plan.record_id].snapshot is not None)

        status, _, err = await call(d, "POST", RECORDS, body={**body, "build_number": 3})
        assert (status, err["error"]) == (404, "unknown_build")
        assert f"no build 3 of job {job.job_id}" in err["message"]
        assert list(d.watchlist.records) == [plan.record_id]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"record_id": GOOD_ID, "job_id": "a" * 32, "build_number": 1},
            "either record_id, or job_id and build_number, not both",
        ),
        ({"job_id": "a" * 32}, "build_number is required with job_id"),
        ({"build_number": 4}, "job_id is required with build_number"),
        ({"job_id": "A" * 32, "build_number": 4}, "exactly 32 characters of digits"),
        ({"job_id": "a" * 32, "build_number": "4"}, "without quotes"),
        ({"job_id": "a" * 32, "build_number": 0}, "from 1 to 2147483647"),
        ({"job_id": "a" * 32, "build_number": True}, "whole number"),
    ],
)
async def test_job_and_build_number_rules(sim: SimServer, body: Any, expected: str) -> None:
    async with running(admin_daemon(sim)) as d:
        status, _, err = await call(d, "POST", RECORDS, body=body)
        assert status == 422
        assert expected in err["message"]
        assert d.watchlist.records == {}


async def test_a_failing_lookup_is_a_bad_gateway_without_secrets(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    job = sim.sim.add_job()
    sim.sim.new_build(job_id=job.job_id)
    d = Daemon(
        make_settings(
            sim.url, auth_token=SecretStr("not-the-sim-token-12345"), admin_token=SecretStr(ADMIN)
        )
    )
    async with running(d):
        status, _, err = await call(
            d, "POST", RECORDS, body={"job_id": job.job_id, "build_number": 1}
        )
    assert (status, err["error"]) == (502, "upstream_error")
    assert "http=401" in err["message"]
    assert "not-the-sim-token-12345" not in json.dumps(err)
    assert d.watchlist.records == {}


async def test_admin_token_from_a_file_follows_rotation(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    first, second = "rotated-admin-token-AAAA1111", "rotated-admin-token-BBBB2222"
    path = tmp_path / "admin-token"
    path.write_text(first + "\n")
    plan_a, plan_b = sim.sim.new_build(), sim.sim.new_build()
    daemon = Daemon(make_settings(sim.url, admin_token_file=path))
    async with running(daemon) as d:
        status, _, _ = await call(
            d, "POST", RECORDS, body={"record_id": plan_a.record_id}, token=first
        )
        assert status == 201
        # The Secret is rotated the way the kubelet does it: a new file in place.
        new = tmp_path / "admin-token.new"
        new.write_text(second + "\n")
        new.replace(path)
        status, _, _ = await call(
            d, "POST", RECORDS, body={"record_id": plan_b.record_id}, token=first
        )
        assert status == 401
        status, _, _ = await call(
            d, "POST", RECORDS, body={"record_id": plan_b.record_id}, token=second
        )
        assert status == 201
        get_logger("test").info("oops", detail=f"{first} {second}")
    logs = log_stream.getvalue()
    assert first not in logs and second not in logs


def test_admin_token_file_is_checked_at_load(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("too-short")
    with pytest.raises(ConfigError) as err:
        load_settings(auth_token=SecretStr("x" * 20), admin_token_file=short)
    assert "at least 16 characters" in str(err.value)
    assert "too-short" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(auth_token=SecretStr("x" * 20), admin_token_file=tmp_path / "missing")
    assert "not a readable file" in str(err.value)
