"""Soak: 500 builds, one in five answers faulty, a tight request budget, a durable store.

Builds run on a fast simulated clock (durations scaled down), so the whole life of
every build fits in seconds. At the end every record must be in its true terminal
state, every per-stage series must equal the simulator's own answer, every stage
must have been counted as finished exactly once, and the simulator's request log
must show the rate limit was never exceeded.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from monitor.app import Daemon
from monitor.codearts.ratelimit import TokenBucket
from monitor.domain import RecordState
from monitor.simulator import Fault, FaultPlan, Simulator, serve
from tests.support.loopback import TOKEN, fetch, log_events, make_settings, running, scrape
from tests.support.samples import series, value
from tests.support.state import load_state

RECORDS = 500
UNKNOWN = 5  # ids the service does not know: their true terminal state is not_found
FAULT_RATE = 0.2
DURATION_SCALE = 0.01  # a build of half an hour takes ~18 s
RATE = 250.0  # requests per second, for the whole process
BURST = 25
WINDOW = 1.0  # seconds: the rate check's sliding window
JITTER = 0.1  # seconds a request may take from passing the gate to reaching the simulator


def _expected_result(stages: dict[str, dict[str, Any]]) -> str:
    for st in sorted(stages.values(), key=lambda s: s["sequence"]):
        if st["status"] != "SUCCESS":
            return str(st["status"])
    return "SUCCESS"


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_soak_every_record_true_every_stage_counted_once_within_the_rate(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    faults = FaultPlan(FAULT_RATE, seed=3, slow_seconds=1.0, retry_after="0.05")
    sim = Simulator(seed=3, speed=1.0, tokens={TOKEN}, faults=faults)
    plans = sim.populate(RECORDS, duration_scale=DURATION_SCALE)
    unknown = [str(uuid.UUID(int=i + 1, version=4)) for i in range(UNKNOWN)]
    runner, port = await serve(sim, "127.0.0.1", 0)
    state = tmp_path / "monitor.db"
    settings = make_settings(
        f"http://127.0.0.1:{port}",
        [p.record_id for p in plans] + unknown,
        poll_interval=0.2,  # asks for far more than the budget allows
        max_concurrency=32,
        request_timeout=0.5,
        backoff_max=1.0,
        rate_limit=RATE,
        rate_burst=BURST,
        state_path=str(state),
    )
    # Throttles are frequent here (one request in 55) and random, not a sign of a real
    # limit: recover quickly so the run stays short. Each one still pauses everything.
    daemon = Daemon(settings, gate=TokenBucket(RATE, BURST, recovery=0.05))
    try:
        async with running(daemon):
            with anyio.fail_after(120):
                await daemon.watchlist.wait_for(
                    lambda: all(r.state.finished for r in daemon.watchlist.records.values())
                )
            samples = await scrape(daemon)
            health = await fetch(daemon, "/healthz")
    finally:
        await runner.cleanup()

    # --- the daemon never crashed, and saw every kind of fault ----------------------------
    assert health[0] == 200
    assert not log_events(log_stream, "poll_crashed")
    seen_faults = Counter(r.fault for r in sim.requests if r.fault)
    assert set(seen_faults) == {f.value for f in Fault}
    failed_outcomes = {e["outcome"] for e in log_events(log_stream, "poll_failed")}
    assert failed_outcomes >= {
        "throttled",
        "server_error",
        "timeout",
        "transport_error",
        "malformed",
        "api_error",
        "not_found",
    }
    assert daemon.gate.pauses > 0

    # --- every record reached its true terminal state --------------------------------------
    records = daemon.watchlist.records
    assert set(records) == {p.record_id for p in plans} | set(unknown)
    truth = {p.record_id: sim.truth(p.record_id)["result"]["build_stages"] for p in plans}
    wrong = [
        rid
        for rid, stages in truth.items()
        if records[rid].state is not RecordState.COMPLETE
        or records[rid].result != _expected_result(stages)
    ]
    assert wrong == []
    assert all(records[rid].state is RecordState.NOT_FOUND for rid in unknown)
    assert value(samples, "stage_monitor_records", state="complete") == RECORDS
    assert value(samples, "stage_monitor_records", state="not_found") == UNKNOWN

    # --- every per-stage series equals the simulator's answer ------------------------------
    by_stage: dict[tuple[str, str], dict[str, Any]] = {}
    for (name, labels), v in samples.items():
        lab = dict(labels)
        if "build_stage" in lab:
            got_stage = by_stage.setdefault((lab["record_id"], lab["build_stage"]), {})
            if name == "codearts_build_stage_status":
                got_stage.setdefault("statuses", {})[lab["status"]] = v
            else:
                got_stage[name] = v
    mismatches = []
    for rid, stages in truth.items():
        for key, st in stages.items():
            seen = by_stage.get((rid, key), {})
            got = {
                "status": seen.get("statuses"),
                "code": seen.get("codearts_build_stage_status_code"),
                "duration": seen.get("codearts_build_stage_duration_seconds"),
                "build": seen.get("codearts_build_stage_build_duration_seconds"),
                "pending": seen.get("codearts_build_stage_pending_seconds"),
            }
            want = {
                "status": {st["status"]: 1},
                "code": st["status_code"],
                "duration": None if st["duration"] is None else st["duration"] / 1000,
                "build": None if st["build_duration"] is None else st["build_duration"] / 1000,
                "pending": (
                    None if st["pending_duration"] is None else st["pending_duration"] / 1000
                ),
            }
            if got != want:
                mismatches.append((rid, key, got, want))
    assert mismatches == []

    # --- every finished stage counted exactly once -----------------------------------------
    true_finished = Counter(
        (st["display_name"], st["status"]) for stages in truth.values() for st in stages.values()
    )
    counted = {
        (dict(labels)["display_name"], dict(labels)["status"]): v
        for labels, v in series(samples, "codearts_build_stages_finished_total").items()
    }
    assert sum(counted.values()) == sum(true_finished.values())
    assert counted == dict(true_finished)
    transitions = [
        (e["record_id"], e["build_stage"], e["to_status"])
        for e in log_events(log_stream, "stage_transition")
    ]
    assert len(transitions) == len(set(transitions))

    # --- the request budget held, by the simulator's own clock ------------------------------
    arrivals = [r.at for r in sim.requests]
    busiest = _max_in_window(arrivals, WINDOW)
    assert busiest <= BURST + RATE * (WINDOW + JITTER), busiest
    elapsed = max(arrivals) - min(arrivals)
    assert len(arrivals) <= BURST + RATE * elapsed

    # --- what the store holds agrees with what the daemon ended with -----------------------
    stored = {r.record_id: r for r in await load_state(state)}
    assert {rid: r.state for rid, r in stored.items()} == {
        rid: r.state for rid, r in records.items()
    }
    assert all(stored[rid].counted == frozenset(truth[rid]) for rid in truth)
    print(
        f"\nsoak: {len(arrivals)} requests in {elapsed:.1f} s "
        f"(busiest {WINDOW:.0f} s window: {busiest}; limit {RATE:.0f}/s burst {BURST}); "
        f"faults {sum(seen_faults.values())}: {dict(seen_faults)}; "
        f"gate pauses {daemon.gate.pauses}; store writes {daemon.store.writes}"  # type: ignore[attr-defined]
    )
