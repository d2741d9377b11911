"""Several daemons, one Redis, one simulator: one owner per record, counted once in all.

Each daemon is its own `Daemon` with its own port, as three pods would be; they
share only the simulator and a real redis-server.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.cli import main as cli_main
from monitor.domain import RecordState
from monitor.simulator.faults import Fault
from tests.support.loopback import (
    SimServer,
    fetch,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.redis import REDIS_PASSWORD, RedisServer
from tests.support.samples import Samples, series

TTL = 1.5
INTERVAL = 0.3
TERMINAL = {"SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT", "UNKNOWN"}
ADMIN = "admin-token-0123456789abcdef"
PER_RECORD = "codearts_build_stage_status"


def cluster_settings(sim: SimServer, redis: RedisServer, records: list[str], **kw: Any) -> Any:
    values: dict[str, Any] = {
        "redis_url": SecretStr(redis.url),
        "lease_ttl": TTL,
        "poll_interval": INTERVAL,
        "rate_limit": 2000.0,
        "rate_burst": 200,
        **kw,
    }
    return make_settings(sim.url, records, **values)


@asynccontextmanager
async def replicas(settings: Sequence[Any]) -> AsyncIterator[list[Daemon]]:
    """Run one daemon per settings object; all stop on the way out."""
    async with AsyncExitStack() as stack:
        daemons = [Daemon(s) for s in settings]
        for d in daemons:
            await stack.enter_async_context(running(d))
        yield daemons


async def any_change(daemons: Sequence[Daemon]) -> None:
    """Return at the next change of any daemon's watchlist or cluster view."""
    async with anyio.create_task_group() as tg:

        async def one(d: Daemon) -> None:
            seen = [False]

            def second_call() -> bool:
                done, seen[0] = seen[0], True
                return done

            await d.watchlist.wait_for(second_call)
            tg.cancel_scope.cancel()

        async def tick(d: Daemon) -> None:
            assert d.cluster is not None
            await d.cluster.coordinator.wait_ticks(1)
            tg.cancel_scope.cancel()

        for d in daemons:
            tg.start_soon(one, d)
            if d.cluster is not None:
                tg.start_soon(tick, d)


async def wait_all(
    daemons: Sequence[Daemon], predicate: Callable[[], bool], timeout: float = 30.0
) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await any_change(daemons)


def owners(daemons: Sequence[Daemon], rid: str) -> list[int]:
    return [i for i, d in enumerate(daemons) if d.cluster and d.cluster.coordinator.owns(rid)]


def assignees(daemons: Sequence[Daemon], rid: str) -> list[Daemon]:
    return [d for d in daemons if d.cluster is not None and d.cluster.coordinator.assigned(rid)]


def settled(daemons: Sequence[Daemon], ids: Sequence[str]) -> bool:
    """Every replica sees every other; each record has one assignee, which holds its lease
    while the record is active."""
    n = len(daemons)
    if not all(d.cluster is not None and len(d.cluster.coordinator.members) == n for d in daemons):
        return False
    for rid in ids:
        (assignee,) = assignees(daemons, rid)
        holders = owners(daemons, rid)
        active = assignee.watchlist.records[rid].state is RecordState.ACTIVE
        if holders != ([daemons.index(assignee)] if active else []):
            return False
    return True


async def scrape_all(daemons: Sequence[Daemon]) -> list[Samples]:
    return [await scrape(d) for d in daemons]


def summed(all_samples: Sequence[Samples], name: str, **labels: str) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for samples in all_samples:
        for lab, v in series(samples, name, **labels).items():
            out[lab] = out.get(lab, 0.0) + v
    return out


def complete_everywhere(daemons: Sequence[Daemon], ids: Sequence[str]) -> bool:
    """Each record's assignee knows it complete."""
    for rid in ids:
        found = assignees(daemons, rid)
        if len(found) != 1 or found[0].watchlist.records[rid].state is not RecordState.COMPLETE:
            return False
    return True


def stage_values(samples: Samples, rid: str) -> dict[str, tuple[Any, ...]]:
    """Per stage of one record, as exported: (status, duration, pending, start, finish)."""
    mine = {(n, lab): v for (n, lab), v in samples.items() if ("record_id", rid) in lab}
    by_stage: dict[str, dict[str, Any]] = {}
    for (name, lab), v in mine.items():
        d = dict(lab)
        if "build_stage" not in d:
            continue
        slot = by_stage.setdefault(d["build_stage"], {})
        slot[name] = d["status"] if name == PER_RECORD else v
    names = (
        PER_RECORD,
        "codearts_build_stage_duration_seconds",
        "codearts_build_stage_pending_seconds",
        "codearts_build_stage_start_timestamp_seconds",
        "codearts_build_stage_finish_timestamp_seconds",
    )
    return {key: tuple(slot.get(n) for n in names) for key, slot in by_stage.items()}


def by_record(samples: Samples) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for key, v in samples.items():
        rid = dict(key[1]).get("record_id")
        if rid is not None:
            out.setdefault(rid, {})[key] = v
    return out


def truth_values(truth: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    def sec(ms: int | None) -> float | None:
        return None if ms is None else ms / 1000

    def ts(value: Any) -> float | None:
        return None if value is None else datetime.fromisoformat(value).timestamp()

    return {
        key: (st["status"], sec(st["duration"]), sec(st["pending_duration"]),
              ts(st["start_time"]), ts(st["finish_time"]))
        for key, st in truth["result"]["build_stages"].items()
    }  # fmt: skip


def merged_per_record(all_samples: Sequence[Samples]) -> Samples:
    """The per-record series of every replica in one map; a series from two replicas fails."""
    out: Samples = {}
    for samples in all_samples:
        for key, v in samples.items():
            if key[0].startswith(("codearts_build_stage_", "codearts_build_record_")) and (
                "record_id" in dict(key[1])
            ):
                assert key not in out, f"{key} exported by two replicas"
                out[key] = v
    return out


async def test_three_replicas_300_records_equal_the_truth_each_polled_by_one(
    sim: SimServer, redis_server: RedisServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    interval = 0.5
    ids = [p.record_id for p in s.populate(300)]
    settings = [cluster_settings(sim, redis_server, ids, poll_interval=interval) for _ in range(3)]
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, ids))
        shares = Counter(daemons.index(assignees(daemons, rid)[0]) for rid in ids)
        assert len(shares) == 3 and min(shares.values()) > 50, shares
        since = time.monotonic()
        with anyio.fail_after(30):  # three intervals of polling, to count who polls what
            while time.monotonic() < since + 3 * interval:
                await any_change(daemons)
        s.clock.advance(100_000)  # every build ends
        await wait_all(daemons, lambda: complete_everywhere(daemons, ids), timeout=60)
        until = time.monotonic()
        all_samples = await scrape_all(daemons)

    # Each record's series come from one replica and equal what the API answered.
    merged = by_record(merged_per_record(all_samples))
    for rid in ids:
        assert stage_values(merged[rid], rid) == truth_values(s.truth(rid)), rid
    # The aggregates, summed over the replicas, are the truth exactly.
    truth: Counter[tuple[str, str]] = Counter()
    for rid in ids:
        for st in s.truth(rid)["result"]["build_stages"].values():
            assert st["status"] in TERMINAL
            truth[(st["display_name"], st["status"])] += 1
    got = {
        (dict(lab)["display_name"], dict(lab)["status"]): v
        for lab, v in summed(all_samples, "codearts_build_stages_finished_total").items()
        if v
    }
    assert got == dict(truth)
    assert summed(all_samples, "stage_monitor_records", state="complete") == {
        frozenset({("state", "complete")}): 300
    }
    # Logged once across the cluster: every transition, every completion.
    transitions = Counter(
        (e["record_id"], e["build_stage"], e["from_status"], e["to_status"])
        for e in log_events(log_stream, "stage_transition")
    )
    assert transitions and max(transitions.values()) == 1
    completions = Counter(e["record_id"] for e in log_events(log_stream, "record_complete"))
    assert sorted(completions) == sorted(ids) and max(completions.values()) == 1
    # No record polled by two replicas: in the simulator's log, no more polls per record
    # than one owner polling once an interval makes.
    polls = Counter(
        r.record_id for r in s.requests if since <= r.at <= until and r.record_id in set(ids)
    )
    most = (until - since) / interval + 2
    assert polls and max(polls.values()) <= most, (polls.most_common(3), most)


async def admin(daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{daemon.port}/api/v1{path}"
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_a_post_on_one_replica_and_a_delete_on_another_take_effect_everywhere(
    sim: SimServer, redis_server: RedisServer
) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=10)
    settings = [cluster_settings(sim, redis_server, [], admin_token=SecretStr(ADMIN))] * 3
    async with replicas(settings) as daemons:
        a, b, c = daemons
        status, _ = await admin(a, "POST", "/records", {"record_id": plan.record_id})
        assert status in (200, 201)
        rid = plan.record_id
        await wait_all(daemons, lambda: all(rid in d.watchlist.records for d in daemons))
        await wait_all(daemons, lambda: len(owners(daemons, rid)) == 1)
        (owner,) = owners(daemons, rid)
        await wait_until(daemons[owner], lambda: daemons[owner].watchlist.records[rid].polls > 0)
        exporting = [i for i, x in enumerate(await scrape_all(daemons)) if series(x, PER_RECORD)]
        assert exporting == [owner]
        status, _ = await admin(b, "DELETE", f"/records/{rid}")
        assert status in (200, 204)
        await wait_all(daemons, lambda: all(rid not in d.watchlist.records for d in daemons))
        # A poll already in flight at the delete may still arrive; then nothing more.
        await wait_all(daemons, lambda: daemons[owner].scheduler.in_flight == 0)
        polls = s.request_count(rid)
        assert c.cluster is not None
        await c.cluster.coordinator.wait_ticks(3)  # three poll intervals at least
        assert s.request_count(rid) == polls  # nobody polls it any more
        for d in daemons:
            status, _ = await admin(d, "GET", f"/records/{rid}")
            assert status == 404


def api_polls(s: Any, start: float, end: float) -> list[Any]:
    return [r for r in s.requests if start <= r.at <= end and r.record_id is not None]


async def test_the_rate_budget_holds_for_the_cluster_and_a_429_pauses_every_replica(
    sim: SimServer, redis_server: RedisServer
) -> None:
    s = sim.sim
    ids = [s.new_build(started_ago=5).record_id for _ in range(40)]
    rate, burst = 30.0, 5
    # 40 records every 0.1 s on 3 replicas want 400 requests a second: far over budget.
    settings = [
        cluster_settings(sim, redis_server, ids, rate_limit=rate, rate_burst=burst,
                         poll_interval=0.1, request_timeout=5.0)
        for _ in range(3)
    ]  # fmt: skip
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, ids))
        start = time.monotonic()
        with anyio.fail_after(30):
            while time.monotonic() < start + 3.0:
                await any_change(daemons)
        end = time.monotonic()
        sent = api_polls(s, start, end)
        # Every replica takes part, and the whole cluster keeps to one budget.
        assert rate * (end - start) * 0.7 <= len(sent) <= rate * (end - start) + burst + 2

        s.faults.retry_after = "1.5"
        s.faults.inject(Fault.THROTTLE, None, 1)
        await wait_all(daemons, lambda: any(r.status == 429 for r in s.requests))
        throttled_at = next(r.at for r in s.requests if r.status == 429)
        await wait_all(daemons, lambda: time.monotonic() > throttled_at + 2.5)
    after = api_polls(s, throttled_at + 0.05, throttled_at + 1.4)
    assert after == []  # nobody sent anything during the pause, whichever replica was told
    assert api_polls(s, throttled_at + 1.5, throttled_at + 2.5)  # and then they went on


def finished_total(all_samples: Sequence[Samples]) -> float:
    return sum(summed(all_samples, "codearts_build_stages_finished_total").values())


async def test_redis_stopped_for_10_s_then_back_with_its_data_counts_nothing_twice(
    sim: SimServer, redis_server: RedisServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plans = [s.new_build(started_ago=5, duration_scale=0.05) for _ in range(30)]
    ids = [p.record_id for p in plans]
    settings = [cluster_settings(sim, redis_server, ids) for _ in range(3)]
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, ids))
        redis_server.stop()
        # Every replica notices, stops polling (it cannot prove what it owns) and says so.
        await wait_all(daemons, lambda: all(d.cluster and d.cluster.problem() for d in daemons))
        for d in daemons:
            status, _, body = await fetch(d, "/readyz")
            assert status == 503 and "redis" in body
            assert (await fetch(d, "/healthz"))[0] == 200
            assert (await fetch(d, "/metrics"))[0] == 200
        await anyio.sleep(TTL)  # leases lapse everywhere; from now on nobody may poll
        quiet_from = time.monotonic()
        s.clock.advance(30)  # builds move on while nobody watches
        await anyio.sleep(10 - TTL)  # the outage itself: ten seconds of wall-clock time
        assert api_polls(s, quiet_from, time.monotonic()) == []
        redis_server.start()
        await wait_all(daemons, lambda: settled(daemons, ids), timeout=30)
        s.clock.advance(100_000)
        await wait_all(daemons, lambda: complete_everywhere(daemons, ids), timeout=30)
        all_samples = await scrape_all(daemons)
        errors = summed(all_samples, "stage_monitor_redis_errors_total")
        resets = summed(all_samples, "stage_monitor_redis_resets_total")
    assert sum(errors.values()) > 0
    assert sum(resets.values()) == 0  # its data came back with it: not a reset
    truth = sum(len(s.truth(rid)["result"]["build_stages"]) for rid in ids)
    assert finished_total(all_samples) == truth
    transitions = Counter(
        (e["record_id"], e["build_stage"], e["from_status"], e["to_status"])
        for e in log_events(log_stream, "stage_transition")
    )
    assert max(transitions.values()) == 1
    assert log_events(log_stream, "redis_unavailable")


async def test_an_empty_redis_is_counted_and_the_watchlist_is_rebuilt(
    sim: SimServer, redis_server: RedisServer, log_stream: io.StringIO, tmp_path: Path
) -> None:
    s = sim.sim
    ids = [s.new_build(started_ago=5).record_id for _ in range(12)]
    # Half from MONITOR_RECORDS, half from a watchlist file: records of both sources are
    # back in the emptied Redis.
    watch_file = tmp_path / "watchlist.txt"
    watch_file.write_text("".join(f"{rid}\n" for rid in ids[6:]))
    settings = [
        cluster_settings(sim, redis_server, ids[:6], watchlist_file=watch_file) for _ in range(2)
    ]
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, ids))
        redis_server.stop()
        redis_server.wipe()
        redis_server.start()
        await wait_all(
            daemons, lambda: all(d.cluster and d.cluster.coordinator.resets for d in daemons)
        )
        await wait_all(daemons, lambda: settled(daemons, ids))
        assert set(redis_server.command("SMEMBERS", "codearts-stage-monitor:ids").split()) == set(
            ids
        )
        all_samples = await scrape_all(daemons)
    assert sum(summed(all_samples, "stage_monitor_redis_resets_total").values()) == 2
    assert [e["level"] for e in log_events(log_stream, "redis_reset")] == ["error", "error"]


async def test_the_redis_password_never_appears_in_any_output(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    server = RedisServer(tmp_path / "redis-auth", password=REDIS_PASSWORD)
    server.start()
    try:
        pw_file = tmp_path / "redis-password"
        pw_file.write_text(REDIS_PASSWORD + "\n")
        ids = [sim.sim.new_build(started_ago=5).record_id for _ in range(4)]
        in_url = cluster_settings(sim, server, ids)
        from_file = cluster_settings(
            sim, server, ids,
            redis_url=SecretStr(f"redis://127.0.0.1:{server.port}/0"),
            redis_password_file=pw_file,
        )  # fmt: skip
        outputs = []
        async with replicas([in_url, from_file]) as daemons:
            await wait_all(daemons, lambda: settled(daemons, ids))
            for d in daemons:
                outputs += [(await fetch(d, p))[2] for p in ("/metrics", "/readyz", "/healthz")]
            server.stop()  # the errors Redis failures produce, logged and on /readyz
            await wait_all(daemons, lambda: all(d.cluster and d.cluster.problem() for d in daemons))
            for d in daemons:
                outputs += [(await fetch(d, p))[2] for p in ("/metrics", "/readyz")]
    finally:
        server.stop()
    assert log_events(log_stream, "redis_unavailable")
    started = log_events(log_stream, "daemon_started")
    assert started[0]["redis"] == f"redis://:********@127.0.0.1:{server.port}/0"

    env = {"MONITOR_AUTH_TOKEN": "x" * 20, "MONITOR_REDIS_URL": server.url}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert cli_main(["check-config"]) == 0
        mp.setenv("MONITOR_REDIS_URL", server.url.replace("/0", "/x"))
        assert cli_main(["check-config"]) != 0  # an error about the URL, not repeating it
    printed = capsys.readouterr()
    assert "********@127.0.0.1" in printed.out
    assert "MONITOR_REDIS_URL" in printed.err
    everything = "\n".join([*outputs, log_stream.getvalue(), printed.out, printed.err])
    assert REDIS_PASSWORD not in everything


async def test_job_discovery_runs_on_one_replica_and_its_builds_are_shared(
    sim: SimServer, redis_server: RedisServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    job = s.add_job("payments-api", every=1e9)
    settings = [
        cluster_settings(sim, redis_server, [], jobs=[job.job_id], discovery_interval=0.1)
        for _ in range(3)
    ]
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, []))
        leaders = [d for d in daemons if d.cluster and d.cluster.coordinator.leading]
        assert len(leaders) == 1
        (leader,) = leaders
        assert leader.discovery is not None
        await leader.discovery.wait_rounds(leader.discovery.rounds_completed + 1)
        plan = s.new_build(job_id=job.job_id)
        rid = plan.record_id
        # The leader finds it; every replica knows it; one owner polls it.
        await wait_all(daemons, lambda: all(rid in d.watchlist.records for d in daemons))
        await wait_all(daemons, lambda: len(owners(daemons, rid)) == 1)
        rounds = [d.discovery.rounds_completed if d.discovery else 0 for d in daemons]
    assert [r > 0 for r in rounds] == [d is leader for d in daemons]
    assert len(log_events(log_stream, "builds_discovered")) == 1
