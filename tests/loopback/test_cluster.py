"""Several daemons, one Redis, one simulator: one owner per record, counted once in all.

Each daemon is its own `Daemon` with its own port, as three pods would be; they
share only the simulator and a real redis-server.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.domain import RecordState
from tests.support.loopback import SimServer, make_settings, running, scrape
from tests.support.redis import RedisServer
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
    out: Counter[Any] = Counter()
    for samples in all_samples:
        for lab, v in series(samples, name, **labels).items():
            out[lab] += v
    return dict(out)


def complete_everywhere(daemons: Sequence[Daemon], ids: Sequence[str]) -> bool:
    """Each record's assignee knows it complete."""
    for rid in ids:
        found = assignees(daemons, rid)
        if len(found) != 1 or found[0].watchlist.records[rid].state is not RecordState.COMPLETE:
            return False
    return True


async def test_three_replicas_split_the_records_and_export_each_once(
    sim: SimServer, redis_server: RedisServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plans = s.populate(30)
    ids = [p.record_id for p in plans]
    settings = [cluster_settings(sim, redis_server, ids) for _ in range(3)]
    async with replicas(settings) as daemons:
        await wait_all(daemons, lambda: settled(daemons, ids))
        counts = Counter(daemons.index(assignees(daemons, rid)[0]) for rid in ids)
        assert len(counts) == 3, counts  # every replica owns a share
        s.clock.advance(100_000)
        await wait_all(daemons, lambda: complete_everywhere(daemons, ids))
        all_samples = await scrape_all(daemons)
    for rid in ids:
        exporting = [
            i for i, smp in enumerate(all_samples) if series(smp, PER_RECORD, record_id=rid)
        ]
        assert len(exporting) == 1, (rid, exporting)
    assert summed(all_samples, "stage_monitor_records", state="complete") == {
        frozenset({("state", "complete")}): 30
    }
