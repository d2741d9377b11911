"""The status page at / and /records/{id}, as a daemon watching the simulator serves it."""

from __future__ import annotations

import io
import re
from typing import Any

import aiohttp
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.server.status.page import format_time
from monitor.simulator.faults import Fault
from tests.support.html import Element, parse_html
from tests.support.loopback import (
    FakeClock,
    SimServer,
    log_events,
    make_settings,
    running,
    wait_until,
)
from tests.support.status import truth_stages, with_display_name

EVIL = "<img src=x onerror=alert(1)>"
ADMIN = "admin-token-Hq3mV8pL2xR7sK4n"


async def get(
    daemon: Daemon, path: str, token: str | None = None
) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{daemon.port}{path}", headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


async def all_polled(daemon: Daemon) -> None:
    records = daemon.watchlist.records
    await wait_until(daemon, lambda: all(r.snapshot is not None for r in records.values()))


def assert_timeline_follows(svg: Element, stages: list[dict[str, Any]]) -> None:
    """Each stage's rects are as wide as its duration, its wait as its pending_duration."""
    total_ms = sum(s["duration"] or 0 for s in stages)
    scale = float(svg.attrs["width"]) / (total_ms / 1000.0)
    groups = {g.attrs["data-stage"]: g for g in svg.find_all("g")}
    assert list(groups) == [s["execution_stage_name"] for s in stages]
    for s in stages:
        rects = groups[s["execution_stage_name"]].find_all("rect")
        width = sum(float(r.attrs["width"]) for r in rects)
        assert abs(width - (s["duration"] or 0) / 1000.0 * scale) < 0.05, s
        waits = [float(r.attrs["width"]) for r in rects if r.attrs["class"] == "wait"]
        assert abs(sum(waits) - (s["pending_duration"] or 0) / 1000.0 * scale) < 0.05, s


async def test_the_page_has_one_row_and_timeline_per_build(sim: SimServer) -> None:
    s = sim.sim
    plans = [s.new_build(started_ago=ago) for ago in (5, 40, 120, 400, 5000)]
    d = Daemon(make_settings(sim.url, [p.record_id for p in plans]))
    async with running(d):
        await all_polled(d)
        status, headers, body = await get(d, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe" not in csp
    directives = {d.split()[0] for d in csp.split("; ")}
    assert directives == {"default-src", "style-src", "base-uri", "form-action", "frame-ancestors"}
    assert headers["X-Content-Type-Options"] == "nosniff"
    doc = parse_html(body)
    assert doc.find_all("script") == []
    assert doc.find("meta", **{"http-equiv": "refresh"}).attrs["content"] == "5"
    hrefs = {a.attrs["href"] for a in doc.find_all("a")}
    assert {"/metrics", "/healthz", "/readyz", "/api/v1/openapi.json"} <= hrefs
    rows = doc.find("table", id="builds").find("tbody").find_all("tr")
    # Newest first: the build started 5 s ago leads.
    assert [r.attrs["data-record-id"] for r in rows] == [p.record_id for p in plans]
    for row, plan in zip(rows, plans, strict=True):
        svgs = row.find_all("svg")
        assert len(svgs) == 1
        assert_timeline_follows(svgs[0], truth_stages(s, plan.record_id))
        assert f"/records/{plan.record_id}" in {a.attrs["href"] for a in row.find_all("a")}
    text = doc.text
    assert "auth mode" in text and "token" in text
    assert "1000 requests/s, burst 100" in text
    assert "showing 5 of 5" in text


async def test_names_from_the_api_and_from_users_are_shown_as_text(sim: SimServer) -> None:
    s = sim.sim
    plan = with_display_name(s, s.new_build(started_ago=400), 1, EVIL)
    d = Daemon(make_settings(sim.url))
    async with running(d):
        await d.watchlist.add(plan.record_id, {"job_name": "<script>alert(2)</script>"}, "api")
        await all_polled(d)
        _, _, index = await get(d, "/")
        _, _, detail = await get(d, f"/records/{plan.record_id}")
        status, _, missing = await get(d, "/records/<b>nope")
    for body in (index, detail):
        assert EVIL not in body and "<script>alert" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
        doc = parse_html(body)
        assert doc.find_all("img") == [] and doc.find_all("script") == []
        assert EVIL in doc.text  # shown as the literal string
    titles = [t.text for t in parse_html(index).find_all("title")]
    assert any(EVIL in t for t in titles)  # the hover text of the stage
    assert "<script>alert(2)</script>" in parse_html(index).find("table", id="builds").text
    assert status == 404
    assert "<b>" not in missing and "&lt;b&gt;nope is not watched" in missing


async def test_the_record_page_shows_stages_transitions_and_why_polling_stopped(
    sim: SimServer,
) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=30)
    gone = "00000000-0000-4000-8000-000000000000"  # the simulator never heard of it
    d = Daemon(make_settings(sim.url, [plan.record_id, gone], not_found_confirmations=2))
    async with running(d):
        await wait_until(d, lambda: d.watchlist.records[gone].state is RecordState.NOT_FOUND)
        await wait_until(d, lambda: d.watchlist.records[plan.record_id].snapshot is not None)
        _, _, running_page = await get(d, f"/records/{plan.record_id}")
        s.clock.advance(plan.end_time() - s.clock.now() + 1)
        await wait_until(d, lambda: d.watchlist.records[plan.record_id].state.finished)
        _, _, done_page = await get(d, f"/records/{plan.record_id}")
        _, _, gone_page = await get(d, f"/records/{gone}")
    doc = parse_html(running_page)
    assert "still polled" in doc.text
    assert len(doc.find("div", id="timeline").find_all("svg")) == 1
    done = parse_html(done_page)
    truth = truth_stages(s, plan.record_id)
    stage_rows = done.find("table", id="stages").find("tbody").find_all("tr")
    assert [r.attrs["data-stage"] for r in stage_rows] == [t["execution_stage_name"] for t in truth]
    assert_timeline_follows(done.find("div", id="timeline").find("svg"), truth)
    result = d.watchlist.records[plan.record_id].result
    assert f"complete: every stage is terminal (result {result})" in done.text
    transitions = done.find("table", id="transitions").find("tbody").find_all("tr")
    # Every stage was seen at least once, newest first: the last one is a first sight.
    assert len(transitions) >= len(truth)
    assert "(new)" in transitions[-1].text
    gone_doc = parse_html(gone_page)
    assert "not found: the API answered 404 2 times in a row" in gone_doc.text
    assert "not_found" in gone_doc.text  # the last poll's outcome


async def test_rows_are_capped_with_a_count_of_the_rest(sim: SimServer) -> None:
    s = sim.sim
    plans = [s.new_build(started_ago=10 * (i + 1)) for i in range(5)]
    d = Daemon(make_settings(sim.url, [p.record_id for p in plans], status_page_rows=3))
    async with running(d):
        await all_polled(d)
        _, _, body = await get(d, "/")
    doc = parse_html(body)
    rows = doc.find("table", id="builds").find("tbody").find_all("tr")
    assert [r.attrs["data-record-id"] for r in rows] == [p.record_id for p in plans[:3]]
    assert "showing 3 of 5" in doc.text
    assert "and 2 more not shown" in doc.text


async def test_loading_the_pages_never_calls_the_api(sim: SimServer) -> None:
    s = sim.sim
    plans = [s.new_build(started_ago=60) for _ in range(3)]
    d = Daemon(make_settings(sim.url, [p.record_id for p in plans]))
    async with running(d):
        await all_polled(d)
        d.scheduler.stop()  # no more polls: every request from now on would be the page's
        await d.scheduler.wait_finished()
        before = len(s.requests)
        for _ in range(5):
            assert (await get(d, "/"))[0] == 200
            assert (await get(d, f"/records/{plans[0].record_id}"))[0] == 200
        assert len(s.requests) == before


async def test_read_protection_guards_the_page_with_the_admin_token(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=60)
    settings = make_settings(
        sim.url, [plan.record_id], admin_token=SecretStr(ADMIN), admin_read_protected=True
    )
    d = Daemon(settings)
    async with running(d):
        await all_polled(d)
        for path in ("/", f"/records/{plan.record_id}"):
            status, headers, body = await get(d, path)
            assert status == 401
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert headers["Content-Security-Policy"].startswith("default-src 'none'")
            text = parse_html(body).text
            assert "MONITOR_ADMIN_READ_PROTECTED=true" in text
            assert "Authorization: Bearer" in text
            assert plan.record_id not in body or path != "/"
            assert (await get(d, path, token="wrong-token-123456"))[0] == 401
            assert (await get(d, path, token=ADMIN))[0] == 200
        assert (await get(d, "/metrics"))[0] == 200  # scrapes stay open
    refused = log_events(log_stream, "admin_request_refused")
    assert {e["reason"] for e in refused} == {"no bearer token", "wrong bearer token"}
    assert ADMIN not in log_stream.getvalue()


def discovery_cells(body: str) -> dict[str, list[str]]:
    """The discovery table's rows by kind: [from, watched, excluded, disabled, rounds,
    last round, its outcome]."""
    rows = parse_html(body).find("table", id="discovery").find("tbody").find_all("tr")
    return {r.attrs["data-discovery"]: [c.text for c in r.find_all("td")][1:] for r in rows}


async def test_job_discovery_status_is_shown(sim: SimServer) -> None:
    job = sim.sim.add_job("payments-api", every=600.0, duration_scale=0.01)
    d = Daemon(make_settings(sim.url, jobs=[job.job_id], discovery_interval=0.05))
    async with running(d):
        assert d.discovery is not None
        await d.discovery.wait_rounds(2)
        _, _, body = await get(d, "/")
    rows = discovery_cells(body)
    assert list(rows) == ["jobs"]
    source, watched, excluded, disabled, rounds, last, outcome = rows["jobs"]
    assert (source, watched, excluded, disabled) == ("1 job (MONITOR_JOBS)", "1", "-", "-")
    assert int(rounds) >= 2 and last.endswith("ago") and outcome == "success"


async def test_nothing_to_discover_says_so(sim: SimServer) -> None:
    d = Daemon(make_settings(sim.url, [sim.sim.new_build().record_id]))
    async with running(d):
        _, _, body = await get(d, "/")
    doc = parse_html(body)
    assert doc.find_all("table", id="discovery") == []
    assert "No discovery runs (MONITOR_JOBS and MONITOR_PROJECTS are empty)." in doc.text


async def test_project_discovery_shows_its_jobs_and_the_first_error_of_its_last_round(
    sim: SimServer,
) -> None:
    world = sim.sim.projects
    refused = world.add_project(names=["secret"])
    world.refused[refused.project_id] = 403
    project = world.add_project(names=["api", "web", "old", "skip-me"])
    old = world.jobs_of(project.project_id)[2]
    world.disabled.add(old.job_id)
    clock = FakeClock()
    settings = make_settings(
        sim.url,
        projects=[refused.project_id, project.project_id],
        job_exclude="skip-.*",
        discovery_interval=0.05,
    )
    d = Daemon(settings, clock=clock)
    async with running(d):
        disc = d.project_discovery
        assert disc is not None
        await disc.wait_rounds(disc.rounds_started + 1)
        # One project refused, the other read: the round's outcome is its first error.
        _, _, body = await get(d, "/")
        source, watched, excluded, disabled, rounds, last, outcome = discovery_cells(body)[
            "projects"
        ]
        assert (source, watched, excluded, disabled) == (
            "2 projects (MONITOR_PROJECTS)",
            "2",
            "1",
            "1",
        )
        assert int(rounds) >= 1 and outcome == "forbidden"
        assert last == "0 ms ago"  # the round ended at the daemon's (stopped) clock
        # The project is let in: the next round is a success, its end shown by its age.
        del world.refused[refused.project_id]
        world.add_job(refused.project_id, "worker")
        clock.advance(5)
        await disc.wait_rounds(disc.rounds_started + 1)
        clock.advance(3)
        _, _, body = await get(d, "/")
        cells = discovery_cells(body)["projects"]
    assert cells[1:4] == ["4", "1", "1"]  # secret, worker, api, web
    assert cells[5:] == ["3.0 s ago", "success"]
    assert "jobs" not in discovery_cells(body)  # MONITOR_JOBS is empty


async def test_a_removed_record_is_forgotten_by_the_page(sim: SimServer) -> None:
    plan = sim.sim.new_build(started_ago=60)
    d = Daemon(make_settings(sim.url, [plan.record_id]))
    async with running(d):
        await all_polled(d)
        assert d.history.transitions(plan.record_id)
        assert d.history.last_poll(plan.record_id) is not None
        await d.watchlist.remove(plan.record_id)
        assert d.history.transitions(plan.record_id) == []
        assert d.history.last_poll(plan.record_id) is None
        assert len(d.history) == 0
        status, _, body = await get(d, f"/records/{plan.record_id}")
    assert status == 404 and "is not watched" in body


async def test_a_record_finished_longer_ago_than_retention_is_retired(sim: SimServer) -> None:
    plan = sim.sim.new_build(started_ago=100_000)  # long finished
    d = Daemon(make_settings(sim.url, [plan.record_id], retention=0.0))
    async with running(d):
        await wait_until(d, lambda: d.watchlist.records[plan.record_id].state.finished)
        _, _, index = await get(d, "/")
        status, _, detail = await get(d, f"/records/{plan.record_id}")
    assert "showing 0 of 0" in parse_html(index).text
    assert status == 200
    assert "retired: complete more than MONITOR_RETENTION ago" in parse_html(detail).text


async def test_a_retired_record_shows_its_final_word_until_it_is_forgotten(
    sim: SimServer,
) -> None:
    done = sim.sim.new_build(started_ago=10_000, fate="SUCCESS")
    rid = done.record_id
    clock = FakeClock()
    settings = make_settings(sim.url, [rid], retention=60, forget_after=3600)
    d = Daemon(settings, clock=clock)
    async with running(d):
        rec = d.watchlist.records[rid]
        await wait_until(d, lambda: rec.state is RecordState.COMPLETE)
        clock.advance(61)
        assert await d.housekeeper.run_once() == (1, 0)
        assert rid not in d.watchlist.records
        status, headers, body = await get(d, f"/records/{rid}")
        assert status == 200
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        facts = parse_html(body).find("dl", id="retired")
        values = dict(
            zip(
                [t.text for t in facts.find_all("dt")],
                [t.text for t in facts.find_all("dd")],
                strict=True,
            )
        )
        assert values["record id"] == rid
        assert values["state"].startswith("retired retired: complete more than MONITOR_RETENTION")
        assert values["final state"] == "complete"
        assert values["result"] == "SUCCESS"
        assert values["finished"] == format_time(rec.finished_at)
        assert values["source"] == "config"
        assert values["forgotten"].startswith(format_time((rec.finished_at or 0) + 3600))
        # Forgotten MONITOR_FORGET_AFTER after it finished: as unknown as an id never seen.
        clock.advance(3600)
        assert await d.housekeeper.run_once() == (0, 1)
        status, _, body = await get(d, f"/records/{rid}")
        never, _, never_body = await get(d, "/records/0123456789abcdef0123456789abcdef")
    assert status == 404 and never == 404
    for page in (body, never_body):
        assert "is not watched" in page and "It was never added, or was removed" in page


async def test_the_budget_shows_a_throttle_and_its_pause(sim: SimServer) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=60)
    s.faults.retry_after = "30"
    d = Daemon(make_settings(sim.url, [plan.record_id]))
    async with running(d):
        await all_polled(d)
        s.faults.inject(Fault.THROTTLE, plan.record_id)
        await wait_until(d, lambda: d.gate.pauses == 1)
        _, _, body = await get(d, "/")
        _, _, detail = await get(d, f"/records/{plan.record_id}")
    budget = parse_html(body).find("dl").text
    assert "1000 requests/s, burst 100; now 500/s after a throttle" in budget
    assert re.search(r"paused for (29|30) s more \(the API said 429\)", budget), budget
    assert "throttled" in parse_html(detail).text  # the last poll's outcome
