"""Graceful shutdown inside one process: running polls finish within the grace, or are cut."""

from __future__ import annotations

import io
from pathlib import Path

import anyio

from monitor.app import Daemon
from monitor.simulator import Fault
from tests.support.loopback import SimServer, fetch, log_events, make_settings, wait_until
from tests.support.state import load_state


async def _stop_while_polling(daemon: Daemon, sim: SimServer, record_id: str) -> float:
    """Run the daemon, stop it once a SLOW answer is pending; returns how long run() took."""
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        rec = daemon.watchlist.records[record_id]
        await wait_until(daemon, lambda: rec.polls >= 1)
        sim.sim.faults.inject(Fault.SLOW, record_id)
        with anyio.fail_after(5):
            # The simulator has taken the request: nothing signals that, so look.
            while not any(r.fault == "slow" for r in sim.sim.requests):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert (await fetch(daemon, "/readyz"))[0] == 200
        daemon.stop()
        assert (await fetch(daemon, "/readyz"))[0] == 503  # no new traffic while draining
        started = anyio.current_time()
        with anyio.fail_after(10):
            await daemon.scheduler.wait_finished()
    return anyio.current_time() - started


async def test_stop_lets_a_running_poll_finish_and_flushes_the_state(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=-1_000_000)  # never finishes: polled all the time
    sim.sim.faults.slow_seconds = 0.4
    state = tmp_path / "monitor.db"
    daemon = Daemon(
        make_settings(
            sim.url,
            [plan.record_id],
            shutdown_grace=5.0,
            request_timeout=3.0,
            state_path=str(state),
        )
    )
    took = await _stop_while_polling(daemon, sim, plan.record_id)

    assert took < 5.0
    # The slow answer (a 500 after 0.4 s) was waited for and taken in, not cut off.
    failed = log_events(log_stream, "poll_failed")
    assert [e["outcome"] for e in failed] == ["server_error"]
    assert not log_events(log_stream, "shutdown_grace_expired")
    assert log_events(log_stream, "daemon_stopped")
    assert (
        not (tmp_path / "monitor.db-wal").exists()
        or (tmp_path / "monitor.db-wal").stat().st_size == 0
    )
    stored = await load_state(state)
    assert [r.record_id for r in stored] == [plan.record_id]


async def test_stop_cancels_polls_still_running_when_the_grace_ends(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=-1_000_000)
    sim.sim.faults.slow_seconds = 2.0  # well past the grace (the sim waits for it on exit)
    daemon = Daemon(
        make_settings(sim.url, [plan.record_id], shutdown_grace=0.3, request_timeout=20.0)
    )
    took = await _stop_while_polling(daemon, sim, plan.record_id)

    assert took < 3.0
    expired = log_events(log_stream, "shutdown_grace_expired")
    assert expired
    assert expired[0]["cancelled_polls"] == 1
    assert log_events(log_stream, "shutdown_started")[0]["grace"] == 0.3
    assert log_events(log_stream, "daemon_stopped")
