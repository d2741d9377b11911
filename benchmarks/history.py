"""History case: records pass through a daemon; what is left of them must stay small.

Over loopback against the simulator (in a process of its own), records that are
already finished are added through the admin API of a real daemon process
(`python -m monitor run`, SQLite state file, MONITOR_RETENTION=1): first
`--first` of them, which are polled once, complete and retire; then the rest.
They are added in waves of 500, each let to retire before the next, so as many
are alive at once in both phases. After each phase: the daemon's RSS, the state
file's size (with its WAL),
the median /metrics time with no active record, and the time from a restart to
/readyz answering 200. The same procedure runs for every tree given with
`--tree NAME=DIR` (the release before the change is one of them, run from a
`git archive` of its commit with the same interpreter), one after the other in
this one run.

python -m benchmarks.history --tree ours=. --tree before=/tmp/v1 [--first 2000 --second 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import BENCH_TOKEN, DEVNULL, emit

ADMIN = "bench-admin-token-0123456789"
READY_TIMEOUT = 120.0
SCRAPES = 50
# Records are added in waves, each let to retire before the next: how many are alive at
# once (a transient high-water mark that RSS keeps) is then the same in both phases, and
# what the second measurement adds is what the records passed through left behind.
WAVE = 500


def _gauge(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a /metrics body (None when the family is not there)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _file_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += p.stat().st_size
    return total


class Daemon:
    """One daemon process of one tree, on a fixed port and state file."""

    def __init__(self, tree: Path, sim_url: str, state: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(
            PYTHONPATH=str(tree),
            MONITOR_ENDPOINT=sim_url,
            MONITOR_AUTH_TOKEN=BENCH_TOKEN,
            MONITOR_ADMIN_TOKEN=ADMIN,
            MONITOR_STATE_PATH=str(state),
            MONITOR_HOST="127.0.0.1",
            MONITOR_PORT=str(self.port),
            MONITOR_RETENTION="1",
            MONITOR_POLL_INTERVAL="5",
            MONITOR_RATE_LIMIT="100000",
            MONITOR_RATE_BURST="100000",
            MONITOR_LOG_FORMAT="json",
            MONITOR_LOG_LEVEL="warning",
        )
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the process; seconds until /readyz answered 200."""
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"],
            env=self._env,
            stdout=DEVNULL,
            stderr=DEVNULL,
            cwd=tempfile.gettempdir(),  # so the tree on PYTHONPATH is the one imported
        )
        asyncio.run(self._ready())
        return time.perf_counter() - started

    async def _ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, "daemon died"
                try:
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.005)
        raise RuntimeError("the daemon did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


async def _add(url: str, ids: list[str]) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as s:

        async def post(rid: str) -> None:
            async with sem, s.post(url + "/api/v1/records", json={"record_id": rid},
                                   headers=auth) as r:  # fmt: skip
                assert r.status in (200, 201), r.status

        await asyncio.gather(*(post(rid) for rid in ids))


async def _scrape(url: str) -> tuple[str, float]:
    async with aiohttp.ClientSession() as s:
        t = time.perf_counter()
        async with s.get(url + "/metrics") as r:
            text = await r.text()
        return text, time.perf_counter() - t


async def _retired(url: str, total: int) -> None:
    """Wait until every record added so far finished and its retention is over."""
    while True:
        text, _ = await _scrape(url)
        if _gauge(text, "stage_monitor_records", state="active") == 0:
            break
        await asyncio.sleep(0.2)
    # Retention is 1 s; the new release retires within 0.5 s after, the old one at a scrape.
    await asyncio.sleep(1.5)
    while True:
        text, _ = await _scrape(url)
        retired = _gauge(text, "stage_monitor_retired_records")
        if retired is None or retired >= total:  # None: a release without tombstones
            return
        await asyncio.sleep(0.2)


async def _scrape_time(url: str) -> float:
    """Median of SCRAPES scrapes over one connection (the machine is shared: a median)."""
    times = []
    async with aiohttp.ClientSession() as s:
        for _ in range(SCRAPES):
            t = time.perf_counter()
            async with s.get(url + "/metrics") as r:
                await r.read()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _pass_through(url: str, ids: list[str], before: int) -> None:
    """Add `ids` in waves; each wave finishes and retires before the next is added."""
    for i in range(0, len(ids), WAVE):
        wave = ids[i : i + WAVE]
        asyncio.run(_add(url, wave))
        asyncio.run(_retired(url, before + i + len(wave)))


def _measure(d: Daemon) -> dict[str, float]:
    assert d.proc is not None
    return {
        "rss_bytes": _rss(d.proc.pid),
        "state_bytes": _file_bytes(d.state),
        "scrape_seconds": asyncio.run(_scrape_time(d.url)),
    }


@contextmanager
def _tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as d:
        yield Path(d)


def _copy_state(state: Path, into: Path) -> Path:
    """The state file as it is now (the daemon is idle, its log folded in), for a restart."""
    into.mkdir()
    for suffix in ("", "-wal"):
        src = Path(str(state) + suffix)
        if src.exists():
            shutil.copyfile(src, into / (state.name + suffix))
    return into / state.name


def _restart(tree: Path, sim_url: str, state: Path) -> float:
    d = Daemon(tree, sim_url, state)
    try:
        return d.start()
    finally:
        d.stop()


def run_tree(tree: Path, sim_url: str, ids: list[str], first: int) -> dict[str, Any]:
    """The procedure for one tree: `first` records, measure; the rest, measure.

    Both measurements are of one process that has taken in records the same way, so
    what differs between them is what the records passed through left behind. The
    restart times are of new processes on the state file as it was at each point.
    """
    with _tmpdir() as tmp:
        d = Daemon(tree, sim_url, tmp / "monitor.db")
        d.start()
        try:
            _pass_through(d.url, ids[:first], 0)
            m1 = _measure(d)
            after_first = _copy_state(d.state, tmp / "after-first")
            _pass_through(d.url, ids[first:], first)
            m2 = _measure(d)
        finally:
            d.stop()
        restart_1 = _restart(tree, sim_url, after_first)
        restart_2 = _restart(tree, sim_url, d.state)
    passed = len(ids) - first
    return {
        "first": {**m1, "restart_seconds": restart_1},
        "second": {**m2, "restart_seconds": restart_2},
        "rss_per_record_bytes": (m2["rss_bytes"] - m1["rss_bytes"]) / passed,
        "state_per_record_bytes": (m2["state_bytes"] - m1["state_bytes"]) / passed,
        "scrape_ratio": m2["scrape_seconds"] / m1["scrape_seconds"],
        "restart_ratio": restart_2 / restart_1,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="the simulator")
    p.add_argument("--records-file", type=Path, required=True, help="JSON list of record ids")
    p.add_argument("--first", type=int, default=2000)
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR, repeatable")
    args = p.parse_args()
    ids = json.loads(args.records_file.read_text())
    out: dict[str, Any] = {}
    for spec in args.tree:
        name, _, path = spec.partition("=")
        print(f"history: {name} ({path}) ...", file=sys.stderr, flush=True)
        out[name] = run_tree(Path(path).resolve(), args.url, ids, args.first)
    emit(out)


if __name__ == "__main__":
    main()
