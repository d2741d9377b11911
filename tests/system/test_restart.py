"""Real processes: `stage-monitor simulate` and `stage-monitor run` on one state file.

The daemon is killed with SIGKILL in the middle of a run and started again; and
it is asked to stop with SIGTERM while polls hang. These are the two ways a pod
ends, so they are tested as a user would see them: exit codes, log lines,
/metrics and the state file.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import anyio

from monitor.store import SqliteStore
from tests.support.procs import events as _events
from tests.support.procs import get as _get
from tests.support.procs import monitor_env
from tests.support.procs import process as _process
from tests.support.procs import simulator as _simulator
from tests.support.procs import wait as _wait
from tests.support.samples import parse_samples, series, value


def _monitor_env(url: str, records: list[str], state: Path, **extra: str) -> dict[str, str]:
    return monitor_env(url, records, state, **{"MONITOR_BACKOFF_MAX": "0.5", **extra})


def _metrics(log: Path) -> str:
    port = _wait(lambda: _events(log, "daemon_started"), 30, "the daemon")[0]["port"]
    return str(_get(f"http://127.0.0.1:{port}/metrics"))


def _complete(log: Path, n: int) -> bool:
    try:
        return value(parse_samples(_metrics(log)), "stage_monitor_records", state="complete") == n
    except OSError:
        return False


def test_kill_9_mid_run_then_restart_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    state = tmp_path / "monitor.db"
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    with _simulator(
        tmp_path, "--records", "60", "--seed", "5", "--duration-scale", "0.004",
        "--fault-rate", "0.1",
    ) as (url, records):  # fmt: skip
        _get(f"{url}/_sim/faults", {"retry_after": "0.05", "slow_seconds": 1.5})
        n = len(records)
        env = _monitor_env(url, records, state, MONITOR_REQUEST_TIMEOUT="0.5")

        with _process(["run"], log1, env) as first:
            # Kill once some records are done and others are still being followed.
            _wait(
                lambda: n // 3 <= len(_events(log1, "record_complete")) < n - 5,
                60,
                "a third of the records to complete",
            )
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL

        # What the killed process had made durable, read with plain sqlite3.
        with closing(sqlite3.connect(state)) as conn:
            counted_at_kill = {
                rid: frozenset(json.loads(counted))
                for rid, counted in conn.execute("SELECT record_id, counted FROM records")
            }
            complete_at_kill = {
                rid
                for (rid,) in conn.execute(
                    "SELECT record_id FROM records WHERE state = ?", ("complete",)
                )
            }
        assert set(counted_at_kill) == set(records)
        assert sum(map(len, counted_at_kill.values())) > 0

        with _process(["run"], log2, env) as second:
            _wait(lambda: _complete(log2, n), 60, "every record to complete after the restart")
            samples = parse_samples(_metrics(log2))
            truth = _get(f"{url}/_sim/records")
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

    # No record missing: all were restored and all reached their end.
    assert _events(log2, "state_restored")[0]["records"] == n
    assert value(samples, "stage_monitor_records", state="complete") == n
    # No transition logged twice across the two processes.
    transitions = [
        (e["record_id"], e["build_stage"], e["to_status"])
        for e in _events(log1, "stage_transition") + _events(log2, "stage_transition")
    ]
    assert transitions
    assert [t for t, c in Counter(transitions).items() if c > 1] == []
    completions = Counter(
        e["record_id"] for e in _events(log1, "record_complete") + _events(log2, "record_complete")
    )
    assert max(completions.values()) == 1
    # Finished stages counted before the kill are not counted again: the new process
    # counts exactly the stages that were not yet counted (its counters start at zero).
    left: Counter[tuple[str, str]] = Counter()
    for rid, stages in truth.items():
        for key, st in stages.items():
            if key not in counted_at_kill[rid]:
                left[(st["display_name"], st["status"])] += 1
    counted = {
        (dict(labels)["display_name"], dict(labels)["status"]): v
        for labels, v in series(samples, "codearts_build_stages_finished_total").items()
        if v
    }
    assert counted == dict(left)
    # Each build is counted once: the new process counts exactly those not complete at the kill.
    builds = series(samples, "codearts_build_records_finished_total")
    assert sum(builds.values()) == n - len(complete_at_kill)
    durations = series(samples, "codearts_build_record_duration_seconds_count")
    assert sum(durations.values()) == n - len(complete_at_kill)
    assert 0 < sum(left.values()) < sum(len(s) for s in truth.values())


def test_sigterm_exits_0_within_the_grace_and_leaves_a_consistent_state_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "monitor.db"
    log = tmp_path / "run.log"
    grace = 1.5
    with _simulator(tmp_path, "--records", "20", "--seed", "9") as (url, records):
        env = _monitor_env(
            url,
            records,
            state,
            MONITOR_SHUTDOWN_GRACE=str(grace),
            MONITOR_REQUEST_TIMEOUT="30",
            MONITOR_POLL_INTERVAL="0.2",
        )
        with _process(["run"], log, env) as proc:
            _wait(lambda: _events(log, "daemon_started"), 30, "the daemon")
            port = _events(log, "daemon_started")[0]["port"]
            _wait(
                lambda: _get(f"http://127.0.0.1:{port}/readyz").get("status") == "ok",
                30,
                "the first poll round",
            )
            # From now on every answer hangs for a minute: polls are caught in flight.
            _get(f"{url}/_sim/faults", {"kind": "slow", "count": 100_000, "slow_seconds": 60})
            time.sleep(0.6)  # three poll intervals: polls are now waiting on hung answers
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=grace + 15)
            took = time.monotonic() - sent

    assert code == 0
    assert took < grace + 3.0, took
    names = [e["event"] for e in _events(log)]
    assert names.index("shutdown_requested") < names.index("shutdown_started")
    assert names.index("shutdown_started") < names.index("daemon_stopped")
    assert _events(log, "shutdown_grace_expired")[0]["cancelled_polls"] > 0
    # The state file: intact, closed cleanly (no write-ahead log left), every record in it.
    with closing(sqlite3.connect(state)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    wal = Path(f"{state}-wal")
    assert not wal.exists() or wal.stat().st_size == 0

    async def load() -> list[str]:
        store = SqliteStore(state)
        try:
            return [r.record_id for r in await store.load() if r.snapshot is not None]
        finally:
            await store.close()

    assert sorted(anyio.run(load)) == sorted(records)
