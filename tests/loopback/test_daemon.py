"""The daemon against the simulator on loopback: what a user sees on /metrics and in the logs."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from datetime import datetime
from typing import Any

import anyio
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_parse,
)

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.simulator import Fault
from monitor.simulator.scenario import RecordPlan
from tests.support.loopback import (
    TOKEN,
    FakeClock,
    SimServer,
    fetch,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.samples import Samples, series, value

TERMINAL = {"SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT", "UNKNOWN"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _ts(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def assert_matches_truth(samples: Samples, record_id: str, truth: dict[str, Any]) -> None:
    """Every per-stage series of a record equals what the simulator answered."""
    stages = truth["result"]["build_stages"]
    assert series(samples, "codearts_build_stage_status", record_id=record_id)
    for key, st in stages.items():
        lab = {"record_id": record_id, "build_stage": key, "display_name": st["display_name"]}
        status = series(samples, "codearts_build_stage_status", **lab)
        assert status == {frozenset({**lab, "status": st["status"]}.items()): 1.0}, key
        assert value(samples, "codearts_build_stage_status_code", **lab) == st["status_code"]
        for metric, field in [
            ("codearts_build_stage_duration_seconds", "duration"),
            ("codearts_build_stage_build_duration_seconds", "build_duration"),
            ("codearts_build_stage_pending_seconds", "pending_duration"),
        ]:
            want = None if st[field] is None else st[field] / 1000
            assert value(samples, metric, **lab) == want, (key, metric)
        for metric, field in [
            ("codearts_build_stage_start_timestamp_seconds", "start_time"),
            ("codearts_build_stage_finish_timestamp_seconds", "finish_time"),
        ]:
            assert value(samples, metric, **lab) == _ts(st[field]), (key, metric)


def _all_done(daemon: Daemon) -> bool:
    return all(r.state is not RecordState.ACTIVE for r in daemon.watchlist.records.values())


async def test_metrics_equal_simulator_truth_while_running_and_after(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plans = [
        s.new_build(started_ago=30, fate="SUCCESS"),
        s.new_build(started_ago=200, fate="FAILURE"),
        s.new_build(started_ago=5, fate="ABORTED"),
        s.new_build(started_ago=0, fate="SCHEDULE_FAILURE"),
    ]
    ids = [p.record_id for p in plans]
    daemon = Daemon(make_settings(sim.url, ids))
    async with running(daemon):
        await wait_until(daemon, lambda: all(daemon.watchlist.records[i].polls >= 1 for i in ids))
        samples = await scrape(daemon)
        for rid in ids:
            assert_matches_truth(samples, rid, s.truth(rid))

        # Time passes in the simulated world; every build ends.
        s.clock.advance(100_000)
        await wait_until(daemon, lambda: _all_done(daemon))
        samples = await scrape(daemon)
        for rid in ids:
            assert_matches_truth(samples, rid, s.truth(rid))
            assert value(samples, "codearts_build_record_complete", record_id=rid) == 1

    # Each stage's journey is logged once per status it took, and ends in its true status.
    events = log_events(log_stream, "stage_transition")
    keys = Counter((e["record_id"], e["build_stage"], e["to_status"]) for e in events)
    assert keys and max(keys.values()) == 1
    for rid in ids:
        for key, st in s.truth(rid)["result"]["build_stages"].items():
            assert (rid, key, st["status"]) in keys
    completes = log_events(log_stream, "record_complete")
    assert sorted(e["record_id"] for e in completes) == sorted(ids)
    results = {e["record_id"]: e["result"] for e in completes}
    assert results[plans[0].record_id] == "SUCCESS"
    assert results[plans[1].record_id] == "FAILURE"
    assert results[plans[2].record_id] == "ABORTED"
    assert results[plans[3].record_id] == "SCHEDULE_FAILURE"


def _finished_stage_count(s: Any, plans: list[RecordPlan]) -> int:
    return sum(
        1
        for p in plans
        for st in s.truth(p.record_id)["result"]["build_stages"].values()
        if st["status"] in TERMINAL
    )


async def test_polling_stops_at_completion_and_aggregates_count_once(sim: SimServer) -> None:
    s = sim.sim
    done = [s.new_build(started_ago=10_000, fate=f) for f in ("SUCCESS", "FAILURE", "SUCCESS")]
    # A build part-way through keeps the daemon polling a record with finished stages.
    sentinel = s.new_build(started_ago=0, fate="SUCCESS")
    first = sentinel.stages[0]
    s.clock.advance(first.pending + first.run + 0.5)  # initial done, stage1 under way
    ids = [p.record_id for p in [*done, sentinel]]
    daemon = Daemon(make_settings(sim.url, ids))
    async with running(daemon):
        await wait_until(
            daemon,
            lambda: all(
                daemon.watchlist.records[p.record_id].state is RecordState.COMPLETE for p in done
            ),
        )
        before = {p.record_id: s.request_count(p.record_id) for p in done}
        sentinel_rec = daemon.watchlist.records[sentinel.record_id]
        target = sentinel_rec.polls + 10
        await wait_until(daemon, lambda: sentinel_rec.polls >= target)
        after = {p.record_id: s.request_count(p.record_id) for p in done}
        samples = await scrape(daemon)

    assert after == before  # not one more request for a complete record
    assert all(n == 1 for n in before.values())
    # The sentinel's finished `initial` was seen on 10+ polls and counted once.
    expected = _finished_stage_count(s, [*done, sentinel])
    assert expected == sum(len(p.stages) for p in done) + 1
    finished = series(samples, "codearts_build_stages_finished_total")
    assert sum(finished.values()) == expected
    hist_count = series(samples, "codearts_build_stage_finished_duration_seconds_count")
    assert sum(hist_count.values()) == expected
    pending_count = series(samples, "codearts_build_stage_finished_pending_seconds_count")
    assert sum(pending_count.values()) == expected
    # Repeated identical answers add no transitions: each INIT stage was seen once.
    sentinel_states = s.truth(sentinel.record_id)["result"]["build_stages"].values()
    init_first_seen = value(
        samples, "codearts_build_stage_transitions_total", from_status="", to_status="INIT"
    )
    assert init_first_seen == sum(1 for st in sentinel_states if st["status"] == "INIT")


async def test_finished_records_series_disappear_after_retention(sim: SimServer) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=10_000, fate="SUCCESS")
    clock = FakeClock()
    daemon = Daemon(make_settings(sim.url, [plan.record_id], retention=60), clock=clock)
    async with running(daemon):
        rec = daemon.watchlist.records[plan.record_id]
        await wait_until(daemon, lambda: rec.state is RecordState.COMPLETE)
        clock.advance(59)
        samples = await scrape(daemon)
        assert series(samples, "codearts_build_stage_status", record_id=plan.record_id)
        clock.advance(2)
        samples = await scrape(daemon)
    assert not [k for k in samples if ("record_id", plan.record_id) in k[1]]
    assert value(samples, "stage_monitor_records", state="complete") == 1
    # Aggregates outlive the record.
    assert sum(series(samples, "codearts_build_stages_finished_total").values()) == len(plan.stages)


async def test_bad_answers_are_counted_and_the_daemon_keeps_going(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=10_000, fate="SUCCESS")
    for fault in (
        Fault.NOT_JSON,
        Fault.WRONG_SHAPE,
        Fault.HTTP_500,
        Fault.OK_STATUS_FAIL,
        Fault.OK_ERROR_CODE,
    ):
        s.faults.inject(fault, plan.record_id)
    daemon = Daemon(
        make_settings(sim.url, [plan.record_id, UNKNOWN_ID], backoff_max=0.05),
    )
    async with running(daemon):
        await wait_until(daemon, lambda: _all_done(daemon))
        samples = await scrape(daemon)
        status, _, _ = await fetch(daemon, "/healthz")

    assert status == 200
    rec = daemon.watchlist.records[plan.record_id]
    assert rec.state is RecordState.COMPLETE  # the real answer arrived after five bad ones
    assert_matches_truth(samples, plan.record_id, s.truth(plan.record_id))
    assert value(samples, "stage_monitor_polls_total", outcome="malformed") == 2
    assert value(samples, "stage_monitor_polls_total", outcome="server_error") == 1
    assert value(samples, "stage_monitor_polls_total", outcome="api_error") == 2
    assert value(samples, "stage_monitor_polls_total", outcome="not_found") == 3
    assert value(samples, "stage_monitor_api_requests_total", code="500") == 1
    # Three polls of the unknown record, and one ShowBuildRecord lookup per record (the
    # simulator knows no job for either, so both answer 404 and the labels stay empty).
    assert value(samples, "stage_monitor_discovery_requests_total", api="record_info") == 2
    assert value(samples, "stage_monitor_api_requests_total", code="404") == 3 + 2
    assert value(samples, "stage_monitor_records", state="not_found") == 1
    failures = log_events(log_stream, "poll_failed")
    assert {e["outcome"] for e in failures} == {
        "malformed",
        "server_error",
        "api_error",
        "not_found",
    }
    assert any(e["record_id"] == UNKNOWN_ID and "DEVCB.00031006" in e["error"] for e in failures)
    assert log_events(log_stream, "record_refused")[0]["state"] == "not_found"


async def test_token_never_appears_in_logs_or_metrics(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=10_000, fate="SUCCESS")
    wrong = "wrong-token-Hs72kQ9dPz"
    good = Daemon(make_settings(sim.url, [plan.record_id]))
    bad = Daemon(make_settings(sim.url, [plan.record_id], auth_token=wrong))
    async with running(good), running(bad):
        bad_rec = bad.watchlist.records[plan.record_id]
        await wait_until(bad, lambda: bad_rec.polls >= 3)
        await wait_until(good, lambda: _all_done(good))
        _, _, good_text = await fetch(good, "/metrics")
        _, _, bad_text = await fetch(bad, "/metrics")
    logs = log_stream.getvalue()
    assert "unauthorized" in {e.get("outcome") for e in log_events(log_stream, "poll_failed")}
    assert "APIGW.0301" in logs  # the failure is explained...
    for secret in (TOKEN, wrong):
        assert secret not in logs  # ...without the secret
        assert secret not in good_text and secret not in bad_text


async def test_probes_and_openmetrics(sim: SimServer) -> None:
    plan = sim.sim.new_build(started_ago=60, fate="SUCCESS")
    daemon = Daemon(make_settings(sim.url, [plan.record_id]))
    async with running(daemon):
        await daemon.scheduler.wait_ready()
        assert (await fetch(daemon, "/readyz"))[0] == 200
        assert (await fetch(daemon, "/healthz"))[0] == 200
        status, ctype, text = await fetch(
            daemon, "/metrics", accept="application/openmetrics-text; version=1.0.0"
        )
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    names = {f.name for f in om_parse(text)}  # type: ignore[no-untyped-call]
    assert {
        "codearts_build_stage_status",
        "codearts_build_stages_finished",
        "stage_monitor_records",
        "stage_monitor_build_info",
    } <= names


async def test_not_ready_until_first_round_done(sim: SimServer) -> None:
    plan = sim.sim.new_build(started_ago=60, fate="SUCCESS")
    sim.sim.faults.inject(Fault.SLOW, plan.record_id)
    sim.sim.faults.slow_seconds = 1.0
    daemon = Daemon(make_settings(sim.url, [plan.record_id], poll_interval=0.01))
    async with running(daemon):
        status, _, body = await fetch(daemon, "/readyz")
        assert status == 503 and "first poll round" in body
        await daemon.scheduler.wait_ready()
        assert (await fetch(daemon, "/readyz"))[0] == 200


async def test_expired_record_stops_being_polled(sim: SimServer) -> None:
    never = sim.sim.new_build(started_ago=-1_000_000)
    clock = FakeClock()
    daemon = Daemon(make_settings(sim.url, [never.record_id], max_watch=3600), clock=clock)
    async with running(daemon):
        rec = daemon.watchlist.records[never.record_id]
        await wait_until(daemon, lambda: rec.polls >= 2)
        clock.advance(3601)
        await wait_until(daemon, lambda: rec.state is RecordState.EXPIRED)
        samples = await scrape(daemon)
    assert value(samples, "stage_monitor_records", state="expired") == 1
    assert value(samples, "codearts_build_record_complete", record_id=never.record_id) == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_promtool_accepts_real_output(sim: SimServer) -> None:
    plans = sim.sim.populate(20)
    daemon = Daemon(make_settings(sim.url, [p.record_id for p in plans]))
    async with running(daemon):
        await daemon.scheduler.wait_ready()
        _, _, text = await fetch(daemon, "/metrics")
    proc = await anyio.run_process(
        ["promtool", "check", "metrics"], input=text.encode(), check=False
    )
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert out.strip() == ""  # no lint warnings either


async def test_liveness_fails_while_the_scheduler_is_stuck(sim: SimServer) -> None:
    slow = sim.sim.new_build(started_ago=60, fate="SUCCESS")
    other = sim.sim.new_build(started_ago=-1_000_000)  # always due again
    sim.sim.faults.slow_seconds = 3.0
    sim.sim.faults.inject(Fault.SLOW, slow.record_id)
    settings = make_settings(
        sim.url,
        [slow.record_id, other.record_id],
        max_concurrency=1,
        stall_timeout=0.3,
        request_timeout=5.0,
    )
    daemon = Daemon(settings)
    async with running(daemon):
        # One worker, held by the slow answer, while the other record is due: a stall.
        with anyio.fail_after(10):
            # No event marks a stall: its definition is elapsed time, so ask the probe.
            while (await fetch(daemon, "/healthz"))[0] != 503:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        _, _, body = await fetch(daemon, "/healthz")
        assert "no progress" in body
        rec = daemon.watchlist.records[slow.record_id]
        await wait_until(daemon, lambda: rec.polls >= 1)
        other_rec = daemon.watchlist.records[other.record_id]
        polls = other_rec.polls
        await wait_until(daemon, lambda: other_rec.polls > polls + 2)  # moving again
        assert (await fetch(daemon, "/healthz"))[0] == 200
