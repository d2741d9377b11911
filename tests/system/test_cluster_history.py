"""History with replicas on Redis: retired on one, a tombstone on all, then forgotten.

Three daemons in one process share a real redis-server, the simulator and one
injectable wall clock, so retention and the forget-after horizon pass when the
test says so; housekeeping passes are run by the test. "Not polled" is counted
from the simulator's request log, "the keys went" with redis-cli.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import anyio
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.store import Tombstone
from tests.support.loopback import FakeClock, SimServer, make_settings, running, wait_until
from tests.support.redis import RedisServer

ADMIN = "admin-token-cluster-history-0123"
PREFIX = "codearts-stage-monitor"
DONE = 12  # builds that finish, retire and are forgotten


def settings_for(sim: SimServer, redis: RedisServer, records: list[str]) -> Any:
    return make_settings(
        sim.url,
        records,
        redis_url=SecretStr(redis.url),
        lease_ttl=1.5,
        poll_interval=0.3,
        rate_limit=2000.0,
        rate_burst=200,
        retention=60,
        forget_after=3600,
        admin_token=SecretStr(ADMIN),
    )


@asynccontextmanager
async def replicas(settings: Sequence[Any], clock: FakeClock) -> AsyncIterator[list[Daemon]]:
    async with AsyncExitStack() as stack:
        daemons = [Daemon(s, clock=clock) for s in settings]
        for d in daemons:
            await stack.enter_async_context(running(d))
        yield daemons


async def ticks(daemons: Sequence[Daemon], count: int = 1) -> None:
    """Every replica completes `count` more coordinator rounds (each follows the feed)."""
    for d in daemons:
        assert d.cluster is not None
        await d.cluster.coordinator.wait_ticks(count)


async def until(daemons: Sequence[Daemon], predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(20):
        while not predicate():
            await ticks(daemons)


async def api(daemon: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{daemon.port}/api/v1{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, json=body, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def our_keys(redis: RedisServer) -> list[str]:
    return redis.command("--scan", "--pattern", f"{PREFIX}:*").split()


def members(d: Daemon) -> int:
    assert d.cluster is not None
    return len(d.cluster.coordinator.members)


def complete(daemons: Sequence[Daemon], rid: str) -> bool:
    """Every replica sees the others, and the record's assignee knows it complete."""
    if not all(members(d) == len(daemons) for d in daemons):
        return False
    rec = assignee(daemons, rid).watchlist.records.get(rid)
    return rec is not None and rec.state is RecordState.COMPLETE


def assignee(daemons: Sequence[Daemon], rid: str) -> Daemon:
    (found,) = [d for d in daemons if d.cluster and d.cluster.coordinator.assigned(rid)]
    return found


async def test_retired_on_its_assignee_a_tombstone_everywhere_then_forgotten_in_redis(
    sim: SimServer, redis_server: RedisServer
) -> None:
    s = sim.sim
    sentinel = s.new_build(duration_scale=1000).record_id  # runs all along
    done = [s.new_build(started_ago=10_000, fate="SUCCESS").record_id for _ in range(DONE)]
    clock = FakeClock()
    settings = [settings_for(sim, redis_server, [sentinel]) for _ in range(3)]
    async with replicas(settings, clock) as daemons:
        await until(daemons, lambda: all(members(d) == 3 for d in daemons))
        baseline = len(our_keys(redis_server))
        for rid in done:  # added through the admin API of one replica
            status, _ = await api(daemons[0], "POST", "/records", {"record_id": rid})
            assert status == 201
        await until(daemons, lambda: all(complete(daemons, rid) for rid in done))
        grown = len(our_keys(redis_server))
        assert grown > baseline + DONE  # a hash (and claims) per record
        # What was counted stays claimed until the horizon (MONITOR_FORGET_AFTER), not longer.
        ttl = int(redis_server.command("TTL", f"{PREFIX}:claims:{done[0]}"))
        assert 3500 < ttl <= 3600, ttl

        # Retention over: each replica retires what is assigned to it, nothing else.
        clock.advance(61)
        retired = [(await d.housekeeper.run_once())[0] for d in daemons]
        assert sum(retired) == DONE, retired
        assert retired == [sum(assignee(daemons, r) is d for r in done) for d in daemons]
        # Within a tick every replica dropped the full records and keeps the tombstones.
        await until(
            daemons,
            lambda: all(
                rid not in d.watchlist.records and rid in d.watchlist.tombstones
                for d in daemons
                for rid in done
            ),
        )
        keys = our_keys(redis_server)
        assert not [k for k in keys if any(rid in k for rid in done)]
        assert len(keys) == baseline + 2  # {name}:tombstones and {name}:retired
        assert redis_server.command("HLEN", f"{PREFIX}:tombstones").strip() == str(DONE)
        rid = done[0]
        for d in daemons:
            status, body = await api(d, "GET", f"/records/{rid}")
            assert status == 200
            assert (body["state"], body["result"], body["retired"]) == (
                "complete",
                "SUCCESS",
                True,
            )

        # Re-added on a replica that does not own it: its final word, and no poll.
        polls = s.request_count(rid)
        other = next(d for d in daemons if d is not assignee(daemons, rid))
        status, body = await api(other, "POST", "/records", {"record_id": rid})
        assert status == 200 and body["retired"] is True
        for d in daemons:  # from config, the file or discovery: the same answer
            again, new = await d.watchlist.add(rid, source="config")
            assert isinstance(again, Tombstone) and not new
        # Proof that polling went on meanwhile: the running sentinel was polled 3 more times.
        poller = assignee(daemons, sentinel)
        running_rec = poller.watchlist.records[sentinel]
        target = running_rec.polls + 3
        await wait_until(poller, lambda: running_rec.polls >= target)
        assert s.request_count(rid) == polls
        assert all(rid not in d.watchlist.records for d in daemons)

        # The horizon passes: one replica deletes the tombstones from Redis, every
        # replica from its memory; the keys are back to what they were without them.
        clock.advance(3600)
        forgotten = [(await d.housekeeper.run_once())[1] for d in daemons]
        assert forgotten == [DONE] * 3
        assert all(not d.watchlist.tombstones for d in daemons)
        assert len(our_keys(redis_server)) == baseline
        for d in daemons:
            status, _ = await api(d, "GET", f"/records/{rid}")
            assert status == 404


async def test_tombstones_survive_a_redis_restart_and_a_new_replica_keeps_them(
    sim: SimServer, redis_server: RedisServer
) -> None:
    s = sim.sim
    rid = s.new_build(started_ago=10_000, fate="SUCCESS").record_id
    clock = FakeClock()
    async with replicas([settings_for(sim, redis_server, [rid])] * 2, clock) as daemons:
        await until(daemons, lambda: complete(daemons, rid))
        clock.advance(61)
        assert sum([(await d.housekeeper.run_once())[0] for d in daemons]) == 1
        await until(daemons, lambda: all(rid in d.watchlist.tombstones for d in daemons))
    polls = s.request_count(rid)
    redis_server.stop()
    redis_server.start()
    # A fresh replica with the id in its config: restored as a tombstone, never polled.
    daemon = Daemon(settings_for(sim, redis_server, [rid]), clock=clock)
    async with running(daemon):
        await ticks([daemon], 3)
        status, body = await api(daemon, "GET", f"/records/{rid}")
        assert status == 200 and body["retired"] is True
        assert rid not in daemon.watchlist.records
    assert s.request_count(rid) == polls
