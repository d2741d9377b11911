"""kill -9 while records retire: nothing is counted twice, nothing retired is polled again.

The daemon is a real process (`python -m monitor run`) on a real state file;
the simulator runs in a thread of this test, so its request log can be read
directly. A record is retired by writing its tombstone first and changing
memory after, so a kill leaves each finished record either as a full row (it
is retired again at the next start) or as a tombstone; the test kills while
both kinds exist and checks both after the restart.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio

from monitor.simulator import SimClock, Simulator, serve
from tests.support.loopback import TOKEN
from tests.support.procs import events as _events
from tests.support.procs import get as _get
from tests.support.procs import monitor_env
from tests.support.procs import wait as _wait
from tests.support.samples import parse_samples, series, value


@contextmanager
def _simulator() -> Iterator[tuple[Simulator, str]]:
    """A simulator on real time, served from a thread of its own."""
    sim = Simulator(seed=11, tokens={TOKEN}, clock=SimClock(speed=1.0))
    started = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    async def main() -> None:
        runner, bound = await serve(sim, "127.0.0.1", 0)
        port.append(bound)
        started.set()
        try:
            await anyio.to_thread.run_sync(stop.wait)
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=anyio.run, args=(main,), daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield sim, f"http://127.0.0.1:{port[0]}"
    finally:
        stop.set()
        thread.join(10)


@contextmanager
def _daemon(log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _port(log: Path) -> int:
    return int(_wait(lambda: _events(log, "daemon_started"), 30, "the daemon")[0]["port"])


def _metrics(log: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_samples(str(_get(f"http://127.0.0.1:{_port(log)}/metrics")))


def test_kill_9_while_records_retire_counts_nothing_twice_and_polls_no_finished_record(
    tmp_path: Path,
) -> None:
    state = tmp_path / "monitor.db"
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    with _simulator() as (sim, url):
        rng = random.Random(3)
        # Builds of a few seconds that end one after another over about ten seconds.
        records = [
            sim.new_build(started_ago=rng.uniform(-6, 2), duration_scale=0.004, fate="SUCCESS")
            for _ in range(40)
        ]
        ids = [p.record_id for p in records]
        n = len(ids)
        env = monitor_env(url, ids, state, MONITOR_RETENTION="2")  # checked every 0.5 s

        with _daemon(log1, env) as first:
            # Kill once some records are retired, some finished but not yet, some running.
            _wait(
                lambda: (
                    _events(log1, "history_pruned")
                    and len(_events(log1, "record_complete")) < n - 5
                ),
                60,
                "the first retirements",
            )
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL

        with closing(sqlite3.connect(state)) as conn:
            tombstoned = {r[0] for r in conn.execute("SELECT record_id FROM tombstones")}
            rows = {
                rid: (st, frozenset(json.loads(counted)))
                for rid, st, counted in conn.execute(
                    "SELECT record_id, state, counted FROM records"
                )
            }
        finished_rows = {rid for rid, (st, _) in rows.items() if st != "active"}
        assert tombstoned and finished_rows, (tombstoned, finished_rows)
        assert tombstoned | set(rows) == set(ids)
        asked = {rid: sim.requests_by_record[rid] for rid in tombstoned | finished_rows}

        with _daemon(log2, env) as second:
            _wait(
                lambda: value(_metrics(log2), "stage_monitor_retired_records") == n,
                60,
                "every record to finish and retire after the restart",
            )
            samples = _metrics(log2)
            port = _port(log2)
            answers = {rid: _get(f"http://127.0.0.1:{port}/api/v1/records/{rid}") for rid in ids}
            truth = {rid: sim.truth(rid) for rid in ids}
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
        # Finished before the kill (retired or not): not one request more for them.
        assert {rid: sim.requests_by_record[rid] for rid in asked} == asked

    restored = _events(log2, "state_restored")[0]
    assert restored["tombstones"] == len(tombstoned)
    # Every record not yet a tombstone at the kill (the full finished rows among them) is
    # retired by the second process, each once.
    assert sum(e["retired"] for e in _events(log2, "history_pruned")) == n - len(tombstoned)
    assert all(a["retired"] is True and a["state"] == "complete" for a in answers.values())
    assert value(samples, "stage_monitor_records", state="complete") == 0
    # Each completion and transition logged once across both processes.
    both = _events(log1) + _events(log2)
    completions = Counter(e["record_id"] for e in both if e.get("event") == "record_complete")
    assert set(completions) == set(ids) and max(completions.values()) == 1
    transitions = Counter(
        (e["record_id"], e["build_stage"], e["to_status"])
        for e in both
        if e.get("event") == "stage_transition"
    )
    assert [t for t, c in transitions.items() if c > 1] == []
    # The second process counts exactly the stages the first had not counted.
    left: Counter[tuple[str, str]] = Counter()
    for rid in ids:
        if rid in tombstoned:
            continue
        done = rows[rid][1]
        for key, st in truth[rid]["result"]["build_stages"].items():
            if key not in done:
                left[(st["display_name"], st["status"])] += 1
    counted = {
        (dict(labels)["display_name"], dict(labels)["status"]): v
        for labels, v in series(samples, "codearts_build_stages_finished_total").items()
        if v
    }
    assert counted == dict(left)
