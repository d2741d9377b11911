"""History that stays bounded: retention, then a tombstone, then forgetting.

Time moves by the daemon's injectable clock and housekeeping passes are run by
the test (`daemon.housekeeper.run_once()`), so nothing here sleeps for retention.
"Not polled" is counted from the simulator's request log; "not counted" from
the aggregates on /metrics.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.simulator.scenario import record_status
from monitor.store import SqliteStore
from monitor.tracking.watchlist import WatchedRecord
from tests.support.loopback import (
    FakeClock,
    SimServer,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.samples import Samples, series, value

ADMIN = "admin-token-history-0123456789"


async def api(
    daemon: Daemon, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"http://127.0.0.1:{daemon.port}/api/v1{path}", json=body, headers=headers
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def finished_total(samples: Samples) -> float:
    return sum(series(samples, "codearts_build_stages_finished_total").values())


def per_record(samples: Samples, record_id: str) -> list[Any]:
    return [k for k in samples if ("record_id", record_id) in k[1]]


async def polled_more(daemon: Daemon, record_id: str, polls: int = 3) -> None:
    """Wait until a (running) sentinel record was polled `polls` more times: proof that
    the scheduler ran, so a record it did not poll meanwhile is not being polled."""
    rec = daemon.watchlist.records[record_id]
    assert isinstance(rec, WatchedRecord)
    target = rec.polls + polls
    await wait_until(daemon, lambda: rec.polls >= target)


async def test_retention_then_retirement_then_forgetting_then_a_new_life(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    done = s.new_build(started_ago=10_000, fate="SUCCESS")
    sentinel = s.new_build(duration_scale=1000)
    rid = done.record_id
    clock = FakeClock()
    settings = make_settings(
        sim.url,
        [rid, sentinel.record_id],
        retention=60,
        forget_after=3600,
        admin_token=SecretStr(ADMIN),
    )
    daemon = Daemon(settings, clock=clock)
    async with running(daemon):
        rec = daemon.watchlist.records[rid]
        await wait_until(daemon, lambda: rec.state is RecordState.COMPLETE)
        samples = await scrape(daemon)
        assert per_record(samples, rid)
        assert value(samples, "stage_monitor_records", state="complete") == 1
        assert value(samples, "stage_monitor_retired_records") == 0
        assert value(samples, "stage_monitor_state_file_bytes") == 0  # :memory:
        counted = finished_total(samples)
        assert counted == len(done.stages)

        # Retention over: the series go at once; the record is retired by housekeeping.
        clock.advance(61)
        samples = await scrape(daemon)
        assert per_record(samples, rid) == []
        assert value(samples, "stage_monitor_records", state="complete") == 0
        assert await daemon.housekeeper.run_once() == (1, 0)
        assert rid not in daemon.watchlist.records
        samples = await scrape(daemon)
        assert value(samples, "stage_monitor_retired_records") == 1
        assert finished_total(samples) == counted  # aggregates outlive the record

        status, body = await api(daemon, "GET", f"/records/{rid}")
        assert status == 200
        assert body == {
            "record_id": rid,
            "state": "complete",
            "source": "config",
            "result": "SUCCESS",
            "finished_at": rec.finished_at,
            "retired": True,
        }

        # Added again through the admin API: 200 with its final word, not polled again.
        requests_before = s.requests_by_record[rid]
        status, body = await api(daemon, "POST", "/records", {"record_id": rid})
        assert status == 200
        assert (body["state"], body["result"], body["retired"]) == ("complete", "SUCCESS", True)
        await polled_more(daemon, sentinel.record_id)
        assert s.requests_by_record[rid] == requests_before
        samples = await scrape(daemon)
        assert finished_total(samples) == counted
        assert per_record(samples, rid) == []

        # Forgotten MONITOR_FORGET_AFTER after it finished: unknown, 404.
        clock.advance(3601 - 61)
        assert await daemon.housekeeper.run_once() == (0, 1)
        status, body = await api(daemon, "GET", f"/records/{rid}")
        assert status == 404
        assert value(await scrape(daemon), "stage_monitor_retired_records") == 0

        # Added again after that: a new life, polled and counted again (documented).
        status, body = await api(daemon, "POST", "/records", {"record_id": rid})
        assert status == 201
        new = daemon.watchlist.records[rid]
        await wait_until(daemon, lambda: new.state is RecordState.COMPLETE)
        assert s.requests_by_record[rid] > requests_before
        assert finished_total(await scrape(daemon)) == 2 * counted
    assert len(log_events(log_stream, "record_complete")) == 2


async def test_a_retired_id_is_not_watched_again_from_any_source(
    sim: SimServer, tmp_path: Path
) -> None:
    s = sim.sim
    from_config = s.new_build(started_ago=10_000, fate="SUCCESS").record_id
    from_file = s.new_build(started_ago=10_000, fate="FAILURE").record_id
    job = s.add_job("long-runner")
    from_discovery = s.new_build(job_id=job.job_id, duration_scale=1000).record_id
    watch_file = tmp_path / "watchlist.txt"
    watch_file.write_text(f"{from_file} team=web\n")
    state = tmp_path / "monitor.db"
    clock = FakeClock()

    def daemon(*also: str) -> Daemon:
        settings = make_settings(
            sim.url,
            [from_config, *also],
            retention=60,
            max_watch=600,
            jobs=[job.job_id],
            discovery_interval=0.05,
            watchlist_file=watch_file,
            watchlist_reload_interval=0.05,
            state_path=str(state),
        )
        return Daemon(settings, store=SqliteStore(state), clock=clock)

    first = daemon()
    async with running(first):
        wl = first.watchlist
        await wait_until(
            first,
            lambda: (
                all(r in wl.records for r in (from_config, from_file, from_discovery))
                and wl.records[from_config].state.finished
                and wl.records[from_file].state.finished
                and wl.records[from_discovery].snapshot is not None
            ),
        )
        clock.advance(601)  # the discovered build runs past MONITOR_MAX_WATCH: expired
        await wait_until(first, lambda: wl.records[from_discovery].state is RecordState.EXPIRED)
        clock.advance(61)
        assert await first.housekeeper.run_once() == (3, 0)
        samples = await scrape(first)
        assert value(samples, "stage_monitor_retired_records") == 3
        assert (value(samples, "stage_monitor_state_file_bytes") or 0) > 0
    retired = (from_config, from_file, from_discovery)
    asked = {r: s.requests_by_record[r] for r in retired}
    assert record_status(s.plans[from_discovery], s.clock.now()) == "RUNNING"

    # A restart: config, the watchlist file and discovery offer all three again.
    sentinel = s.new_build(duration_scale=1000).record_id
    second = daemon(sentinel)
    async with running(second):
        wl = second.watchlist
        assert set(wl.tombstones) == set(retired)
        assert second.discovery is not None
        await second.discovery.wait_rounds(3)
        await polled_more(second, sentinel)
        # The file changes (a new line): it is re-read, and its retired line still is not watched.
        newcomer = s.new_build(duration_scale=1000).record_id
        watch_file.write_text(f"{from_file} team=web\n{newcomer}\n")
        await wait_until(second, lambda: newcomer in wl.records)
        await polled_more(second, sentinel)
        assert {r: s.requests_by_record[r] for r in retired} == asked
        assert not any(r in wl.records for r in retired)
        samples = await scrape(second)
        assert not any(per_record(samples, r) for r in retired)
        # Nothing counted for them: only the sentinel's and newcomer's finished stages are.
        counted = sum(len(wl.records[r].counted) for r in (sentinel, newcomer))
        assert finished_total(samples) == counted
        assert value(samples, "stage_monitor_retired_records") == 3
        assert value(samples, "stage_monitor_discovered_records_total") == 0
