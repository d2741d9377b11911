"""Every fault the simulator can inject really reaches the daemon over loopback, and is survived."""

from __future__ import annotations

import io

import aiohttp
import pytest

from monitor.app import Daemon
from monitor.codearts.ratelimit import DEFAULT_PAUSE
from monitor.domain import RecordState
from monitor.simulator import Fault
from tests.support.loopback import (
    TOKEN,
    SimServer,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.samples import series, value

# fault -> (poll outcome in stage_monitor_polls_total, code in stage_monitor_api_requests_total)
EXPECTED = {
    Fault.THROTTLE: ("throttled", "429"),
    Fault.HTTP_500: ("server_error", "500"),
    Fault.HTTP_502: ("server_error", "502"),
    Fault.HTTP_503: ("server_error", "503"),
    Fault.SLOW: ("timeout", "timeout"),
    Fault.RESET: ("transport_error", "connection_error"),
    Fault.TRUNCATED: ("transport_error", "truncated"),
    Fault.NOT_JSON: ("malformed", "200"),
    Fault.WRONG_SHAPE: ("malformed", "200"),
    Fault.OK_STATUS_FAIL: ("api_error", "200"),
    Fault.OK_ERROR_CODE: ("api_error", "200"),
}


def test_every_fault_kind_has_an_expectation() -> None:
    assert set(EXPECTED) == set(Fault)


@pytest.mark.parametrize("fault", list(Fault))
async def test_each_fault_is_seen_as_itself_and_the_next_poll_recovers(
    sim: SimServer, log_stream: io.StringIO, fault: Fault
) -> None:
    s = sim.sim
    s.faults.slow_seconds = 1.0
    s.faults.retry_after = "0.2"
    plan = s.new_build(started_ago=10_000, fate="SUCCESS")
    s.faults.inject(fault, plan.record_id)
    daemon = Daemon(make_settings(sim.url, [plan.record_id], request_timeout=0.3, backoff_max=0.05))
    async with running(daemon):
        rec = daemon.watchlist.records[plan.record_id]
        await wait_until(daemon, lambda: rec.state is RecordState.COMPLETE)
        samples = await scrape(daemon)

    outcome, code = EXPECTED[fault]
    # Exactly one faulty answer and one good one: the client retried nothing behind our back.
    seen = [(r.status, r.fault) for r in s.requests if r.record_id == plan.record_id]
    assert len(seen) == 2
    assert seen[0][1] == fault.value
    assert seen[1] == (200, None)
    assert value(samples, "stage_monitor_polls_total", outcome=outcome) == 1
    assert value(samples, "stage_monitor_polls_total", outcome="success") == 1
    assert (value(samples, "stage_monitor_api_requests_total", code=code) or 0) >= 1
    failed = log_events(log_stream, "poll_failed")
    assert [e["outcome"] for e in failed] == [outcome]
    assert not log_events(log_stream, "poll_crashed")
    finished = series(samples, "codearts_build_stages_finished_total")
    assert sum(finished.values()) == len(plan.stages)
    if fault is Fault.THROTTLE:
        assert daemon.gate.pauses == 1


async def test_a_throttle_pauses_every_record_not_just_the_one_refused(sim: SimServer) -> None:
    s = sim.sim
    s.faults.retry_after = "0.5"
    # Builds that never finish, so every record is polled all the time.
    plans = [s.new_build(started_ago=-1_000_000) for _ in range(3)]
    daemon = Daemon(
        make_settings(sim.url, [p.record_id for p in plans], poll_interval=0.02, max_concurrency=3)
    )
    async with running(daemon):
        await daemon.scheduler.wait_ready()
        s.faults.inject(Fault.THROTTLE, plans[0].record_id)
        await wait_until(daemon, lambda: daemon.gate.pauses == 1)
        throttled_at = next(r.at for r in s.requests if r.status == 429)
        # Keep polling until well past the Retry-After.
        await wait_until(daemon, lambda: s.requests[-1].at > throttled_at + 0.7)

    after = [r.at - throttled_at for r in s.requests if r.at > throttled_at]
    # The two other workers' requests may already be on the wire when the 429 comes
    # back; apart from those, nothing for any record until Retry-After has passed
    # (without the shared pause, the other records would have been polled ~50 times).
    early = [t for t in after if t < 0.5]
    assert len(early) <= 2, early
    assert len(after) > len(early)


async def test_a_429_without_retry_after_pauses_everything_for_the_default_pause(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    probe = s.new_build().record_id
    async with aiohttp.ClientSession() as session:
        # From now on the simulator's 429s carry no Retry-After at all.
        control = {"retry_after": None, "kind": "throttle", "record_id": probe}
        async with session.post(f"{sim.url}/_sim/faults", json=control) as resp:
            assert resp.status == 200
        url = f"{sim.url}/v1/record/{probe}/full-stages"
        async with session.get(url, headers={"X-Auth-Token": TOKEN}) as resp:
            assert resp.status == 429
            assert "Retry-After" not in resp.headers
            assert (await resp.json())["error_code"] == "APIGW.0308"

    plans = [s.new_build(started_ago=-1_000_000) for _ in range(3)]  # polled all the time
    daemon = Daemon(
        make_settings(sim.url, [p.record_id for p in plans], poll_interval=0.02, max_concurrency=3)
    )
    async with running(daemon):
        await daemon.scheduler.wait_ready()
        s.faults.inject(Fault.THROTTLE, plans[0].record_id)
        await wait_until(daemon, lambda: daemon.gate.pauses == 1)
        throttled_at = next(r.at for r in s.requests if r.status == 429 and r.record_id != probe)
        await wait_until(daemon, lambda: s.requests[-1].at > throttled_at + DEFAULT_PAUSE + 0.2)
        samples = await scrape(daemon)

    # Without a Retry-After the daemon still pauses every record, for its default pause:
    # apart from requests already on the wire, nothing is sent until it has passed.
    after = [r.at - throttled_at for r in s.requests if r.at > throttled_at]
    early = [t for t in after if t < DEFAULT_PAUSE]
    assert len(early) <= 2, early
    assert len(after) > len(early)
    assert value(samples, "stage_monitor_throttle_pauses_total") == 1
    assert value(samples, "stage_monitor_api_requests_total", code="429") == 1
    assert value(samples, "stage_monitor_polls_total", outcome="throttled") == 1
    failed = log_events(log_stream, "poll_failed")
    assert [(e["record_id"], e["outcome"]) for e in failed] == [(plans[0].record_id, "throttled")]
