"""Job discovery against the simulator: new builds are watched from the start, history never."""

from __future__ import annotations

import io

import aiohttp
import anyio
import pytest
from aiohttp import web

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.server.http import start_site
from monitor.settings import ConfigError, load_settings
from monitor.simulator.scenario import record_status
from monitor.store.memory import MemoryStore
from monitor.tracking.discovery import Discovery
from tests.support.loopback import SimServer, fetch, log_events, make_settings, running, scrape
from tests.support.samples import series, value

EVERY = 600.0  # simulated seconds between two builds of a job
SCALE = 0.01  # builds of a few simulated seconds, all over well before the next one


def discovery_of(daemon: Daemon) -> Discovery:
    assert daemon.discovery is not None
    return daemon.discovery


async def polled_once(daemon: Daemon, record_id: str) -> None:
    """Wait until discovery added the record and a poll of it answered."""
    records = daemon.watchlist.records
    await daemon.watchlist.wait_for(
        lambda: record_id in records and records[record_id].snapshot is not None
    )


async def next_round(daemon: Daemon, rounds: int = 1) -> None:
    """Wait until `rounds` rounds have run that started after this call."""
    disc = discovery_of(daemon)
    await disc.wait_rounds(disc.rounds_started + rounds)


async def test_new_builds_of_two_jobs_are_watched_and_followed_history_never(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    a = s.add_job("payments-api", every=EVERY, duration_scale=SCALE)
    b = s.add_job("web-frontend", every=EVERY, first_in=EVERY / 2, duration_scale=SCALE)
    history = [s.new_build(job_id=j.job_id, started_ago=50_000) for j in (a, b) for _ in range(3)]
    assert all(record_status(p, s.clock.now()) != "RUNNING" for p in history)

    d = Daemon(make_settings(sim.url, jobs=[a.job_id, b.job_id], discovery_interval=0.05))
    async with running(d):
        await next_round(d, 2)
        assert d.watchlist.records == {}  # finished history is not watched

        # The jobs start builds over time; each is watched by the next round.
        new = []
        for _ in range(2):
            s.clock.advance(EVERY / 2)
            started = s.start_due_builds()
            assert len(started) == 1
            new += started
            await next_round(d)
            assert started[0].record_id in d.watchlist.records
        assert {p.job_id for p in new} == {a.job_id, b.job_id}

        # ...and followed to completion.
        s.clock.advance(max(p.end_time() for p in new) - s.clock.now() + 1)
        await d.watchlist.wait_for(
            lambda: all(d.watchlist.records[p.record_id].state.finished for p in new)
        )
        assert all(d.watchlist.records[p.record_id].state is RecordState.COMPLETE for p in new)

        # Finished builds are never added again, even once they leave the watchlist.
        for p in new:
            await d.watchlist.remove(p.record_id)
        await next_round(d, 2)
        assert d.watchlist.records == {}

        samples = await scrape(d)
        assert value(samples, "stage_monitor_discovered_records_total") == 2
        runs = value(samples, "stage_monitor_discovery_runs_total", outcome="success")
        assert runs is not None
        assert runs >= 2 * 6  # two jobs, at least six rounds

    added = log_events(log_stream, "record_added")
    assert sorted(e["record_id"] for e in added) == sorted(p.record_id for p in new)
    names = {a.job_id: "payments-api", b.job_id: "web-frontend"}
    for e in added:
        assert e["source"] == "discovery"
        assert e["labels"] == {
            "job_id": e["labels"]["job_id"],
            "job_name": names[e["labels"]["job_id"]],
        }
    transitions = log_events(log_stream, "stage_transition")
    assert transitions
    assert all(set(t["labels"]) == {"job_id", "job_name"} for t in transitions)
    completes = log_events(log_stream, "record_complete")
    assert sorted(c["record_id"] for c in completes) == sorted(p.record_id for p in new)

    # A restarted monitor (empty state) does not take up the finished builds either.
    d2 = Daemon(
        make_settings(sim.url, jobs=[a.job_id, b.job_id], discovery_interval=0.05),
        store=MemoryStore(),
    )
    async with running(d2):
        await next_round(d2, 2)
        assert d2.watchlist.records == {}


async def test_discovered_records_carry_job_labels_on_every_series(sim: SimServer) -> None:
    s = sim.sim
    job = s.add_job("api-gateway")
    plan = s.new_build(job_id=job.job_id, started_ago=5)
    d = Daemon(make_settings(sim.url, jobs=[job.job_id], discovery_interval=0.05))
    async with running(d):
        await polled_once(d, plan.record_id)
        samples = await scrape(d)
    per_record = [name for (name, labels) in samples if ("record_id", plan.record_id) in labels]
    assert per_record
    for (name, labels), _ in samples.items():
        if ("record_id", plan.record_id) in labels:
            assert ("job_id", job.job_id) in labels, name
            assert ("job_name", "api-gateway") in labels, name
    assert value(samples, "stage_monitor_records", state="active") == 1


async def test_a_failing_job_does_not_stop_the_others(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    job = s.add_job("works")
    plan = s.new_build(job_id=job.job_id)
    missing = "0123456789abcdef0123456789abcdef"
    d = Daemon(make_settings(sim.url, jobs=[missing, job.job_id], discovery_interval=0.05))
    async with running(d):
        await next_round(d, 3)
        assert plan.record_id in d.watchlist.records
        samples = await scrape(d)
    failed = value(samples, "stage_monitor_discovery_runs_total", outcome="not_found")
    assert failed is not None
    assert failed >= 3
    events = log_events(log_stream, "discovery_failed")
    assert events
    assert {e["job_id"] for e in events} == {missing}


async def test_discovery_uses_the_daemons_client_and_asks_for_a_job_once(sim: SimServer) -> None:
    """Its requests go through the one client (so through its rate budget and its metrics)."""
    s = sim.sim
    job = s.add_job("cached")
    d = Daemon(make_settings(sim.url, jobs=[job.job_id], discovery_interval=0.05))
    async with running(d):
        await next_round(d, 4)
        samples = await scrape(d)
        requests = list(s.requests)
    info = [r for r in requests if r.path == f"/v1/job/{job.job_id}/info"]
    listings = [r for r in requests if r.path == f"/v1/record/{job.build_project_id}/records"]
    assert len(info) == 1
    assert len(listings) >= 4
    counted = sum(series(samples, "stage_monitor_api_requests_total").values())
    assert counted == len(requests)


async def test_a_running_build_removed_from_the_watchlist_stays_removed(sim: SimServer) -> None:
    s = sim.sim
    job = s.add_job("long-runner")
    plan = s.new_build(job_id=job.job_id)
    d = Daemon(make_settings(sim.url, jobs=[job.job_id], discovery_interval=0.05))
    async with running(d):
        await d.watchlist.wait_for(lambda: plan.record_id in d.watchlist.records)
        await d.watchlist.remove(plan.record_id)
        await next_round(d, 3)
        assert record_status(plan, s.clock.now()) == "RUNNING"
        assert plan.record_id not in d.watchlist.records


async def test_metrics_with_discovery_and_labels_pass_promtool(sim: SimServer) -> None:
    s = sim.sim
    job = s.add_job('name with "quotes" and \\ backslash')
    plan = s.new_build(job_id=job.job_id, started_ago=20)
    d = Daemon(make_settings(sim.url, jobs=[job.job_id], discovery_interval=0.05))
    async with running(d):
        await polled_once(d, plan.record_id)
        status, _, text = await fetch(d, "/metrics")
    assert status == 200
    assert 'job_name="name with \\"quotes\\" and \\\\ backslash"' in text
    result = await anyio.run_process(
        ["promtool", "check", "metrics"], input=text.encode(), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_ids_are_checked_when_settings_load() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(auth_token="x" * 20, jobs="0123456789abcdef0123456789abcdef,Not-A-Job")
    assert exc.value.errors == [
        "jobs (MONITOR_JOBS): not a job id (32 characters of [0-9a-z]): 'Not-A-Job'"
    ]
    settings = load_settings(auth_token="x" * 20, jobs=" a1b2c3d4e5f60718293a4b5c6d7e8f90 ,")
    assert settings.jobs == ["a1b2c3d4e5f60718293a4b5c6d7e8f90"]
    assert settings.discovery_interval == 60.0


async def test_answers_of_the_wrong_shape_are_counted_and_survived(
    log_stream: io.StringIO,
) -> None:
    """A loopback server answering garbage: discovery logs and counts it, and keeps going."""
    job_id = "0123456789abcdef0123456789abcdef"
    project = "a3270d84-ddc7-4288-b985-f801871b260d"
    bad_records: list[object] = [
        [1, 2],
        {"result": {"data": [{"id": "x", "status": {"nested": 1}}]}},
        {"result": None},
        {"result": {"data": [{"id": "not-a-record-id", "status": "RUNNING"}]}},
    ]
    served = 0

    async def info(request: web.Request) -> web.Response:
        return web.json_response({"result": {"job_name": "j", "project_id": project}})

    async def records(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.json_response(bad_records[(served - 1) % len(bad_records)])

    app = web.Application()
    app.router.add_get(f"/v1/job/{job_id}/info", info)
    app.router.add_get(f"/v1/record/{project}/records", records)
    runner, port = await start_site(app, "127.0.0.1", 0)
    try:
        d = Daemon(
            make_settings(f"http://127.0.0.1:{port}", jobs=[job_id], discovery_interval=0.01)
        )
        async with running(d):
            await next_round(d, len(bad_records) + 1)
            samples = await scrape(d)
            assert d.watchlist.records == {}
    finally:
        await runner.cleanup()
    malformed = value(samples, "stage_monitor_discovery_runs_total", outcome="malformed")
    assert malformed is not None
    assert malformed >= 3
    assert log_events(log_stream, "discovered_id_invalid")
    errors = [e["error"] for e in log_events(log_stream, "discovery_failed")]
    assert any("does not match the documented shape" in e for e in errors)
    assert any("has no result.data" in e for e in errors)


async def test_simulator_control_endpoint_makes_jobs_and_starts_builds(sim: SimServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{sim.url}/_sim/jobs", json={"job_name": "from-outside", "every": 60}
        ) as resp:
            job = await resp.json()
        async with session.post(f"{sim.url}/_sim/jobs", json={"job_id": job["job_id"]}) as resp:
            started = await resp.json()
    made = sim.sim.jobs[job["job_id"]]
    assert (made.job_name, made.build_project_id, made.every) == (
        "from-outside",
        job["project_id"],
        60,
    )
    assert sim.sim.plans[started["record_id"]].job_id == job["job_id"]
    sim.sim.clock.advance(125)
    assert len(sim.sim.start_due_builds()) == 2  # at +60 and +120
    assert [p.build_number for p in sim.sim.builds_of(job["job_id"])] == [3, 2, 1]
