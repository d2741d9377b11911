"""The dispatcher wakes on a coarse grid, yet never polls early nor makes a new record wait."""

from __future__ import annotations

import anyio

from monitor.app import Daemon
from monitor.tracking.scheduler import COALESCE_MAX
from tests.support.loopback import SimServer, make_settings, running, wait_until


async def test_record_added_while_the_dispatcher_sleeps_is_polled_at_once(
    sim: SimServer,
) -> None:
    first = sim.sim.new_build(started_ago=10).record_id
    daemon = Daemon(make_settings(sim.url, [], poll_interval=30.0))
    async with running(daemon):
        await daemon.watchlist.add(first, source="test")
        await wait_until(daemon, lambda: daemon.watchlist.records[first].polls >= 1)
        await anyio.sleep(0.05)  # the dispatcher is now asleep until `first` is due again
        added = sim.sim.new_build(started_ago=10).record_id
        await daemon.watchlist.add(added, source="test")
        with anyio.fail_after(5):
            await daemon.watchlist.wait_for(lambda: daemon.watchlist.records[added].polls >= 1)
        # Started within a grid step of being added, not at the dispatcher's next tick.
        assert daemon.scheduler.delays[-1] <= COALESCE_MAX + 0.1


async def test_polls_start_on_or_after_their_due_time(sim: SimServer) -> None:
    records = [sim.sim.new_build(started_ago=10).record_id for _ in range(5)]
    daemon = Daemon(make_settings(sim.url, records, poll_interval=0.1))
    async with running(daemon):
        await wait_until(
            daemon, lambda: all(daemon.watchlist.records[r].polls >= 4 for r in records)
        )
    delays = list(daemon.scheduler.delays)
    assert len(delays) >= 20
    assert min(delays) >= 0.0
