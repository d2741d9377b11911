"""The SQLite state store: what it keeps, when it writes, and how it refuses a bad file."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from monitor.app import Daemon
from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.store import SqliteStore, StoredRecord, StoreError, store_for
from monitor.store.memory import MemoryStore
from tests.support.loopback import (
    TOKEN,
    SimServer,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.samples import series
from tests.support.state import load_state

RID = "0f6c2a3e-1111-4d2b-9c1e-8e5f00000001"


def _stage(key: str, status: str, seq: int) -> StageSnapshot:
    return StageSnapshot(
        key=key,
        display_name=f"{key} name",
        status=status,
        status_code=5 if status == "SUCCESS" else 2,
        duration_ms=1234,
        build_duration_ms=1000,
        pending_duration_ms=234,
        start_time=1_790_000_001.5,
        finish_time=1_790_000_002.75 if status == "SUCCESS" else None,
        sequence=seq,
    )


def _record(**changes: object) -> StoredRecord:
    rec = StoredRecord(
        record_id=RID,
        labels={"team": "payments", "env": "prod"},
        source="file",
        added_at=1_790_000_000.25,
        snapshot=RecordSnapshot(
            RID, (_stage("initial", "SUCCESS", 0), _stage("stage1", "RUNNING", 1)), 1_790_000_003.0
        ),
        counted=frozenset({"initial"}),
    )
    for k, v in changes.items():
        setattr(rec, k, v)
    return rec


async def test_everything_saved_comes_back_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "monitor.db"  # the directory is created
    store = SqliteStore(path)
    assert await store.load() == []
    done = _record(
        record_id=RID.replace("1", "2"),
        state=RecordState.COMPLETE,
        finished_at=1_790_000_010.0,
        result="FAILURE",
        error="boom",
        snapshot=None,
        labels={},
    )
    await store.save(_record())
    await store.save(done)
    await store.close()

    again = SqliteStore(path)
    loaded = {r.record_id: r for r in await again.load()}
    await again.close()
    assert loaded == {RID: _record(), done.record_id: done}


async def test_writes_happen_only_when_something_changed(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    store = SqliteStore(path)
    await store.load()
    await store.save(_record())
    await store.save(_record())  # the same again: no write
    assert (store.writes, store.skipped) == (1, 1)
    await store.save(_record(counted=frozenset({"initial", "stage1"})))
    await store.delete(RID)
    await store.delete(RID)  # unknown now: nothing to do
    assert store.writes == 3
    await store.close()

    reopened = SqliteStore(path)
    assert await reopened.load() == []
    await reopened.save(_record())
    await reopened.close()
    # Reopening knows what the file holds, so an unchanged save after a restart is free too.
    third = SqliteStore(path)
    await third.load()
    await third.save(_record())
    assert third.writes == 0
    await third.close()


async def test_memory_path_keeps_nothing_on_disk(tmp_path: Path) -> None:
    assert isinstance(store_for(":memory:"), MemoryStore)
    store = SqliteStore(":memory:")  # SQLite's own in-memory database works as well
    await store.load()
    await store.save(_record())
    assert [r.record_id for r in await store.load()] == [RID]
    await store.close()


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


async def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    before = _bytes(path)
    with pytest.raises(StoreError) as err:
        await SqliteStore(path).load()
    assert str(path) in str(err.value)
    assert "not a SQLite database or is corrupt" in str(err.value)
    assert _bytes(path) == before


async def test_a_damaged_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    store = SqliteStore(path)
    await store.load()
    for i in range(200):
        await store.save(_record(record_id=f"{i:036d}"))
    await store.close()
    data = bytearray(_bytes(path))
    page = 4096
    data[2 * page : 5 * page] = b"\xa5" * (3 * page)  # scribble over b-tree pages
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        await SqliteStore(path).load()
    assert str(path) in str(err.value)
    assert "corrupt" in str(err.value)
    assert _bytes(path) == bytes(data)


async def test_a_row_that_cannot_be_read_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    store = SqliteStore(path)
    await store.load()
    await store.save(_record())
    await store.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE records SET snapshot = '{\"stages\": [{}]}'")
    with pytest.raises(StoreError) as err:
        await SqliteStore(path).load()
    assert RID in str(err.value)
    assert str(path) in str(err.value)


async def test_another_programs_database_and_a_newer_schema_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    with closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="something else"):
        await SqliteStore(foreign).load()

    newer = tmp_path / "newer.db"
    store = SqliteStore(newer)
    await store.load()
    await store.close()
    with closing(sqlite3.connect(newer)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version"):
        await SqliteStore(newer).load()


async def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = blocker / "monitor.db"
    with pytest.raises(StoreError) as err:
        await SqliteStore(path).load()
    assert str(path) in str(err.value)
    assert "cannot create its directory" in str(err.value)


async def test_two_monitors_cannot_share_one_state_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    first = SqliteStore(path)
    await first.load()
    await first.save(_record())
    with pytest.raises(StoreError, match="in use by another process"):
        await SqliteStore(path).load()
    await first.close()
    second = SqliteStore(path)  # free again once the first one closed
    assert len(await second.load()) == 1
    await second.close()


def test_run_exits_1_naming_the_file_when_the_state_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    path.write_bytes(b"garbage" * 1000)
    env = {
        **os.environ,
        "MONITOR_AUTH_TOKEN": TOKEN,
        "MONITOR_STATE_PATH": str(path),
        "MONITOR_ENDPOINT": "http://127.0.0.1:9",
        "MONITOR_PORT": "0",
        "MONITOR_HOST": "127.0.0.1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"state file {path}" in proc.stderr
    assert "corrupt" in proc.stderr
    assert path.read_bytes() == b"garbage" * 1000
    assert TOKEN not in proc.stdout + proc.stderr


async def test_a_restarted_daemon_resumes_without_repeating_or_recounting(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    s = sim.sim
    plan = s.new_build(started_ago=0, fate="SUCCESS")
    done = s.new_build(started_ago=100_000, fate="FAILURE")
    ids = [plan.record_id, done.record_id]
    settings = make_settings(sim.url, ids, state_path=str(tmp_path / "monitor.db"))
    first_stage = plan.stages[0]
    halfway = first_stage.pending + first_stage.run + plan.stages[1].pending + 1

    first = Daemon(settings)
    async with running(first):
        s.clock.advance(halfway)  # the first stage done, the second running
        rec = first.watchlist.records[plan.record_id]
        await wait_until(first, lambda: "initial" in rec.counted)
        await wait_until(first, lambda: first.watchlist.records[done.record_id].state.finished)
        before = await scrape(first)
    counted_before = sum(series(before, "codearts_build_stages_finished_total").values())
    assert counted_before == 1 + len(done.stages)
    logged_before = len(log_events(log_stream, "stage_transition"))

    s.clock.advance(100_000)  # everything finishes while no monitor runs
    second = Daemon(settings)
    async with running(second):
        rec = second.watchlist.records[plan.record_id]
        await wait_until(second, lambda: rec.state is RecordState.COMPLETE)
        after = await scrape(second)

    transitions = log_events(log_stream, "stage_transition")
    keys = [(e["record_id"], e["build_stage"], e["to_status"]) for e in transitions]
    assert len(keys) == len(set(keys)), "a transition was logged twice across the restart"
    assert len(transitions) > logged_before
    assert log_events(log_stream, "state_restored")[0]["records"] == 2
    # Counters restart at zero: the new process counts only what finished since.
    counted_after = sum(series(after, "codearts_build_stages_finished_total").values())
    assert counted_after == len(plan.stages) - 1
    assert second.watchlist.records[done.record_id].state is RecordState.COMPLETE
    assert second.store.writes > 0  # type: ignore[attr-defined]


async def test_a_record_taken_out_of_the_settings_while_down_is_forgotten(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    keep, drop = (sim.sim.new_build(started_ago=100_000) for _ in range(2))
    state = str(tmp_path / "monitor.db")
    first = Daemon(make_settings(sim.url, [keep.record_id, drop.record_id], state_path=state))
    async with running(first):
        await wait_until(
            first, lambda: all(r.state.finished for r in first.watchlist.records.values())
        )

    second = Daemon(make_settings(sim.url, [keep.record_id], state_path=state))
    async with running(second):
        samples = await scrape(second)
    assert set(second.watchlist.records) == {keep.record_id}
    assert not series(samples, "codearts_build_record_complete", record_id=drop.record_id)
    assert [e["record_id"] for e in log_events(log_stream, "record_removed")] == [drop.record_id]
    assert [r.record_id for r in await load_state(state)] == [keep.record_id]


class _FlakyStore(MemoryStore):
    """Refuses the first `failures` saves of a polled record, as a full disk would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def save(self, record: StoredRecord) -> None:
        if record.snapshot is not None and self.failures > 0:
            self.failures -= 1
            raise StoreError("state file /x/monitor.db: disk I/O error")
        await super().save(record)


async def test_a_failed_write_is_retried_by_the_next_poll_and_nothing_is_doubled(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=100_000, fate="SUCCESS")
    store = _FlakyStore(failures=2)
    daemon = Daemon(make_settings(sim.url, [plan.record_id]), store=store)
    async with running(daemon):
        rec = daemon.watchlist.records[plan.record_id]
        await wait_until(daemon, lambda: rec.state is RecordState.COMPLETE)
        samples = await scrape(daemon)

    assert len(log_events(log_stream, "state_write_failed")) == 2
    assert not log_events(log_stream, "poll_crashed")
    transitions = [e["build_stage"] for e in log_events(log_stream, "stage_transition")]
    assert sorted(transitions) == sorted(s.key for s in plan.stages)
    assert sum(series(samples, "codearts_build_stages_finished_total").values()) == len(plan.stages)
    assert (await store.load())[0].state is RecordState.COMPLETE
